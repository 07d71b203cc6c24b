"""``train_cir``: a Combiner learns what no training-free composition can on a tiny
FashionIQ-layout set, is validated each epoch, resumes, and loads with its CondViT; the
benchmark then scores it beside the baselines."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import referred
from referred.cir.baselines import BASELINES
from referred.data.fashioniq import Triplet, write_split_files
from referred.eval.cir import recalls
from referred.eval.cir_benchmark import run_cir_benchmark
from referred.train.cir import lr_at, train_cir
from referred.train.cir_config import CIRTrainConfig

COLOURS = ("red", "green", "blue", "yellow", "black", "pink")
SHAPES = ("dress", "gown", "tee", "tank", "coat", "cape", "skirt", "shorts")
DIM = 64  # the tiny CondViT's output width


def fake_text_encoder(texts):
    """Deterministic 16-d vectors from a hash of each text (a stand-in for MiniLM)."""
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
        out.append(np.random.default_rng(seed).standard_normal(16).astype(np.float32))
    return torch.from_numpy(np.stack(out))


class ToyImages:
    """A stand-in for the CondViT's image vectors (``encode_targets`` of paths): an image
    ``<split>-<shape>-<colour>`` is 0.3 shape + 0.3 colour + a direction of its own (shape,
    colour) pair, plus a little noise of its own. The pair's own direction makes composing
    non-additive: no mix of the image and the colour's direction finds the target."""

    batch_size = 64

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        unit = lambda n: (lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True))(  # noqa: E731
            rng.standard_normal((n, DIM))
        )
        self.shape, self.colour = unit(len(SHAPES)), unit(len(COLOURS))
        self.pair = unit(len(SHAPES) * len(COLOURS))

    def encode_targets(self, paths):
        out = []
        for p in paths:
            _, shape, colour = Path(p).stem.split("-")
            s, c = SHAPES.index(shape), COLOURS.index(colour)
            seed = int.from_bytes(hashlib.sha256(Path(p).stem.encode()).digest()[:4], "little")
            noise = np.random.default_rng(seed).standard_normal(DIM) * 0.02
            v = 0.3 * self.shape[s] + 0.3 * self.colour[c] + self.pair[s * len(COLOURS) + c]
            out.append((v + noise) / np.linalg.norm(v + noise))
        return torch.from_numpy(np.stack(out).astype(np.float32))


@pytest.fixture(scope="module")
def colour_set(tmp_path_factory):
    """Every (shape, colour) in each split; triplets: a shape in one colour → the same shape
    in another, asked for as "in <colour>" / "make it <colour>". Image files are empty:
    :class:`ToyImages` reads only their names."""
    root = tmp_path_factory.mktemp("fiq")
    (root / "images").mkdir()
    for split in ("train", "val", "test"):
        names, triplets = [], []
        for shape in SHAPES:
            for colour in COLOURS:
                name = f"{split}-{shape}-{colour}"
                (root / "images" / f"{name}.png").touch()
                names.append(name)
                for other in COLOURS:
                    if other != colour:
                        caps = (f"in {other}", f"make it {other}")
                        triplets.append(Triplet(name, f"{split}-{shape}-{other}", caps, "toy"))
        write_split_files(root, split, "toy", triplets, names)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    referred.create_model("tiny", categories=("a", "b"), seed=0).save_pretrained(path)
    return path


def test_lr_warms_up_then_anneals_to_zero():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0)


def test_the_combiner_learns_what_the_baselines_cannot(colour_set, tiny_model, tmp_path):
    config = CIRTrainConfig(
        data=str(colour_set), out=str(tmp_path / "run"), model=str(tiny_model), epochs=25,
        batch_size=32, lr=3e-3, dropout=0.0,
    )  # fmt: skip
    result = train_cir(config, text_encoder=fake_text_encoder, image_encoder=ToyImages())
    first, last = result.history[0], result.history[-1]
    assert result.finished and result.epochs_done == 25
    assert last["loss"] < first["loss"] - 1.0
    assert max(r["val_R@10"] for r in result.history) >= 0.9
    model = referred.load_model(result.best)  # the CondViT and its best Combiner
    bench = run_cir_benchmark(
        model,
        colour_set,
        tmp_path / "bench",
        samples=20,
        text_encoder=fake_text_encoder,
        image_encoder=ToyImages(),
    )
    assert bench.report["method"] == "combiner" and bench.report["split"] == "test"
    assert set(bench.report["methods"]) == {"combiner", *BASELINES}
    # the gallery is small (24): compare R@1, where only the right shape in the right colour counts
    r1 = {m: recalls(np.concatenate(list(r.values())), (1,))["R@1"] for m, r in bench.ranks.items()}
    assert r1["combiner"] >= 0.8 > max(r1[m] for m in BASELINES) + 0.3
    saved = json.loads((tmp_path / "bench" / "report.json").read_text())
    assert set(saved["categories"]) == {"toy"} and 0 <= saved["average"]["R@50"] <= 1


def test_a_budgeted_run_stops_and_the_same_command_resumes(colour_set, tiny_model, tmp_path):
    config = CIRTrainConfig(
        data=str(colour_set), out=str(tmp_path / "run"), model=str(tiny_model), epochs=4,
        batch_size=64, max_minutes=1e-6,
    )  # fmt: skip
    stopped = train_cir(config, text_encoder=fake_text_encoder, image_encoder=ToyImages())
    assert not stopped.finished and stopped.epochs_done == 1
    assert (tmp_path / "run" / "cache" / "images.npz").is_file()
    done = train_cir(
        replace(config, max_minutes=None), text_encoder=fake_text_encoder, image_encoder=ToyImages()
    )
    assert done.finished and [r["epoch"] for r in done.history] == [1, 2, 3, 4]
    straight = train_cir(
        replace(config, out=str(tmp_path / "straight"), max_minutes=None),
        text_encoder=fake_text_encoder,
        image_encoder=ToyImages(),
    )
    assert [r["loss"] for r in straight.history] == pytest.approx([r["loss"] for r in done.history])
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        train_cir(
            replace(config, lr=0.1), text_encoder=fake_text_encoder, image_encoder=ToyImages()
        )
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        CIRTrainConfig(data="d", out="o", model="m", epochs=0)
