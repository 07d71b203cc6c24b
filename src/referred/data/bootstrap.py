"""``bootstrap_IDs.pkl``: the evaluation subsets, read with a restricted unpickler.

The file is a dict: ``"test_subsets"`` is a list of N arrays of PRODUCT_IDs, each
``"dist_<n>_subsets"`` a list of N arrays of distractor row labels; all sampled with
replacement (duplicates weight a product's result). Unpickling can run arbitrary code, so the
loader only resolves the globals that builtin containers and numpy arrays need; anything else
is refused with :class:`UnsafePickleError` before it can run.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from referred.data.files import atomic_output
from referred.data.records import DataFileError

#: The only globals a bootstrap file may reference: numpy array and dtype reconstruction,
#: builtin containers, and the codec that protocol-2 pickles use for bytes.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "tuple"),
        ("builtins", "bytearray"),
        ("_codecs", "encode"),
    }
)

_SUBSET_KEY = re.compile(r"^(test|dist_\w+)_subsets$")


class UnsafePickleError(DataFileError):
    """A pickle that references a global outside :data:`ALLOWED_GLOBALS`."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._source}: refusing to unpickle {module}.{name}; a bootstrap file may only "
            "hold dicts, lists, tuples and numpy arrays"
        )


def safe_load_pickle(data: bytes, source: str = "<bytes>") -> object:
    """Unpickle ``data`` allowing only builtin containers and numpy arrays."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # a malformed pickle can raise almost anything
        raise DataFileError(
            f"{source}: not a readable pickle ({type(exc).__name__}: {exc})"
        ) from exc


def load_bootstrap_ids(path: Path) -> dict[str, list[np.ndarray]]:
    """Read ``bootstrap_IDs.pkl`` safely; each value becomes a list of 1-D arrays.

    Raises :class:`UnsafePickleError` for a file referencing anything but containers and numpy
    arrays, :class:`DataFileError` for a missing, malformed or wrongly shaped file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"missing file: {path}")
    obj = safe_load_pickle(path.read_bytes(), str(path))
    return validate_bootstrap(obj, str(path))


def validate_bootstrap(obj: object, source: str) -> dict[str, list[np.ndarray]]:
    """Check the published shape (a dict of lists of 1-D arrays) and normalise to that."""
    if not isinstance(obj, Mapping):
        raise DataFileError(f"{source}: expected a dict of subsets, found {type(obj).__name__}")
    out: dict[str, list[np.ndarray]] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not _SUBSET_KEY.match(key):
            raise DataFileError(
                f"{source}: unexpected key {key!r}; expected 'test_subsets' or 'dist_<n>_subsets'"
            )
        if not isinstance(value, (list, tuple)):
            raise DataFileError(f"{source}: {key} is a {type(value).__name__}, expected a list")
        arrays = [np.asarray(v) for v in value]
        if any(a.ndim != 1 for a in arrays):
            raise DataFileError(f"{source}: {key} must be a list of 1-D arrays")
        out[key] = arrays
    return out


def save_bootstrap_ids(path: Path, subsets: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write ``subsets`` in the published shape (atomically, pickle protocol 4)."""
    clean = validate_bootstrap({k: list(v) for k, v in subsets.items()}, str(path))
    with atomic_output(Path(path)) as tmp:
        tmp.write_bytes(pickle.dumps(clean, protocol=4))


def draw_bootstrap_ids(
    product_ids: np.ndarray,
    n_distractors: int,
    *,
    seed: int | Sequence[int],
    n_subsets: int = 10,
    subset_size: int = 1000,
    distractor_sizes: Sequence[int] = (),
) -> dict[str, list[np.ndarray]]:
    """Subsets in the published shape, drawn with replacement from a seeded generator.

    ``test_subsets``: ``n_subsets`` arrays of ``min(subset_size, len(product_ids))`` ids;
    ``dist_<n>_subsets``: ``n_subsets`` arrays of ``n`` row labels in ``range(n_distractors)``.
    """
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(product_ids))
    out = {"test_subsets": [rng.choice(product_ids, size=size) for _ in range(n_subsets)]}
    for n in distractor_sizes:
        if n_distractors > 0:
            labels = [
                rng.integers(0, n_distractors, size=n, dtype=np.int64) for _ in range(n_subsets)
            ]
            out[f"dist_{n}_subsets"] = labels
    return out
