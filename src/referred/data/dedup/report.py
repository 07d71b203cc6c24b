"""Writing a dedup result: the groups, the pairs, the cleaned lists and a summary.

Files in the output folder:

- ``summary.json``: the configuration, counts (items, pairs by role, groups, dropped by role),
  what each search cost and its seconds;
- ``groups.json``: one entry per group of two or more near-duplicates, members with id, role
  and whether the cleaned list keeps them, and the group's pairs with both scores;
- ``pairs.parquet``: every pair (``id_a, role_a, id_b, role_b, hamming, cosine``; hamming -1
  without a hash, cosine null without a vector);
- ``kept.txt`` (products or catalog items) and ``kept_distractors.txt`` (when there are
  distractors): the cleaned lists, one id a line, in input order;
- ``dropped.tsv``: ``role, id, duplicate_of`` for every item the cleaned list leaves out;
- ``failures.tsv``: items whose image could not be read (not hashed, still in the lists).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from referred.data.dedup.groups import DISTRACTOR, PRODUCT
from referred.data.dedup.run import DedupResult

ROLE_NAMES = {PRODUCT: "product", DISTRACTOR: "distractor"}


def read_id_list(path: str | os.PathLike) -> list[str]:
    """The ids of a cleaned list (``kept.txt``): one a line, blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such id list: {path} (give the kept.txt dedup wrote)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def summary(result: DedupResult) -> dict[str, Any]:
    """Counts and costs of ``result`` (what ``summary.json`` holds)."""
    roles = result.items.roles
    pair_roles = roles[result.i].astype(int) + roles[result.j].astype(int)
    cfg = result.config
    out: dict[str, Any] = {
        "config": {
            "methods": list(cfg.methods),
            "max_hamming": cfg.max_hamming,
            "min_cosine": cfg.min_cosine,
            "combine": cfg.combine,
            "scope": cfg.scope,
            "nprobe": cfg.nprobe,
        },
        "items": {name: int((roles == r).sum()) for r, name in ROLE_NAMES.items()},
        "pairs": {
            "product-product": int((pair_roles == 0).sum()),
            "product-distractor": int((pair_roles == 1).sum()),
            "distractor-distractor": int((pair_roles == 2).sum()),
        },
        "groups": len(result.groups),
        "dropped": {
            name: int(((roles == r) & ~result.kept).sum()) for r, name in ROLE_NAMES.items()
        },
        "unreadable": len(result.items.failures),
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }
    if result.hamming_stats is not None:
        out["phash_search"] = vars(result.hamming_stats)
    if result.vector_stats is not None:
        out["embedding_search"] = vars(result.vector_stats)
    return out


def write_report(result: DedupResult, out: str | os.PathLike) -> Path:
    """Write the files of the module docstring into ``out`` (created); returns it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = result.items
    ids = np.asarray(items.ids, dtype=object)
    _write_pairs(result, ids, out / "pairs.parquet")
    (out / "groups.json").write_text(json.dumps(_groups(result, ids), indent=1))
    for role, name in ((PRODUCT, "kept.txt"), (DISTRACTOR, "kept_distractors.txt")):
        if role == PRODUCT or (items.roles == role).any():
            keep = (items.roles == role) & result.kept
            (out / name).write_text("".join(f"{x}\n" for x in ids[keep]))
    dropped = np.flatnonzero(~result.kept)
    lines = ["role\tid\tduplicate_of\n"] + [
        f"{ROLE_NAMES[int(items.roles[k])]}\t{ids[k]}\t{ids[result.duplicate_of[k]]}\n"
        for k in dropped
    ]
    (out / "dropped.tsv").write_text("".join(lines))
    if items.failures:
        text = "".join(f"{i}\t{r}\n" for i, r in items.failures)
        (out / "failures.tsv").write_text("id\treason\n" + text)
    (out / "summary.json").write_text(json.dumps(summary(result), indent=2))
    return out


def _write_pairs(result: DedupResult, ids: np.ndarray, path: Path) -> None:
    roles = np.asarray([ROLE_NAMES[r] for r in (PRODUCT, DISTRACTOR)], dtype=object)
    r = result.items.roles
    table = pa.table(
        {
            "id_a": pa.array(ids[result.i].tolist(), pa.string()),
            "role_a": pa.array(roles[r[result.i]].tolist(), pa.string()),
            "id_b": pa.array(ids[result.j].tolist(), pa.string()),
            "role_b": pa.array(roles[r[result.j]].tolist(), pa.string()),
            "hamming": pa.array(result.hamming.astype(np.int16)),
            "cosine": pa.array(result.cosine, pa.float32(), from_pandas=True),
        }
    )
    pq.write_table(table, path)


def _groups(result: DedupResult, ids: np.ndarray) -> list[dict[str, Any]]:
    """Each group's members and pairs (pairs looked up by the group's smallest member)."""
    owner = np.full(len(ids), -1, dtype=np.int64)
    for g, members in enumerate(result.groups):
        owner[members] = g
    by_group: list[list[dict[str, Any]]] = [[] for _ in result.groups]
    for a, b, h, c in zip(result.i, result.j, result.hamming, result.cosine):
        by_group[owner[a]].append(
            {
                "a": ids[a],
                "b": ids[b],
                "hamming": None if h < 0 else int(h),
                "cosine": None if np.isnan(c) else round(float(c), 5),
            }
        )
    return [
        {
            "members": [
                {
                    "id": ids[k],
                    "role": ROLE_NAMES[int(result.items.roles[k])],
                    "kept": bool(result.kept[k]),
                }
                for k in members
            ],
            "pairs": pairs,
        }
        for members, pairs in zip(result.groups, by_group)
    ]
