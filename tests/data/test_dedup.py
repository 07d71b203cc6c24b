"""Near-duplicate cleaning: the hash, the two searches against brute force, the keep/drop rule
by hand, and `referred data dedup` on planted copies."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from referred.data.dedup import (
    DedupConfig,
    Items,
    components,
    decide,
    embedding_pairs,
    find_duplicates,
    hamming,
    hamming_pairs,
    hash_thumbnails,
    phash,
)
from referred.data.dedup.phash import _U, _V
from referred.data.dedup.plant import plant


def smooth_image(seed: int, size: int = 96) -> Image.Image:
    """A smooth random RGB image: 6 x 6 noise upscaled (distinct images, distinct hashes)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    return small.resize((size, size), Image.Resampling.BICUBIC)


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- the hash ---------------------------------------------------------------------------


def test_hash_matches_an_independent_dct():
    fft = pytest.importorskip("scipy.fft")
    grey = np.random.default_rng(0).uniform(0, 255, (5, 32, 32))
    ours = hash_thumbnails(grey)
    for g, h in zip(grey, ours):
        low = fft.dctn(g, type=2)[_U, _V]  # another DCT-II (scipy's scaling: same signs)
        bits = low > np.median(low)
        assert int(h) == sum(1 << k for k in range(64) if bits[k])
        assert bin(int(h)).count("1") == 32  # above the median of 64 distinct values


def test_hash_ignores_brightness_and_contrast_and_survives_reencoding():
    grey = np.random.default_rng(1).uniform(0, 255, (1, 32, 32))
    h = hash_thumbnails(grey)[0]
    assert hash_thumbnails(grey + 17.0)[0] == h  # only the DC term moves
    assert hash_thumbnails(grey * 1.7)[0] == h  # every AC coefficient scales
    img = smooth_image(3)
    base = phash(jpeg(img))
    assert hamming(base, phash(jpeg(img, quality=35))) <= 4
    assert hamming(base, phash(plant(img, "jitter", 0))) <= 6
    assert hamming(base, phash(smooth_image(4))) > 12


def test_hash_refuses_what_is_not_an_image():
    from referred.imageio import ImageDecodeError

    with pytest.raises(ImageDecodeError, match="not a readable image"):
        phash(b"not a jpeg")
    with pytest.raises(TypeError, match=r"PIL\.Image, a path, or encoded image bytes"):
        phash(42)
    with pytest.raises(ValueError, match=r"\(B, 32, 32\)"):
        hash_thumbnails(np.zeros((2, 16, 16)))


# --- Hamming search: multi-index hashing against all pairs --------------------------------


