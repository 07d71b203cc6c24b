"""The close-up's margin chosen by recall: hand-made cases, and the margin a fit saves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from referred.zoom.calibrate import GROWS, best_grow, calibrate_grow, recall_at_1


def test_recall_at_1_of_hand_made_vectors():
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    queries = np.array([[0.9, 0.1], [0.6, 0.8], [0.1, 0.9], [0.0, 0.0]])
    # tops: 0, 2, 1, 0 (all zero: the first target wins)
    assert recall_at_1(queries, targets, np.array([0, 2, 2, 1])) == 0.5
    assert recall_at_1(queries, targets, np.array([0, 2, 1, 0])) == 1.0
    with pytest.raises(ValueError, match="no queries"):
        recall_at_1(queries[:0], targets, np.array([], int))


def test_the_best_margin_and_ties_broken_towards_the_training_one():
    assert best_grow({0.1: 0.4, 0.15: 0.6, 0.25: 0.5}) == 0.15
    # within a point of the training margin: that one (a few hundred pairs cannot tell)
    assert best_grow({0.1: 0.596, 0.25: 0.588, 0.3: 0.5}) == 0.25
    assert best_grow({0.1: 0.596, 0.25: 0.588}, min_gain=0.005) == 0.1
    assert best_grow({0.1: 0.596, 0.15: 0.59}) == 0.1  # the training margin was not tried
    assert best_grow({0.1: 0.6, 0.2: 0.6, 0.3: 0.6}) == 0.2  # closest to 0.25 (0.2 and 0.3:
    assert best_grow({0.2: 0.6, 0.3: 0.6}) == 0.2  # equally close, the smaller)
    assert best_grow({0.1: 0.6, 0.2: 0.6}, prefer=0.1) == 0.1
    with pytest.raises(ValueError, match="no margin"):
        best_grow({})


def test_the_margin_whose_close_ups_match_the_products_is_chosen():
    # scene i: 100 × 100 of colour i, the item a 20-px box in its middle; product i: what the
    # close-up of margin 0.15 is (26 px of colour i). The encoder sees colour and width only,
    # so only close-ups of that margin find their product; the others find the first one.
    n = 5
    scenes = [Image.new("RGB", (100, 100), (40 * i, 0, 0)) for i in range(n)]
    products = [Image.new("RGB", (26, 26), (40 * i, 0, 0)) for i in range(n)]
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * n)

    def encode(images, categories):
        out = np.zeros((len(images), n * 64), np.float32)
        for row, image in enumerate(images):
            out[row, image.getpixel((0, 0))[0] // 40 * 64 + image.width % 64] = 1
        return out

    grow, recalls = calibrate_grow(encode, scenes, ["Bags"] * n, boxes, products, range(n))
    assert grow == 0.15 and recalls[0.15] == 1.0
    assert list(recalls) == list(GROWS) and all(recalls[g] == 1 / n for g in GROWS if g != 0.15)
    with pytest.raises(ValueError, match="as many"):
        calibrate_grow(encode, scenes, ["Bags"], boxes, products, range(n))
    with pytest.raises(ValueError, match="non-negative margins"):
        calibrate_grow(encode, scenes, ["Bags"] * n, boxes, products, range(n), grows=(-0.1,))


def test_a_fit_searches_the_margin_and_the_cli_saves_it_or_the_one_given(
    data, model, tmp_path, capsys
):
    from referred import cli

    model.save_pretrained(tmp_path / "m")
    argv = ["train", "--task", "locator", "--model", str(tmp_path / "m"), "--data", str(data)]
    assert cli.main([*argv, "--out", str(tmp_path / "a"), "--epochs", "1"]) == 0
    assert "close-up margin by validation R@1" in capsys.readouterr().out
    saved = json.loads((tmp_path / "a" / "locator.json").read_text())
    recalls = saved["report"]["grow_recall"]
    assert set(recalls) == {f"{g:g}" for g in GROWS}
    assert saved["grow"] == saved["report"]["grow"] and saved["grow"] in GROWS
    assert recalls[f"{saved['grow']:g}"] == max(recalls.values())
    assert cli.main([*argv, "--out", str(tmp_path / "b"), "--epochs", "1", "--grow", "0.1"]) == 0
    saved = json.loads((tmp_path / "b" / "locator.json").read_text())
    assert saved["grow"] == 0.1 and saved["report"]["grow_recall"] is None
    assert saved["report"]["made_with"]["grows"] == [0.1]
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "c"), "--grow", "1"]
    assert cli.main(argv) == 2
    assert "--grow is a setting of --task locator only" in capsys.readouterr().err
