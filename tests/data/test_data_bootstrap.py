"""``bootstrap_IDs.pkl`` is read with an unpickler that refuses anything but arrays."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from referred.data import DataFileError, UnsafePickleError, load_bootstrap_ids, save_bootstrap_ids
from referred.data.bootstrap import draw_bootstrap_ids, safe_load_pickle


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_committed_fixture_loads(fixtures: Path) -> None:
    subsets = load_bootstrap_ids(fixtures / "training" / "bootstrap_IDs.pkl")
    assert sorted(subsets) == ["dist_2_subsets", "test_subsets"]
    assert subsets["test_subsets"][0].tolist() == [301, 302, 302]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_load_under_every_protocol(tmp_path: Path, protocol: int) -> None:
    data = {"test_subsets": [np.arange(5), np.array(["a", "b"], dtype=object)],
            "dist_10_subsets": (np.zeros(3, np.int32),)}  # fmt: skip
    path = tmp_path / "b.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = load_bootstrap_ids(path)
    assert loaded["test_subsets"][0].tolist() == [0, 1, 2, 3, 4]
    assert loaded["test_subsets"][1].tolist() == ["a", "b"]
    assert loaded["dist_10_subsets"][0].dtype == np.int32


def test_malicious_pickle_is_refused_before_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "bootstrap_IDs.pkl"
    path.write_bytes(pickle.dumps({"test_subsets": [_Exploit(marker)]}))
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        load_bootstrap_ids(path)
    assert not marker.exists()


def test_arbitrary_classes_are_refused() -> None:
    with pytest.raises(UnsafePickleError, match=r"collections\.OrderedDict"):
        safe_load_pickle(pickle.dumps(__import__("collections").OrderedDict(a=1)))


@pytest.mark.parametrize(
    ("payload", "message"),
    [(pickle.dumps([1, 2]), "expected a dict"),
     (pickle.dumps({"weights": []}), "unexpected key 'weights'"),
     (pickle.dumps({"test_subsets": [np.zeros((2, 2))]}), "1-D arrays"),
     (b"not a pickle at all", "not a readable pickle")],
)  # fmt: skip
def test_wrong_shapes_are_clear_errors(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "b.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataFileError, match=message):
        load_bootstrap_ids(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="missing file"):
        load_bootstrap_ids(tmp_path / "absent.pkl")


def test_draw_and_save_round_trip(tmp_path: Path) -> None:
    ids = np.array([5, 6, 7])
    a = draw_bootstrap_ids(ids, 50, seed=1, n_subsets=4, distractor_sizes=[10])
    b = draw_bootstrap_ids(ids, 50, seed=1, n_subsets=4, distractor_sizes=[10])
    assert all((x == y).all() for x, y in zip(a["test_subsets"], b["test_subsets"]))
    assert len(a["test_subsets"]) == 4 and a["test_subsets"][0].shape == (3,)
    assert set(np.concatenate(a["test_subsets"]).tolist()) <= {5, 6, 7}
    assert a["dist_10_subsets"][0].shape == (10,) and a["dist_10_subsets"][0].max() < 50
    save_bootstrap_ids(tmp_path / "b.pkl", a)
    assert load_bootstrap_ids(tmp_path / "b.pkl")["dist_10_subsets"][2].tolist() == (
        a["dist_10_subsets"][2].tolist()
    )
