"""The close-up's margin chosen by recall: hand-made cases, and the margin a fit saves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from referred.zoom.calibrate import (
    DEFAULT,
    GROWS,
    MIN_GAIN,
    best_views,
    calibrate_views,
    recall_at_1,
)
from referred.zoom.views import Views, candidates


def test_recall_at_1_of_hand_made_vectors():
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    queries = np.array([[0.9, 0.1], [0.6, 0.8], [0.1, 0.9], [0.0, 0.0]])
    # tops: 0, 2, 1, 0 (all zero: the first target wins)
    assert recall_at_1(queries, targets, np.array([0, 2, 2, 1])) == 0.5
    assert recall_at_1(queries, targets, np.array([0, 2, 1, 0])) == 1.0
    with pytest.raises(ValueError, match="no queries"):
        recall_at_1(queries[:0], targets, np.array([], int))


def test_the_best_views_and_ties_broken_towards_the_training_margin_then_fewer_views():
    one = {g: Views((g,)) for g in (0.1, 0.15, 0.2, 0.25, 0.3)}
    assert best_views({one[0.1]: 0.4, one[0.15]: 0.6, one[0.25]: 0.5}) == one[0.15]
    # within a point of the training margin alone: that one (a few hundred pairs cannot tell)
    assert best_views({one[0.1]: 0.596, one[0.25]: 0.588, one[0.3]: 0.5}) == one[0.25]
    assert best_views({one[0.1]: 0.596, one[0.25]: 0.588}, min_gain=0.005) == one[0.1]
    assert best_views({one[0.1]: 0.596, one[0.15]: 0.59}) == one[0.1]  # 0.25 not tried
    assert best_views({one[0.1]: 0.6, one[0.2]: 0.6, one[0.3]: 0.6}) == one[0.2]  # nearest
    assert best_views({one[0.2]: 0.6, one[0.3]: 0.6}) == one[0.2]  # equally near: the smaller
    assert best_views({one[0.1]: 0.6, one[0.2]: 0.6}, prefer=one[0.1]) == one[0.1]
    pair, mirrored = Views((0.1, 0.25)), Views((0.1, 0.25), flip=True)
    assert best_views({one[0.25]: 0.58, pair: 0.61, mirrored: 0.63}) == mirrored
    # equal recall: the fewest close-ups (each is a forward per query)
    assert best_views({one[0.25]: 0.58, pair: 0.63, mirrored: 0.63}) == pair
    assert best_views({one[0.1]: 0.63, pair: 0.63, one[0.25]: 0.5}) == one[0.1]
    with pytest.raises(ValueError, match="no views"):
        best_views({})


def _scenes_and_products(n: int):
    # scene i: 100 × 100 of colour i, the item a 20-px box in its middle: the close-up of
    # margin g is 20 × (1 + 2g) px wide (0.05: 22, 0.15: 26, 0.25: 30)
    scenes = [Image.new("RGB", (100, 100), (40 * i, 0, 0)) for i in range(n)]
    return scenes, torch.tensor([[0.5, 0.5, 0.2, 0.2]] * n)


def _one_hot(n: int, colour: int, width: int) -> np.ndarray:
    out = np.zeros(n * 64, np.float32)
    out[colour * 64 + width % 64] = 1
    return out


def test_the_margin_whose_close_ups_match_the_products_is_chosen():
    # product i: what the close-up of margin 0.15 is (26 px of colour i). The encoder sees
    # colour and width only, so only close-ups of that margin find their product (alone, in a
    # pair or mirrored); the others find the first one. One close-up is enough: it is kept.
    n = 5
    scenes, boxes = _scenes_and_products(n)
    products = [Image.new("RGB", (26, 26), (40 * i, 0, 0)) for i in range(n)]

    def encode(images, categories):
        return np.stack([_one_hot(n, x.getpixel((0, 0))[0] // 40, x.width) for x in images])

    views, recalls = calibrate_views(encode, scenes, ["Bags"] * n, boxes, products, range(n))
    assert views == Views((0.15,)) and recalls[views] == 1.0
    assert list(recalls) == candidates(GROWS, 4)
    for tried, recall in recalls.items():
        assert recall == (1.0 if 0.15 in tried.grows else 1 / n), tried
    assert set(calibrate_views(encode, scenes, ["Bags"] * n, boxes, products, range(n),
                               max_views=1)[1]) == {Views((g,)) for g in GROWS}  # fmt: skip
    with pytest.raises(ValueError, match="as many"):
        calibrate_views(encode, scenes, ["Bags"], boxes, products, range(n))
    with pytest.raises(ValueError, match="non-negative margins"):
        calibrate_views(encode, scenes, ["Bags"] * n, boxes, products, range(n), grows=(-0.1,))


def test_two_margins_pooled_find_what_neither_finds_alone():
    # product i looks like both the 0.05 (22 px) and the 0.15 (26 px) close-ups of scene i;
    # decoys look like one of them each, listed after. Alone, each close-up's decoy scores 1
    # against its product's 0.71; their mean scores 0.71 against each decoy's 0.5.
    n = 4
    scenes, boxes = _scenes_and_products(n)
    true = [Image.new("RGB", (50, 50), (40 * i, 0, 0)) for i in range(n)]
    decoys = [Image.new("RGB", (w, w), (40 * i, 0, 0)) for w in (22, 26) for i in range(n)]

    def encode(images, categories):
        rows = []
        for x in images:
            colour = x.getpixel((0, 0))[0] // 40
            if categories is None and x.width == 50:  # a true product
                rows.append((_one_hot(n, colour, 22) + _one_hot(n, colour, 26)) / np.sqrt(2))
            else:
                rows.append(_one_hot(n, colour, x.width))
        return np.stack(rows)

    views, recalls = calibrate_views(
        encode, scenes, ["Bags"] * n, boxes, true + decoys, range(n), grows=(0.05, 0.15, 0.25)
    )
    assert recalls[Views((0.05,))] == recalls[Views((0.15,))] == 0.0
    assert recalls[Views((0.05, 0.15))] == recalls[Views((0.05, 0.15), flip=True)] == 1.0
    assert views == Views((0.05, 0.15))  # mirrored adds nothing here: the fewer close-ups


def test_a_fit_searches_the_views_and_the_cli_saves_them_or_the_margin_given(
    data, model, tmp_path, capsys
):
    from referred import cli

    model.save_pretrained(tmp_path / "m")
    argv = ["train", "--task", "locator", "--model", str(tmp_path / "m"), "--data", str(data)]
    assert cli.main([*argv, "--out", str(tmp_path / "a"), "--epochs", "1"]) == 0
    assert "close-ups by validation R@1" in capsys.readouterr().out
    saved = json.loads((tmp_path / "a" / "locator.json").read_text())
    recalls = saved["report"]["view_recall"]
    assert list(recalls) == [v.label() for v in candidates(GROWS, 4)]
    views = Views.from_record(saved["views"])
    assert saved["views"] == saved["report"]["views"] and saved["grow"] == views.grows[0]
    top, kept = max(recalls.values()), recalls[views.label()]
    assert kept == top or (views == DEFAULT and top - kept < MIN_GAIN)
    assert cli.main([*argv, "--out", str(tmp_path / "b"), "--epochs", "1", "--grow", "0.1"]) == 0
    saved = json.loads((tmp_path / "b" / "locator.json").read_text())
    assert saved["views"] == {"grows": [0.1], "flip": False} and saved["grow"] == 0.1
    assert saved["report"]["view_recall"] is None
    assert saved["report"]["made_with"]["grows"] == [0.1]
    assert cli.main([*argv, "--out", str(tmp_path / "d"), "--epochs", "1", "--max-views", "1"]) == 0
    saved = json.loads((tmp_path / "d" / "locator.json").read_text())
    assert set(saved["report"]["view_recall"]) == {f"{g:g}" for g in GROWS}
    assert not saved["views"]["flip"] and len(saved["views"]["grows"]) == 1
    assert cli.main([*argv, "--out", str(tmp_path / "e"), "--grow", "0.1", "--max-views", "2"]) == 2
    assert "--grow fixes one close-up" in capsys.readouterr().err
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "c"), "--grow", "1"]
    assert cli.main(argv) == 2
    assert "--grow is a setting of --task locator only" in capsys.readouterr().err
