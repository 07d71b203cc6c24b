"""scripts/train_demo_gpu.py's CPU-side parts: the texts a GPU host will need, and the packing
of what comes back (parts small enough for the transfer, joined by ``cat``)."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import train_demo_gpu

from referred.categories import LRVSF_CATEGORIES
from referred.data import open_dataset
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.model.text import TextTable, save_text_vectors


def test_every_caption_of_every_split_is_a_text_to_carry(tmp_path):
    root = tmp_path / "d"
    write_synthetic_dataset(root, SynthConfig(products=40, distractors=5, seed=3))
    texts = train_demo_gpu.dataset_texts([root])
    assert texts[: len(LRVSF_CATEGORIES)] == list(LRVSF_CATEGORIES) and "product" in texts
    assert len(texts) == len(set(texts))
    dataset = open_dataset(root)
    for split in dataset.splits:
        for product in dataset.products(split):
            assert set(product.captions) <= set(texts)
    # a table of them answers every one, and names the first text it lacks
    save_text_vectors(tmp_path, "enc", {t: torch.full((3,), float(i)) for i, t in enumerate(texts)})
    table = TextTable.load(tmp_path, "enc")
    assert table(texts).shape == (len(texts), 3)


def test_the_model_comes_back_in_parts_that_join(tmp_path, monkeypatch):
    model, logs, out = tmp_path / "best", tmp_path / "logs", tmp_path / "out"
    for d in (model, logs, out):
        d.mkdir()
    payload = torch.randint(0, 256, (100_000,), generator=torch.Generator().manual_seed(0))
    (model / "model.safetensors").write_bytes(payload.to(torch.uint8).numpy().tobytes())  # 100 KB
    (logs / "train.log").write_text("epoch 1\n")
    monkeypatch.setattr(train_demo_gpu, "PART", 30_000)
    train_demo_gpu._pack(model, logs, out)
    parts = sorted(out.glob("model.tgz.*"))
    assert len(parts) == 4 and all(p.stat().st_size <= 30_000 for p in parts)
    joined = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(joined), mode="r:gz") as tar:
        got = tar.extractfile("model/model.safetensors").read()
    assert got == (model / "model.safetensors").read_bytes()
    with tarfile.open(out / "logs.tgz") as tar:
        assert tar.extractfile("logs/train.log").read() == b"epoch 1\n"
    train_demo_gpu._pack(model, logs, out)  # packed again: the old parts are replaced
    assert sorted(out.glob("model.tgz.*")) == parts
