"""`referred embed` on a folder with a corrupt file, and on a parquet catalog."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

import referred
from referred.catalog.cache import read_embeddings
from referred.cli import main


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_embed_folder_with_a_corrupt_file(tmp_path, capsys):
    model = referred.create_model("tiny", seed=0)
    model.save_pretrained(tmp_path / "model")
    photos = tmp_path / "photos"
    (photos / "Bags").mkdir(parents=True)
    for i in range(3):
        (photos / "Bags" / f"b{i}.png").write_bytes(_png(i))
    (photos / "broken.jpg").write_bytes(_png(9)[:40])
    out = tmp_path / "emb.parquet"
    argv = ["embed", str(photos), "--model", str(tmp_path / "model"), "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "3 embeddings (3 new, 0 already done), 1 skipped" in captured.out
    assert "broken: " in captured.err and "not a readable image" in captured.err
    ids, vecs = read_embeddings(out)
    assert ids == ["Bags/b0", "Bags/b1", "Bags/b2"]
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert main([*argv, "--no-progress"]) == 0  # resumes: nothing new
    assert "(0 new, 3 already done)" in capsys.readouterr().out
    assert main([*argv, "--no-progress", "--category", "Bags"]) == 2  # never mixed
    assert "differs in: condition 'none' there, 'category: Bags' now" in capsys.readouterr().err
    assert read_embeddings(out)[0] == ["Bags/b0", "Bags/b1", "Bags/b2"]


def test_embed_parquet_catalog_and_bad_flags(tmp_path, capsys):
    referred.create_model("tiny", seed=0).save_pretrained(tmp_path / "m")
    table = pa.table({"id": ["a", "b"], "image": [_png(1), _png(2)]})
    pq.write_table(table, tmp_path / "cat.parquet")
    out = tmp_path / "e.parquet"
    argv = ["embed", str(tmp_path / "cat.parquet"), "--model", str(tmp_path / "m")]
    assert main([*argv, "--out", str(out), "--no-progress", "--text", "a bag"]) == 2
    assert "conditioned on categories only" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert read_embeddings(out)[0] == ["a", "b"]
    assert main([*argv, "--out", str(out), "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err
    assert (
        main(["embed", str(tmp_path / "nope"), "--model", str(tmp_path / "m"), "--out", str(out)])
        == 2
    )
    assert "no such folder or catalog file" in capsys.readouterr().err
