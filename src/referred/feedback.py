"""Relevance feedback: a query vector moved towards products marked good, away from bad ones.

Rocchio's rule (the SMART system's, as Qdrant's and Marqo's recommendation queries use it) on
unit vectors: ``q' = normalise(α q + β mean(positives) − γ mean(negatives))``, each part left
out when absent. A query with no photo (``q`` None) is "more like these" alone. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: α (the photo's own query), β (products marked good), γ (products marked bad).
ALPHA, BETA, GAMMA = 1.0, 0.75, 0.25
#: Most product ids one query may mark (positive, negative and excluded together).
MAX_FEEDBACK_IDS = 100


def refine(
    query: np.ndarray | None,
    positives: np.ndarray | None = None,
    negatives: np.ndarray | None = None,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
) -> np.ndarray:
    """(D,) unit vector from a (D,) query (or None) and (P, D) / (N, D) product vectors.

    Raises ValueError when nothing is left to search with (no query and no positives, or
    parts that cancel out exactly)."""
    parts = []
    if query is not None:
        parts.append(alpha * _unit(np.asarray(query, np.float64)))
    if positives is not None and len(positives):
        parts.append(beta * _unit(np.asarray(positives, np.float64).mean(axis=0)))
    if negatives is not None and len(negatives):
        parts.append(-gamma * _unit(np.asarray(negatives, np.float64).mean(axis=0)))
    if query is None and (positives is None or not len(positives)):
        raise ValueError("feedback needs a query or at least one positive example")
    v = np.sum(parts, axis=0)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError("the query and the feedback cancel out; nothing is left to search with")
    return (v / norm).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


# -- negative texts ("not the black one") ----------------------------------------------------
#: Catalog fields a negative text is looked for in (the ones present in a product's metadata).
TEXT_FIELDS = ("title", "caption", "description", "name", "color", "colour", "pattern")
#: Most negative texts in one query, and the longest one.
MAX_EXCLUDE_TEXTS, MAX_EXCLUDE_TEXT_CHARS = 20, 100


def exclusion_terms(texts: object) -> list[str]:
    """Checked negative texts, lower-cased with whitespace collapsed ("Black", " light  blue"
    → "black", "light blue"). ValueError names a bad one and what is accepted."""
    if texts is None:
        return []
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise ValueError("exclude_texts must be a list of words or phrases, e.g. ['black']")
    terms = []
    for t in texts:
        if not isinstance(t, str) or not _plain(t):
            raise ValueError(
                f"each excluded text must be a string with a letter or digit, got {t!r}"
            )
        if len(t) > MAX_EXCLUDE_TEXT_CHARS:
            raise ValueError(
                f"an excluded text has at most {MAX_EXCLUDE_TEXT_CHARS} characters, got {len(t)}"
            )
        terms.append(" ".join(t.lower().split()))
    if len(terms) > MAX_EXCLUDE_TEXTS:
        raise ValueError(f"at most {MAX_EXCLUDE_TEXTS} excluded texts, got {len(terms)}")
    return list(dict.fromkeys(terms))


def mentions(metadata: dict, terms: Sequence[str]) -> bool:
    """Whether any of ``terms`` appears as whole words in the product's catalog text
    (:data:`TEXT_FIELDS`; case and spacing ignored): "black" matches "a black tote", not
    "blackberry"."""
    wanted = [p for p in (_plain(t) for t in terms) if p]
    if not wanted:
        return False
    text = _plain(" ".join(str(metadata[f]) for f in TEXT_FIELDS if metadata.get(f)))
    return any(f" {p} " in f" {text} " for p in wanted)


def _plain(text: str) -> str:
    """Lower-cased words: every run of characters other than letters and digits is one space."""
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())
