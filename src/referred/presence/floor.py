"""The score floor: below it a result is *weak*, as true matches rarely score so low.

A search always returns k products, however poor: asked **Bags** on a catalog without bags,
the best are shoes at scores near 0. Whether a score is high enough depends on the model, so
it is measured, not guessed: each validation product's scene is embedded conditioned on the
product's category and scored against the product itself (the exact match the shopper wants);
the floor is the ``quantile`` of those scores (default 5%: 95 in 100 true matches score at
least as much). :class:`referred.search.Searcher` marks every photo-query result under the
floor ``weak``; the page dims them and the API says so. The floor is saved beside the model as
``score_floor.json`` and loaded by :func:`referred.load_model` (``model.score_floor``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FILE = "score_floor.json"
FORMAT = "referred.score_floor"


def match_scores(
    model: Any,
    data: str | Path,
    split: str,
    limit: int | None = 1000,
    batch: int = 16,
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """Cosine scores (n,) of each ``split`` product's first scene, conditioned on its category,
    against the product's first gallery image (products with a category and both images; at
    most ``limit``)."""
    from referred.data import open_dataset
    from referred.query import NONE, QueryEncoder

    encoder = QueryEncoder(model.eval())
    pairs = []
    for product in open_dataset(data).products(split):
        if product.category and product.simple and product.complex:
            pairs.append((product.complex[0], product.simple[0], str(product.category)))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise ValueError(f"{data}: no {split!r} products with a category, a scene and an image")
    scores = []
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        conds = [encoder.parse(category=c) for _, _, c in chunk]
        scenes = encoder.encode([s.open() for s, _, _ in chunk], conds).numpy()
        items = encoder.encode([p.open() for _, p, _ in chunk], [NONE] * len(chunk)).numpy()
        scores.append((scenes * items).sum(axis=1))
        if (i // batch) % 20 == 0:
            log(f"  {split}: {i + len(chunk)}/{len(pairs)} pairs scored")
    return np.concatenate(scores).astype(np.float64)


def fit_score_floor(
    model: Any,
    data: str | Path,
    *,
    quantile: float = 0.05,
    limit: int | None = 1000,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The floor fitted on the validation split and checked on the test split: a record
    ``{"floor", "quantile", "valid_pairs", "test_pairs", "test_share_at_or_above"}`` (the last:
    the share of the test split's true matches not marked weak, ≈ 1 − quantile)."""
    if not 0 < quantile < 0.5:
        raise ValueError(f"quantile must be in (0, 0.5), got {quantile}")
    valid = match_scores(model, data, "valid", limit, log=log)
    floor = float(np.quantile(valid, quantile))
    record: dict[str, Any] = {
        "floor": round(floor, 6),
        "quantile": quantile,
        "valid_pairs": len(valid),
        "valid_median": round(float(np.median(valid)), 6),
    }
    try:
        test = match_scores(model, data, "test", limit, log=log)
    except ValueError:
        return record
    record.update(test_pairs=len(test), test_share_at_or_above=float((test >= floor).mean()))
    return record


def save_floor(directory: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` (from :func:`fit_score_floor`) as ``score_floor.json``, atomically."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, "format_version": 1, **record}, indent=2))
    tmp.replace(d / FILE)


def load_floor(directory: str | Path) -> float | None:
    """The floor saved in ``directory``, or None; a file that is not one is a ValueError."""
    record = load_floor_record(directory)
    return None if record is None else record["floor"]


def load_floor_record(directory: str | Path) -> dict[str, Any] | None:
    """The whole record saved in ``directory`` (its ``floor`` a float), or None."""
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if record.get("format") != FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {FORMAT!r}")
        floor = float(record["floor"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a score floor: {exc}") from None
    if not -1.0 <= floor <= 1.0:
        raise ValueError(f"{path}: a cosine floor lies in [-1, 1], got {floor}")
    return {**record, "floor": floor}


def attach_floor(model: Any, floor: float | None, record: dict[str, Any] | None = None) -> None:
    """``model.score_floor`` as a plain attribute (not part of the weights or fingerprint);
    ``record`` (how it was measured) as ``model.score_floor_record``, which saving keeps."""
    object.__setattr__(model, "score_floor", floor)
    object.__setattr__(model, "score_floor_record", record if floor is not None else None)
