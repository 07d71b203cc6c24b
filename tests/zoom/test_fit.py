"""fit_locator on a small synthetic dataset; the locator's save/load beside its model."""

from __future__ import annotations

import json

import pytest
import torch

import referred
from referred.zoom import load_locator, save_locator
from referred.zoom.fit import fit_locator
from referred.zoom.views import Views

PAIRS = {"train": 120, "valid": 30, "test": 30}


@pytest.fixture(scope="module")
def fitted(data, model):
    lines: list[str] = []
    head, report = fit_locator(model, data, pairs=PAIRS, epochs=2, hidden=16, log=lines.append)
    return head, report, lines


def test_fit_reports_measured_figures(fitted):
    head, report, lines = fitted
    # at most PAIRS of each split (the small dataset has fewer validation and test pairs)
    assert report.pairs["train"] == PAIRS["train"] and 0 < report.pairs["test"] <= PAIRS["test"]
    assert report.boxes_from == "synth_outfits.parquet"
    assert 0 <= report.test_iou <= 1 and 0 <= report.test_iou_over_half <= 1
    assert 1 <= report.best_epoch <= 2 and report.valid_iou >= 0
    assert any("validation IoU" in line for line in lines)
    assert head.grid == 4 and head.feature_dim == 32  # the tiny model's 4 × 4 patch tokens


def test_the_locator_travels_with_its_model(fitted, model, tmp_path):
    head, report, _ = fitted
    model.save_pretrained(tmp_path / "m")
    views = Views((0.1, 0.3), flip=True)
    save_locator(tmp_path / "m", head, views, report.as_dict())
    loaded = referred.load_model(tmp_path / "m")
    assert loaded.zoom_views == views
    x, c = torch.randn(2, 16, 32), torch.randn(2, 32)
    with torch.no_grad():
        assert torch.equal(loaded.locator(x, c)[1], head(x, c)[1])
    loaded.save_pretrained(tmp_path / "again")  # save_pretrained keeps it, and its report
    assert load_locator(tmp_path / "again", 32)[1] == views
    assert load_locator(tmp_path / "again", 32)[0].film  # fitted now: the condition scales
    again = json.loads((tmp_path / "again" / "locator.json").read_text())
    assert again["report"] == json.loads(json.dumps(report.as_dict()))
    with pytest.raises(ValueError, match="fitted on a model of width 32, this one has width 64"):
        load_locator(tmp_path / "m", 64)
    (tmp_path / "m" / "locator.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="is not a locator: format 'something else'"):
        referred.load_model(tmp_path / "m")
    (tmp_path / "m" / "locator.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a locator: unreadable JSON"):
        referred.load_model(tmp_path / "m")


def test_a_dataset_without_boxes_is_named(model, tmp_path):
    (tmp_path / "TRAIN").mkdir()
    with pytest.raises(ValueError, match=r"no item boxes: expected synth_outfits\.parquet"):
        fit_locator(model, tmp_path, epochs=1)


def test_an_unconditioned_model_is_refused(data):
    from referred.model.config import ModelConfig

    config = ModelConfig(
        input_resolution=32, patch_size=8, width=32, layers=1, heads=2, output_dim=16
    )
    with pytest.raises(ValueError, match="conditioned model"):
        fit_locator(referred.CondViT(config), data, epochs=1)


def test_the_cli_task_fits_and_saves_the_locator(data, model, tmp_path, capsys):
    import json

    from referred import cli

    model.save_pretrained(tmp_path / "m")
    argv = ["train", "--task", "locator", "--model", str(tmp_path / "m"), "--data", str(data)]
    assert cli.main([*argv, "--out", str(tmp_path / "out"), "--epochs", "1"]) == 0
    assert "conditioned queries are now embedded as close-ups" in capsys.readouterr().out
    saved = json.loads((tmp_path / "out" / "locator.json").read_text())
    assert saved["report"]["made_with"]["command"] == "referred train --task locator"
    assert referred.load_model(tmp_path / "out").locator is not None
    assert cli.main([*argv, "--out", str(tmp_path / "x"), "--max-minutes", "3"]) == 2
    assert "does not take --max-minutes" in capsys.readouterr().err
    assert cli.main([*argv, "--out", str(tmp_path / "p"), "--epochs", "1", "--pairs", "40"]) == 0
    saved = json.loads((tmp_path / "p" / "locator.json").read_text())
    assert saved["report"]["pairs"]["train"] == 40 and saved["report"]["pairs"]["valid"] > 0
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "q"), "--pairs", "9"])
    assert "--pairs is a setting of --task locator only" in capsys.readouterr().err


def test_each_scene_goes_through_the_model_once_for_all_its_items(data, model, monkeypatch):
    import referred.presence.features as features
    from referred.data import open_dataset
    from referred.data.boxes import read_item_boxes
    from referred.query import QueryEncoder
    from referred.zoom import fit

    real, images = features.presence_features, []
    monkeypatch.setattr(
        features, "presence_features", lambda m, px: images.append(len(px)) or real(m, px)
    )
    boxes, _ = read_item_boxes(data)
    pairs = fit.box_pairs(open_dataset(data), "train", boxes, 60)
    encoder, size = QueryEncoder(model), model.config.preprocess.size
    x, cats, squares = fit._encode(
        model, encoder, pairs, list(encoder.category_choices), lambda line: None, size
    )
    assert sum(images) == len({fit.scene_key(p) for p in pairs}) < len(pairs)  # worn together
    assert len(x) == len(cats) == len(squares) == len(pairs)
    for i in (0, len(pairs) // 2, len(pairs) - 1):  # each pair: its own scene's features
        alone = real(model, encoder.pixels([pairs[i].image.open()], size))
        torch.testing.assert_close(x[i].float(), alone[0].half().float(), atol=2e-3, rtol=1e-2)


def test_a_locator_saved_before_film_and_views_loads_as_it_was(tmp_path):
    from referred.zoom.head import Locator

    torch.manual_seed(0)
    old = Locator(8, 8, 4, hidden=16, film=False)
    save_locator(tmp_path, old, 0.2)
    record = json.loads((tmp_path / "locator.json").read_text())
    del record["head"]["film"], record["views"]  # what locators fitted before FiLM wrote
    (tmp_path / "locator.json").write_text(json.dumps(record))
    head, views = load_locator(tmp_path, 8)
    assert not head.film and views == Views((0.2,))  # one close-up at its margin
    feats, tokens = torch.randn(2, 16, 8), torch.randn(2, 8)
    torch.testing.assert_close(head(feats, tokens), old(feats, tokens))


def test_a_diverging_fit_is_an_error_not_an_untrained_locator(data, model):
    with pytest.raises(ValueError, match=r"training diverged at lr inf; fit it again"):
        fit_locator(model, data, pairs=PAIRS, epochs=2, hidden=16, lr=float("inf"), grows=None)
