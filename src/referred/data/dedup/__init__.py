"""Near-duplicate cleaning: within a catalog, and between products and distractors (§3.1).

Two signals, each searched without comparing all pairs: a 64-bit DCT perceptual hash
(:mod:`.phash`, Pillow + numpy) searched by multi-index hashing (:mod:`.hamming`), and
embeddings searched by FAISS range search (:mod:`.vectors`). :mod:`.groups` turns pairs into
groups and a cleaned list, :mod:`.report` writes them, :func:`dedup_files` runs a job from
files (``referred data dedup``)::

    from referred.data.dedup import DedupConfig, dedup_files
    result = dedup_files("dedup-out", DedupConfig(methods=("phash", "embedding")),
                         source="LRVSF/", split="test", embeddings="test-emb.parquet")
    # dedup-out/kept.txt, kept_distractors.txt, groups.json, pairs.parquet, summary.json
"""

from referred.data.dedup.groups import SCOPES, components, decide
from referred.data.dedup.hamming import HammingStats, hamming_pairs
from referred.data.dedup.job import dedup_files
from referred.data.dedup.phash import hamming, hash_thumbnails, phash, thumbnail
from referred.data.dedup.report import read_id_list, summary, write_report
from referred.data.dedup.run import (
    COMBINES,
    METHODS,
    DedupConfig,
    DedupResult,
    Items,
    find_duplicates,
    hash_items,
)
from referred.data.dedup.vectors import VectorStats, embedding_pairs

__all__ = [
    "COMBINES",
    "METHODS",
    "SCOPES",
    "DedupConfig",
    "DedupResult",
    "HammingStats",
    "Items",
    "VectorStats",
    "components",
    "decide",
    "dedup_files",
    "embedding_pairs",
    "find_duplicates",
    "hamming",
    "hamming_pairs",
    "hash_items",
    "hash_thumbnails",
    "phash",
    "read_id_list",
    "summary",
    "thumbnail",
    "write_report",
]