def clustered_hashes(n: int, seed: int) -> np.ndarray:
    """Hashes around 15 centres (big buckets, many near pairs), with 0-5 random bit flips."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, 15, dtype=np.uint64, endpoint=False)[rng.integers(0, 15, n)]
    for _ in range(5):
        flip = np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64)
        h ^= np.where(rng.random(n) < 0.6, flip, np.uint64(0))
    return h


@pytest.mark.parametrize("bands", [3, 4, 8])
@pytest.mark.parametrize("radius", [0, 2, 5, 7])
def test_hamming_pairs_equal_brute_force(bands, radius):
    h = clustered_hashes(600, seed=radius)
    dist = hamming(h[:, None], h[None, :])
    ti, tj = np.nonzero(np.triu(dist <= radius, 1))
    i, j, d = hamming_pairs(h, radius, bands=bands, chunk=500)  # many chunks
    np.testing.assert_array_equal(i, ti)
    np.testing.assert_array_equal(j, tj)
    np.testing.assert_array_equal(d, dist[ti, tj])


def test_hamming_pairs_refuse_bad_input():
    with pytest.raises(ValueError, match=r"radius must be in 0\.\.64"):
        hamming_pairs(np.zeros(3, np.uint64), 65)
    with pytest.raises(ValueError, match="bands must be one of"):
        hamming_pairs(np.zeros(3, np.uint64), 3, bands=9)
    with pytest.raises(ValueError, match="1-d uint64"):
        hamming_pairs(np.zeros((3, 2), np.uint64), 3)


# --- embedding search: FAISS range search against all pairs -------------------------------


def planted_vectors(n: int, d: int, planted: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    src, dst = np.arange(planted), n - planted + np.arange(planted)
    x[dst] = x[src] + 0.15 * rng.standard_normal((planted, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), src, dst


@pytest.mark.parametrize("exact_below", [10**9, 100])  # exact flat, then PCA + IVF
def test_embedding_pairs_find_every_pair_over_the_threshold(exact_below):
    pytest.importorskip("faiss")
    x, _, _ = planted_vectors(1500, 96, 60, seed=0)
    sims = x @ x.T
    ti, tj = np.nonzero(np.triu(sims >= 0.95, 1))
    assert len(ti) == 60  # the planted pairs, nothing else that close
    i, j, cos = embedding_pairs(x, 0.95, exact_below=exact_below, nprobe=4)
    np.testing.assert_array_equal(i, ti)
    np.testing.assert_array_equal(j, tj)
    np.testing.assert_allclose(cos, sims[ti, tj], atol=1e-6)


def test_embedding_pairs_refuse_unnormalised_vectors():
    pytest.importorskip("faiss")
    with pytest.raises(ValueError, match=r"row 1 has norm 2\.0000"):
        embedding_pairs(np.array([[1.0, 0.0], [2.0, 0.0]]), 0.9)
    with pytest.raises(ValueError, match=r"min_cosine must be in \[-1, 1\]"):
        embedding_pairs(np.eye(2, dtype=np.float32), 1.5)


# --- groups and the cleaned list, by hand ---------------------------------------------------


def test_decide_keeps_products_first_and_never_drops_for_a_dropped_item():
    # items: 0 P, 1 D, 2 D, 3 P, 4 P, 5 D
    roles = np.array([0, 1, 1, 0, 0, 1], dtype=np.int8)
    # priority: products 0, 3, 4, then distractors 1, 2, 5. 0~4: product 4 goes for 0.
    # 1~2 and 2~3: distractor 1 is decided first and kept; 2 goes, naming product 3 (its
    # first-ranked partner). 4~5: distractor 5 resembles only the dropped 4, so it stays.
    i = np.array([1, 2, 0, 4])
    j = np.array([2, 3, 4, 5])
    kept, dup = decide(roles, i, j)
    assert kept.tolist() == [True, True, False, True, False, True]
    assert dup.tolist() == [-1, -1, 3, -1, 0, -1]
    assert components(6, i, j).tolist() == [0, 1, 1, 1, 0, 0]


def test_scope_and_combine_choose_the_pairs():
    roles = np.array([0, 0, 1], dtype=np.int8)
    hashes = np.array([0, 0b1, 0b11], dtype=np.uint64)  # distances 1, 2, 1
    vectors = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    items = Items(["a", "b", "c"], roles, hashes, None, vectors, None)
    cross = find_duplicates(items, DedupConfig(methods=("phash",), max_hamming=2, scope="cross"))
    assert list(zip(cross.i, cross.j)) == [(0, 2), (1, 2)]
    both = find_duplicates(items, DedupConfig(methods=("phash", "embedding"), max_hamming=2))
    assert list(zip(both.i, both.j)) == [(0, 1)]  # the only pair both signals agree on
    with pytest.raises(ValueError, match="unknown dedup method"):
        DedupConfig(methods=("md5",))


# --- the command -----------------------------------------------------------------------------


def write_folder(root, images: dict[str, bytes]) -> None:
    root.mkdir(parents=True)
    for name, data in images.items():
        (root / f"{name}.jpg").write_bytes(data)


def write_embeddings(path, ids, vectors) -> None:
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))
    pq.write_table(
        pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])}),
        path,
    )


def test_cli_finds_planted_copies_between_products_and_distractors(tmp_path, capsys):
    from referred.cli import main

    products = {f"p{k}": jpeg(smooth_image(k)) for k in range(12)}
    distractors = {f"d{k}": jpeg(smooth_image(100 + k)) for k in range(12)}
    distractors["copy3"] = plant(smooth_image(3), "reencode", 0)
    distractors["copy7"] = plant(smooth_image(7), "jitter", 1)
    products["p5copy"] = plant(smooth_image(5), "resize", 2)  # a duplicate within the catalog
    write_folder(tmp_path / "cat", products)
    write_folder(tmp_path / "dist", distractors)
    (tmp_path / "dist" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "report"
    code = main(
        [
            "data",
            "dedup",
            str(tmp_path / "cat"),
            "--distractors",
            str(tmp_path / "dist"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert "13 products, 14 distractors (1 unreadable)" in capsys.readouterr().out
    kept = (out / "kept.txt").read_text().split()
    kept_d = (out / "kept_distractors.txt").read_text().split()
    assert "p5copy" not in kept and {"p3", "p5", "p7"} <= set(kept)
    assert "copy3" not in kept_d and "copy7" not in kept_d and "d0" in kept_d
    dropped = (out / "dropped.tsv").read_text().splitlines()[1:]
    assert sorted(dropped) == [
        "distractor\tcopy3\tp3",
        "distractor\tcopy7\tp7",
        "product\tp5copy\tp5",
    ]
    groups = json.loads((out / "groups.json").read_text())
    assert len(groups) == 3 and all(len(g["members"]) == 2 for g in groups)
    pairs = pq.read_table(out / "pairs.parquet").to_pylist()
    assert {(p["id_a"], p["id_b"]) for p in pairs} == {
        ("p3", "copy3"),
        ("p7", "copy7"),
        ("p5", "p5copy"),
    }
    assert "broken" in (out / "failures.tsv").read_text()


def test_cli_embedding_only_and_bad_input(tmp_path, capsys):
    pytest.importorskip("faiss")
    from referred.cli import main

    x, src, dst = planted_vectors(40, 16, 3, seed=1)
    ids = [f"i{k}" for k in range(40)]
    write_embeddings(tmp_path / "emb.parquet", ids, x)
    out = tmp_path / "r"
    assert (
        main(["data", "dedup", "--embeddings", str(tmp_path / "emb.parquet"), "--out", str(out)])
        == 0
    )
    dropped = [line.split("\t")[1:] for line in (out / "dropped.tsv").read_text().splitlines()[1:]]
    assert sorted(dropped) == sorted([[ids[d], ids[s]] for s, d in zip(src, dst)])
    assert main(["data", "dedup", "--out", str(out)]) == 2
    assert "give the items" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "dedup",
                "--embeddings",
                str(tmp_path / "emb.parquet"),
                "--out",
                str(out),
                "--method",
                "phash",
            ]
        )
        == 2
    )
    assert "needs images" in capsys.readouterr().err


def test_dedup_imports_no_torch_and_no_higher_layer():
    import subprocess
    import sys

    code = (
        "import sys, referred.data.dedup; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(("
        "'referred.index', 'referred.catalog', 'referred.model', 'referred.search'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
