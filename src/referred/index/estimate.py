"""Memory estimates per spec, computed before building (no faiss or pymilvus needed)."""

from __future__ import annotations

import re

from referred.index.errors import SpecError

#: Bytes per id held in RAM by the catalogue (referred.index.idtable: the id's characters,
#: its offset, hash, row and liveness; measured ~43 B for 8-character ids at 2M).
ID_BYTES = 48


def estimate_flat(n: int, dim: int) -> int:
    """Bytes for ``n`` vectors of ``dim`` in a flat index: vectors plus the id catalogue."""
    return n * (4 * dim + ID_BYTES)


def estimate_milvus(n: int, dim: int) -> int:
    """Rough bytes for ``n`` vectors in Milvus (float vectors plus ~100 bytes of row overhead)."""
    return n * (4 * dim + 100)


_SQ_BYTES = {"SQ4": 0.5, "SQ6": 0.75, "SQ8": 1.0, "SQfp16": 2.0, "SQbf16": 2.0}


def estimate_faiss(factory: str, n: int, dim: int, store_vectors: bool | None = None) -> int:
    """Bytes for ``n`` vectors in ``faiss:<factory>`` (index + stored floats + id catalogue).

    Counted per vector: codes (Flat 4·d, SQ8 d, SQ4 d/2, PQm m·nbits/8), HNSW links
    (~8.25·M + 12), IVF ids (8), the float vectors kept beside lossy indexes (4·dim) and the id
    catalogue; once: IVF centroids, PQ codebooks, PCA/OPQ matrices.
    """
    parts = factory.split(",")
    per_vec, fixed, d = float(ID_BYTES), 0.0, dim
    exact = all(re.fullmatch(r"HNSW\d+|Flat", p) for p in parts)
    for part in parts:
        if m := re.fullmatch(r"(?:PCAR?|PCAW|OPQ\d+_?)(\d+)?", part):
            d_out = int(m.group(1) or d)
            fixed += 4.0 * d * d_out
            d = d_out
        elif m := re.fullmatch(r"IVF(\d+)(?:_HNSW(\d+))?", part):
            nlist = int(m.group(1))
            fixed += 4.0 * nlist * d + (nlist * (8.25 * int(m.group(2)) + 12) if m.group(2) else 0)
            per_vec += 8
        elif m := re.fullmatch(r"HNSW(\d+)", part):
            per_vec += 8.25 * int(m.group(1)) + 12
            if part == parts[-1]:
                per_vec += 4 * d  # a bare "HNSW32" is HNSW32,Flat
        elif part in ("Flat", "RFlat", "Refine(Flat)"):
            per_vec += 4 * d
        elif part in _SQ_BYTES:
            per_vec += _SQ_BYTES[part] * d
        elif m := re.fullmatch(r"PQ(\d+)(?:x(\d+))?(?:fs|fsr)?(?:np)?", part):
            sub, nbits = int(m.group(1)), int(m.group(2) or 8)
            per_vec += sub * nbits / 8
            fixed += 4.0 * (2**nbits) * d
        else:
            raise SpecError(f"cannot estimate memory for faiss component {part!r} of {factory!r}")
    if (not exact) if store_vectors is None else store_vectors:
        per_vec += 4 * dim
    return int(n * per_vec + fixed)
