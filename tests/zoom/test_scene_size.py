"""A locator reading scenes at its own resolution (a hybrid's trunk reads any size), so the
CondViT can embed close-ups at a lower one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import referred
from referred.model.config import ModelConfig
from referred.query import QueryEncoder
from referred.zoom import attach, load_locator, save_locator
from referred.zoom.fit import fit_locator
from referred.zoom.head import Locator

BOX = (0.3, 0.6, 0.2, 0.1)


class SpyLocator(Locator):
    """Always finds BOX; remembers the shape of the features it was given."""

    seen: list[tuple[int, ...]]

    def forward(self, features, cond_tokens):
        self.seen.append(tuple(features.shape))
        logits = torch.zeros(len(features), self.grid**2)
        return logits, torch.tensor(BOX).expand(len(features), 4)


@pytest.fixture(scope="module")
def hybrid() -> referred.CondViT:
    config = ModelConfig(
        input_resolution=64, trunk="efficientnet-lite0", trunk_stride=16, width=32, layers=1,
        heads=2, output_dim=16, categories=tuple(referred.LRVSF_CATEGORIES),
    )  # fmt: skip
    return referred.create_model(config, seed=0).eval()


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8))


def spy(model, scene_size):
    head = SpyLocator(112, 32, 8 if scene_size == 128 else 4, hidden=8, scene_size=scene_size)
    head.seen = []
    attach(model, head, 0.25)
    return head


def test_the_locator_reads_the_photo_at_its_own_size_and_the_close_up_at_the_models(hybrid, photo):
    head = spy(hybrid, 128)
    try:
        enc = QueryEncoder(hybrid)
        assert enc.scene_size == 128 and enc.pixels([photo]).shape[-1] == 64
        got = enc.encode([photo], "Bags")
        assert head.seen == [(1, 64, 112)]  # 8 × 8 cells of the 128-px scene, not 4 × 4
        # the close-up is cut from the photo around BOX and embedded at the model's 64 px:
        # padded square side 120, the photo 20 px down: box centre (36, 92), 24 × 12 px
        expected = QueryEncoder(hybrid, zoom=False).encode([photo.crop((18, 54, 54, 90))], "Bags")
        assert torch.allclose(got, expected, atol=1e-5)
        # pixels of the model's size are resized for the locator, not refused
        enc.locate(enc.pixels([photo]), enc.conditions("Bags", 1))
        assert head.seen[-1] == (1, 64, 112)
    finally:
        attach(hybrid, None)


def test_a_locator_without_a_size_reads_the_models(hybrid, photo):
    head = spy(hybrid, None)
    try:
        enc = QueryEncoder(hybrid)
        enc.encode([photo], "Bags")
        assert enc.scene_size == 64 and head.seen == [(1, 16, 112)]
    finally:
        attach(hybrid, None)


def test_a_scene_size_is_checked():
    with pytest.raises(ValueError, match="scene_size must be None or an integer of at least"):
        Locator(8, 8, 4, scene_size=2)
    with pytest.raises(ValueError, match="scene_size must be None or an integer"):
        Locator(8, 8, 4, scene_size=64.5)


def test_fitting_at_a_scene_size_and_the_size_travels_with_the_locator(hybrid, data, tmp_path):
    pairs = {"train": 40, "valid": 10, "test": 10}
    head, report = fit_locator(
        hybrid, data, pairs=pairs, epochs=1, hidden=8, scene_size=128, log=lambda _: None
    )
    assert head.grid == 8 and head.scene_size == 128 and 0 <= report.test_iou <= 1
    hybrid.save_pretrained(tmp_path / "m")
    save_locator(tmp_path / "m", head, 0.3, report.as_dict())
    assert json.loads((tmp_path / "m" / "locator.json").read_text())["head"]["scene_size"] == 128
    assert load_locator(tmp_path / "m", 32)[0].scene_size == 128
    assert QueryEncoder(referred.load_model(tmp_path / "m")).scene_size == 128


def test_a_plain_vit_cannot_read_scenes_at_another_size(model, data):
    with pytest.raises(ValueError, match=r"scene_size 64 needs a hybrid CondViT .* its 32 px"):
        fit_locator(model, data, epochs=1, scene_size=64)


def test_the_flag_belongs_to_the_locator_task(data, tmp_path, capsys):
    from referred import cli

    argv = ["train", "--data", str(data), "--out", str(tmp_path / "o"), "--scene-size", "128"]
    assert cli.main(argv) != 0
    assert "--scene-size is a setting of --task locator only" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
