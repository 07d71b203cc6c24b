"""Parquet embeddings matched by URL; missing URLs fail clearly; model seam helpers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from referred.eval.benchmark import evaluate
from referred.eval.embeddings import MissingEmbeddingsError, ParquetEmbeddings, read_embeddings
from referred.eval.encode import Benchmarkable, embed_in_batches
from referred.eval.sources import array_blocks
from tests.eval.synth import realistic_bench


def write_embs(path, urls, embs, fixed=False, row_group_size=4):
    values = pa.array(embs.ravel(), pa.float32())
    if fixed:
        col = pa.FixedSizeListArray.from_arrays(values, embs.shape[1])
    else:
        col = pa.ListArray.from_arrays(pa.array(np.arange(len(urls) + 1) * embs.shape[1]), values)
    pq.write_table(pa.table({"url": urls, "embeddings": col}), path, row_group_size=row_group_size)


@pytest.mark.parametrize("fixed", [False, True])
def test_read_by_url_any_order(tmp_path, fixed):
    rng = np.random.default_rng(0)
    embs = rng.standard_normal((10, 3)).astype(np.float32)
    urls = [f"http://x/{i}.jpg" for i in range(10)]
    write_embs(tmp_path / "p.parquet", urls, embs, fixed)
    wanted = [urls[7], urls[2], urls[7], urls[0]]
    np.testing.assert_array_equal(
        read_embeddings(tmp_path / "p.parquet", wanted), embs[[7, 2, 7, 0]]
    )


def test_stream_blocks_across_files(tmp_path):
    rng = np.random.default_rng(1)
    embs = rng.standard_normal((23, 4)).astype(np.float32)
    urls = [f"u{i}" for i in range(23)]
    write_embs(tmp_path / "dist_0.parquet", urls[:11], embs[:11])
    write_embs(tmp_path / "dist_1.parquet", urls[11:], embs[11:], fixed=True)
    store = ParquetEmbeddings(sorted(tmp_path.glob("dist*.parquet")))
    assert len(store) == 23
    order = list(range(23))  # metadata order == file order
    cats = np.arange(23) % 3
    blocks = list(store.blocks([urls[i] for i in order], cats, block_size=5))
    assert [len(e) for e, _ in blocks] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([e for e, _ in blocks]), embs)
    np.testing.assert_array_equal(np.concatenate([c for _, c in blocks]), cats)
    # Metadata in another order still works (row groups are re-read).
    perm = rng.permutation(23)
    got = np.concatenate([e for e, _ in store.blocks([urls[i] for i in perm], cats, 6)])
    np.testing.assert_array_equal(got, embs[perm])


def test_missing_urls_error(tmp_path):
    write_embs(tmp_path / "p.parquet", ["a", "b"], np.ones((2, 3), np.float32))
    store = ParquetEmbeddings([tmp_path / "p.parquet"])
    with pytest.raises(MissingEmbeddingsError, match=r"3 of 5 URLs .* first: x, y, z") as err:
        store.blocks(["a", "x", "b", "y", "z"], np.zeros(5, int))  # fails before streaming
    assert err.value.missing == ["x", "y", "z"]


def test_bad_parquet(tmp_path):
    pq.write_table(pa.table({"url": ["a"], "emb": [[1.0]]}), tmp_path / "n.parquet")
    with pytest.raises(ValueError, match="no column 'embeddings'"):
        ParquetEmbeddings([tmp_path / "n.parquet"])
    pq.write_table(pa.table({"url": ["a", "b"], "embeddings": [[1.0], [1.0, 2.0]]}),
                   tmp_path / "r.parquet")  # fmt: skip
    with pytest.raises(ValueError, match="different lengths"):
        read_embeddings(tmp_path / "r.parquet", ["a"])


class FakeModel:
    """Embeds an 'image' (an int) as a one-hot row; queries are returned as torch tensors."""

    def __init__(self, d=8, scale=1.0):
        self.d, self.scale, self.calls = d, scale, []

    def encode_targets(self, images):
        self.calls.append(len(images))
        return self.scale * np.eye(self.d, dtype=np.float32)[list(images)]

    def encode_queries(self, images, conds):
        assert len(images) == len(conds)
        return torch.from_numpy(self.encode_targets(images)).double()


def test_embed_in_batches():
    model = FakeModel()
    assert isinstance(model, Benchmarkable)
    out = embed_in_batches(model, list(range(7)), batch_size=3)
    assert out.dtype == np.float32 and out.shape == (7, 8)
    assert model.calls == [3, 3, 1]
    q = embed_in_batches(model, [1, 2], ["Bags", "Feet"])
    np.testing.assert_array_equal(q, np.eye(8, dtype=np.float32)[[1, 2]])
    with pytest.raises(ValueError, match="not L2-normalised"):
        embed_in_batches(FakeModel(scale=2.0), [0, 1])
    with pytest.raises(ValueError, match="2 images but 1 conditions"):
        embed_in_batches(model, [0, 1], ["Bags"])


def test_evaluate_rejects_unnormalised():
    b = realistic_bench()
    with pytest.raises(ValueError, match="queries are not L2-normalised"):
        evaluate(2 * b.queries, b.gallery, b.gallery_categories,
                 array_blocks(b.distractors, b.distractor_categories), [0])  # fmt: skip
    with pytest.raises(ValueError, match="k=5 is smaller"):
        evaluate(b.queries, b.gallery, b.gallery_categories,
                 array_blocks(b.distractors, b.distractor_categories), [0], k=5)  # fmt: skip
