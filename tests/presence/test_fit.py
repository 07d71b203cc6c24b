"""fit_presence end to end on a small synthetic dataset, and the model directory round trip."""

from __future__ import annotations

import json

import pytest

import referred
from referred.model.config import ModelConfig
from referred.presence.fit import fit_presence, worn_by_scene


def test_labels_come_from_the_generators_outfits(data):
    worn, source = worn_by_scene(data)
    assert source == "synth_outfits.parquet" and worn
    assert all(cats and cats <= set(referred.LRVSF_CATEGORIES) for cats in worn.values())


def test_fit_reports_measured_figures_and_the_head_travels_with_the_model(data, model, tmp_path):
    lines: list[str] = []
    head, report = fit_presence(model, data, epochs=3, hidden=16, log=lines.append)
    assert report.scenes["train"] > report.scenes["test"] > 0
    assert report.categories == list(referred.LRVSF_CATEGORIES)
    assert 0 <= report.test_auc <= 1 and 0 <= report.test_ece <= 1 and 1 <= report.best_epoch <= 3
    assert 0 < report.worn_rate < 1 and report.labels_from == "synth_outfits.parquet"
    assert any("validation AUC" in line for line in lines)
    assert head.feature_kind == "tokens"  # no trunk: the last block's patch tokens
    model.save_pretrained(tmp_path / "m")
    from referred.presence import save_head

    save_head(tmp_path / "m", head, report.as_dict())
    loaded = referred.load_model(tmp_path / "m")
    assert loaded.presence_head is not None
    assert float(loaded.presence_head.a) == pytest.approx(report.platt[0])
    loaded.save_pretrained(tmp_path / "again")  # the report travels with the head
    again = json.loads((tmp_path / "again" / "presence.json").read_text())
    assert again["report"] == json.loads(json.dumps(report.as_dict()))


def test_a_split_without_scenes_is_named(data, model, tmp_path):
    with pytest.raises(ValueError, match="no scenes in the 'valid' split"):
        fit_presence(model, data, scenes={"valid": 0}, epochs=1)


def test_an_unconditioned_model_is_refused(data):
    config = ModelConfig(
        input_resolution=32, patch_size=8, width=32, layers=1, heads=2, output_dim=16
    )
    with pytest.raises(ValueError, match="conditioned model"):
        fit_presence(referred.CondViT(config), data, epochs=1)
