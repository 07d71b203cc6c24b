"""The resumable embedding job: skips bad images, resumes, never duplicates rows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import referred
from referred.catalog.cache import CacheMismatchError, parts_dir, read_embeddings
from referred.embed import embed_items


@pytest.fixture(scope="module")
def model():
    return referred.create_model("tiny", conditioning="category", seed=0)


def png(tmp_path, name, seed):
    rng = np.random.default_rng(seed)
    p = tmp_path / name
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(p)
    return p


def test_embeds_skips_corrupt_and_matches_encode_targets(tmp_path, model):
    good = [png(tmp_path, f"{i}.png", i) for i in range(5)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    items = [(p.stem, p) for p in good[:3]] + [("bad", bad)] + [(p.stem, p) for p in good[3:]]
    report = embed_items(model, items, tmp_path / "e.parquet", batch_size=2, progress=False)
    assert report.embedded == 5 and [f[0] for f in report.failures] == ["bad"]
    assert "not a readable image" in report.failures[0][1]
    ids, vecs = read_embeddings(tmp_path / "e.parquet")
    assert ids == ["0", "1", "2", "3", "4"] and vecs.shape == (5, 64)
    expected = model.encode_targets(good).numpy()
    np.testing.assert_allclose(vecs, expected, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "e.parquet.failures.tsv").read_text().startswith("id\treason\nbad\t")
    assert not parts_dir(tmp_path / "e.parquet").exists()


def test_resume_embeds_only_new_items(tmp_path, model):
    paths = [png(tmp_path, f"{i}.png", i) for i in range(6)]
    out = tmp_path / "e.parquet"
    embed_items(model, [(p.stem, p) for p in paths[:4]], out, progress=False)
    report = embed_items(model, [(p.stem, p) for p in paths], out, progress=False)
    assert (report.embedded, report.already_done) == (2, 4)
    ids, _ = read_embeddings(out)
    assert sorted(ids) == [str(i) for i in range(6)] and len(set(ids)) == 6


def test_interrupted_job_keeps_its_parts(tmp_path, model):
    """A crash mid-job leaves finished parts; the re-run embeds only the rest."""
    paths = [png(tmp_path, f"{i}.png", i) for i in range(6)]
    out = tmp_path / "e.parquet"

    def crashing():
        for i, p in enumerate(paths):
            if i == 4:
                raise KeyboardInterrupt
            yield p.stem, p

    with pytest.raises(KeyboardInterrupt):
        embed_items(model, crashing(), out, batch_size=1, rows_per_part=1, progress=False)
    assert len(list(parts_dir(out).glob("part-*.parquet"))) >= 2
    report = embed_items(model, [(p.stem, p) for p in paths], out, progress=False)
    assert report.already_done >= 2 and report.total == 6
    ids, _ = read_embeddings(out)
    assert sorted(ids) == [str(i) for i in range(6)]


def test_conditioned_embedding(tmp_path, model):
    p = png(tmp_path, "s.png", 0)
    embed_items(model, [("s", p)], tmp_path / "q.parquet", condition="Bags", progress=False)
    _, vecs = read_embeddings(tmp_path / "q.parquet")
    expected = model.encode_queries([p], ["Bags"]).numpy()
    np.testing.assert_allclose(vecs, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown category 'Hats'"):
        embed_items(model, [("s", p)], tmp_path / "x.parquet", condition="Hats", progress=False)


def test_all_failed_gives_an_empty_valid_file(tmp_path, model):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    report = embed_items(model, [("bad", bad)], tmp_path / "e.parquet", progress=False)
    assert report.embedded == 0 and len(report.failures) == 1
    ids, vecs = read_embeddings(tmp_path / "e.parquet")
    assert ids == [] and vecs.shape == (0, 64)


def test_output_of_another_model_is_refused(tmp_path, model):
    p = png(tmp_path, "s.png", 0)
    embed_items(model, [("s", p)], tmp_path / "e.parquet", progress=False)
    other = referred.create_model("tiny", conditioning="category", seed=1)
    with pytest.raises(CacheMismatchError, match="differs in: model"):
        embed_items(other, [("s", p), ("t", p)], tmp_path / "e.parquet", progress=False)
    assert read_embeddings(tmp_path / "e.parquet")[0] == ["s"]


def test_ray_actor_answers_every_row(tmp_path, model):
    """The Ray actor's batch function, without Ray: a vector or the reason, for each row."""
    from referred.catalog.ray_embed import _Embedder
    from referred.query import QueryEncoder

    actor = object.__new__(_Embedder)  # what __init__ builds from the object store
    actor.model, actor.encoder = model, QueryEncoder(model)
    good = png(tmp_path, "g.png", 1)
    batch = {"id": np.array(["bad", "g"], object), "image": np.array([b"junk", str(good)], object)}
    out = actor(batch)
    rows = {i: (v, e) for i, v, e in zip(out["id"], out["vector"], out["error"])}
    assert set(rows) == {"bad", "g"} and rows["g"][1] == ""
    assert "not a readable image" in rows["bad"][1]
    expected = model.encode_targets([good]).numpy()[0]
    np.testing.assert_allclose(rows["g"][0], expected, rtol=1e-5, atol=1e-6)
