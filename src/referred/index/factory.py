"""Build, reopen and size an index from a spec string.

Specs:
  ``flat``                      exact inner product in numpy (default)
  ``faiss:<index_factory>``     e.g. ``faiss:HNSW32``, ``faiss:IVF4096,SQ8``, ``faiss:IVF4096,PQ64``
  ``milvus:<uri>``              ``milvus:./catalog.db`` (Milvus Lite) or ``milvus:http://host:19530``

Backends needing optional packages (faiss-cpu, pymilvus) import them only when chosen.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from referred.index.base import PathLike, VectorIndex
from referred.index.errors import CorruptIndexError, SpecError
from referred.index.estimate import estimate_faiss, estimate_flat, estimate_milvus
from referred.index.storage import read_manifest

DEFAULT_SPEC = "flat"
ACCEPTED = (
    "'flat', 'faiss:<index_factory string>' (e.g. 'faiss:HNSW32', 'faiss:IVF4096,SQ8'), "
    "'milvus:<uri>' (e.g. 'milvus:./catalog.db', 'milvus:http://host:19530')"
)
# backend name -> (module, class); modules are imported only when their backend is used.
_BACKENDS = {
    "flat": ("referred.index.flat", "FlatIndex"),
    "faiss": ("referred.index.faiss_index", "FaissIndex"),
    "milvus": ("referred.index.milvus_index", "MilvusIndex"),
}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``spec`` into (backend, argument); raises SpecError listing the accepted forms."""
    if not isinstance(spec, str):
        raise SpecError(f"index spec must be a str, got {spec!r}; accepted: {ACCEPTED}")
    head, sep, arg = spec.strip().partition(":")
    backend = head.strip().lower()
    if backend == "flat" and not sep:
        return "flat", ""
    if backend in ("faiss", "milvus") and arg.strip():
        return backend, arg.strip()
    raise SpecError(f"unknown index spec {spec!r}; accepted: {ACCEPTED}")


def _backend_class(backend: str) -> Any:
    module, name = _BACKENDS[backend]
    return getattr(importlib.import_module(module), name)


def create_index(spec: str = DEFAULT_SPEC, dim: int = 512, **options: Any) -> VectorIndex:
    """A new, empty index for vectors of ``dim`` float32, backend chosen by ``spec``.

    Options are backend keywords (faiss: ``rerank``, ``ef_search``, ``nprobe``, ``threads``, …;
    milvus: ``collection``, ``token``, …); an option the backend lacks raises SpecError naming
    the accepted ones.
    """
    backend, arg = parse_spec(spec)
    cls = _backend_class(backend)
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p, v in params.items() if v.kind is v.KEYWORD_ONLY and p != "spec"]
    bad = sorted(set(options) - set(accepted))
    if bad:
        raise SpecError(
            f"unknown option(s) {bad} for {backend!r} indexes; accepted: {accepted or 'none'}"
        )
    if backend == "flat":
        return cls(dim, **options)
    return cls(dim, arg, spec=spec.strip(), **options)


def load_index(
    path: PathLike, *, mmap: bool = True, verify: bool = False, **options: Any
) -> VectorIndex:
    """Reopen an index written by ``index.save(path)``.

    mmap: memory-map the float vectors (``.npy``) instead of reading them into RAM.
    verify: also check every file's sha256 against the manifest (reads every byte).
    options: search-time options to change (faiss: ``ef_search``, ``nprobe``, ``rerank``, …).
    Raises IndexNotFoundError, or CorruptIndexError for a missing, truncated or foreign file.
    """
    directory, manifest = read_manifest(path, verify=verify)
    backend = manifest["backend"]
    if backend not in _BACKENDS:
        raise CorruptIndexError(f"{directory} was saved by unknown backend {backend!r}")
    return _backend_class(backend)._load(directory, manifest, mmap=mmap, **options)


def estimate_memory(spec: str, n: int, dim: int, **options: Any) -> int:
    """Bytes an index of ``n`` vectors of ``dim`` will take, before building it.

    flat: the vectors (4·dim per vector) plus the id catalogue. faiss: codes, graph links,
    IVF ids and centroids, the float vectors kept beside lossy indexes, the id catalogue (see
    :func:`referred.index.faiss_index.estimate_faiss`). milvus: a rough figure for the server.
    Metadata columns are not counted. After ``load_index`` the float vectors are memory-mapped,
    so resident memory can be much lower than this.
    """
    backend, arg = parse_spec(spec)
    if n < 0 or dim <= 0:
        raise SpecError(f"estimate_memory needs n >= 0 and dim > 0, got n={n}, dim={dim}")
    if backend == "flat":
        return estimate_flat(n, dim)
    if backend == "faiss":
        return estimate_faiss(arg, n, dim, options.get("store_vectors"))
    return estimate_milvus(n, dim)
