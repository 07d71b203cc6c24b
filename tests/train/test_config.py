"""Run configuration: defaults per architecture, bad values named, schedule and phases."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from referred.model import create_model
from referred.train.config import TrainConfig, resolve_model_spec
from referred.train.schedule import is_head_param, learning_rate, param_groups, set_trainable


def _cfg(**kw):
    return TrainConfig(data="d", out="o", **kw)


def test_tiny_defaults_from_scratch():
    cfg = _cfg(model="tiny").resolved()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.head_only_epochs) == (30, 64, 1e-3, 0)
    assert cfg.init_logit_scale == pytest.approx(math.log(1 / 0.07))


def test_paper_defaults_for_b16_and_for_weights(tmp_path):
    b16 = _cfg(model="ViT-B/16").resolved()
    assert (b16.epochs, b16.batch_size, b16.lr) == (30, 420, 1e-5)
    weights = tmp_path / "w"
    create_model("tiny", "none", seed=0).save_pretrained(weights)
    ft = _cfg(model=str(weights)).resolved()
    assert (ft.lr, ft.head_only_epochs, ft.init_logit_scale) == (1e-5, 1, None)
    assert _cfg(model="tiny", lr=5e-4, epochs=3).resolved().lr == 5e-4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conditioning": "colour"}, "unknown conditioning 'colour'"),
        ({"lr": 0.0}, "learning rate must be a positive number, got 0.0"),
        ({"lr": -1e-3}, "learning rate must be a positive number"),
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"batch_size": 1}, "batch size must be >= 2"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
        ({"workers": -1}, "workers must be >= 0"),
    ],
)
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _cfg(**kwargs)


def test_model_spec(tmp_path):
    assert resolve_model_spec("tiny").kind == "arch"
    assert resolve_model_spec("B-16").arch["width"] == 768
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"width": 64, "layers": 1, "heads": 2}))
    assert resolve_model_spec(str(arch)).kind == "arch"
    assert resolve_model_spec(str(arch)).defaults["lr"] == 1e-3  # tiny's
    # an architecture file with a trunk trains as the hybrids do: memoised, one view
    arch.write_text(json.dumps({"input_resolution": 128, "trunk": "efficientnet-lite0"}))
    hybrid = resolve_model_spec(str(arch)).defaults
    assert hybrid == {**resolve_model_spec("hybrid-lite0").defaults}
    assert resolve_model_spec("hybrid-lite0-128").defaults == hybrid
    assert hybrid["augment_views"] == 1 and hybrid["trunk_lr_scale"] == 0.0
    arch.write_text(json.dumps({"widht": 64}))
    with pytest.raises(ValueError, match="not a valid architecture"):
        resolve_model_spec(str(arch))
    with pytest.raises(ValueError, match=r"neither an architecture .* nor a weights file"):
        resolve_model_spec("not-a-model")
    assert resolve_model_spec("Slep/CondViT-B16-cat").kind == "weights"


def test_resume_differences_ignore_operational_fields():
    a = _cfg(lr=1e-3, workers=0)
    assert a.differences(_cfg(lr=1e-3, workers=4, device="cuda")) == []
    assert a.differences(_cfg(lr=2e-3)) == ["lr: 0.002 -> 0.001"]


def test_schedule_warms_up_then_decays_by_cosine():
    lr = [learning_rate(s, base_lr=1.0, warmup=4, total=12) for s in range(12)]
    assert lr[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lr[4] == pytest.approx(1.0)
    assert lr[8] == pytest.approx(0.5)
    assert lr[11] < 0.05 and all(a >= b for a, b in itertools.pairwise(lr[3:]))


def test_a_time_budget_is_the_schedules_horizon_when_it_comes_first():
    lr = lambda step, spent: learning_rate(step, base_lr=1.0, warmup=4, total=100, spent=spent)  # noqa: E731
    assert lr(1, 0.0) == 0.5 and lr(1, 0.03) == 0.75  # warm-up: 4% of steps or of the budget
    assert lr(10, 0.52) == pytest.approx(0.5)  # half of the budget after warm-up: half way
    assert lr(10, 1.0) == pytest.approx(0.0) and lr(10, 7.0) == pytest.approx(0.0)
    assert lr(52, 0.0) == pytest.approx(0.5)  # no budget: by steps, as before
    assert lr(52, 0.25) == pytest.approx(0.5)  # the steps are further along: they decide


def test_auto_is_the_recommended_model_of_the_device():
    assert resolve_model_spec("auto", "cpu").value == "hybrid-lite0"
    assert resolve_model_spec("auto", "cuda").value == "B-16"
    assert _cfg().model == "auto"
    hybrid = _cfg().resolved(resolve_model_spec("auto", "cpu"))
    assert hybrid.trunk_lr_scale == 0.0 and hybrid.batch_size == 64  # frozen: see the docs
    assert _cfg(model="tiny").resolved().trunk_lr_scale is None


def test_trunk_parameters_get_their_own_learning_rate_scale():
    model = create_model({"input_resolution": 32, "trunk": "efficientnet-lite0",
                          "trunk_stride": 8, "width": 32, "layers": 1, "heads": 2,
                          "output_dim": 16, "name": "h"}, "category")  # fmt: skip
    groups = param_groups(model, 0.1, trunk_lr_scale=0.25)
    scaled = {id(p) for g in groups if g["lr_scale"] == 0.25 for p in g["params"]}
    trunk = {id(p) for n, p in model.named_parameters() if n.startswith("trunk.")}
    assert scaled == trunk and len(trunk) > 0
    assert all(g["lr_scale"] == 1.0 for g in param_groups(model, 0.1))
    with pytest.raises(ValueError, match="trunk learning-rate scale must be in"):
        _cfg(trunk_lr_scale=2.0)
    n = set_trainable(model, head_only=False, frozen=("trunk.",))  # trunk_lr_scale 0
    grads = {name for name, p in model.named_parameters() if p.requires_grad}
    assert grads and not any(name.startswith("trunk.") for name in grads)
    assert n == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_head_only_phase_trains_proj_and_condition_embeddings():
    model = create_model("tiny", "text", seed=0)
    set_trainable(model, head_only=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"proj", "c_pos_embedding", "c_proj.weight", "c_proj.bias", "logit_scale"}
    assert not is_head_param("transformer.resblocks.0.mlp.c_proj.weight")
    set_trainable(model, head_only=False)
    assert all(p.requires_grad for p in model.parameters())
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
