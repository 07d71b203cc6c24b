"""Every checkpoint layout loads into a model whose forward equals an independent float64 one."""

from __future__ import annotations

import pytest
import torch

import referred
from referred.model.config import ModelConfig
from tests.model import layouts
from tests.model.reference import reference_forward

SMALL = dict(input_resolution=32, patch_size=8, width=128, layers=2, heads=2, output_dim=48)
RTOL = 1e-4


def random_state(categories=(), cond_dim=None, seed=0) -> dict[str, torch.Tensor]:
    """A training-layout state dict with every tensor random (LN weights and biases too)."""
    cfg = ModelConfig(**SMALL, categories=tuple(categories), cond_dim=cond_dim)
    model = referred.create_model(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight")):
            v = 1.0 + 0.2 * torch.randn(v.shape, generator=g)
        elif k.endswith("bias"):
            v = 0.1 * torch.randn(v.shape, generator=g)
        sd[k] = v.clone()
    return sd


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def images(n=3, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def check(model, sd, x, c=None, tokens=None):
    out = model(x, c)
    for i in range(len(x)):
        ref = reference_forward(sd, x[i], None if tokens is None else tokens[i])
        assert rel_err(out[i], ref) < RTOL, f"sample {i}: rel err {rel_err(out[i], ref):.2e}"


CATS = referred.LRVSF_CATEGORIES


@pytest.mark.parametrize("writer", ["pth", "hf-cat"])
def test_category_layouts_match_reference(tmp_path, writer):
    sd = random_state(categories=CATS)
    path = (
        layouts.write_training_pth(sd, tmp_path / "condvit.pth")
        if writer == "pth"
        else layouts.write_hf_cat(sd, tmp_path / "hf")
    )
    model = referred.load_model(path)
    assert model.config.categories == CATS and model.config.heads == 2
    x, c = images(), torch.tensor([0, 4, 9])
    check(model, sd, x)  # unconditioned: the plain ViT forward
    check(model, sd, x, c, tokens=sd["c_embedding.weight"][c])


def test_hf_txt_layout_matches_reference(tmp_path):
    sd = random_state(cond_dim=128)  # the released text model: token = the sentence vector
    model = referred.load_model(layouts.write_hf_txt(sd, tmp_path / "hf-txt"))
    cfg = model.config
    assert cfg.cond_dim == 128 and not cfg.categories
    assert cfg.text_encoder == "sentence-transformers/sentence-t5-xl"
    assert not hasattr(model, "c_proj")
    x = images()
    vec = torch.nn.functional.normalize(torch.randn(3, 128), dim=-1)
    check(model, sd, x)
    check(model, sd, x, vec, tokens=vec)


def test_unconditional_training_checkpoint(tmp_path):
    sd = random_state()
    model = referred.load_model(layouts.write_training_pth(sd, tmp_path / "vit.pth"))
    assert model.config.conditioning == "none"
    check(model, sd, images())


def test_clip_weights_initialise_a_new_condvit(tmp_path):
    sd = random_state(categories=CATS)
    path = layouts.write_clip_full(sd, tmp_path / "clip.pt")
    model = referred.load_model(path, conditioning="category")
    new = model.state_dict()
    scale = 128**-0.5  # paper init: c_pos_embedding = width**-0.5 * randn
    assert 0.3 * scale < float(new["c_pos_embedding"].std()) < 3 * scale
    assert float(new["logit_scale"]) == pytest.approx(4.6052, abs=1e-4)
    vis = {k: v for k, v in sd.items() if not k.startswith("c_")}
    vis.update({k: new[k] for k in ("c_embedding.weight", "c_pos_embedding")})
    x, c = images(), torch.tensor([1, 2, 3])
    check(model, vis, x)
    check(model, vis, x, c, tokens=new["c_embedding.weight"][c])


def test_vector_conditioning_with_projection(tmp_path):
    model = referred.create_model(ModelConfig(**SMALL, cond_dim=384), seed=3)
    assert model.c_proj.weight.shape == (128, 384)
    sd = model.state_dict()
    vec = torch.randn(3, 384)
    tokens = vec @ sd["c_proj.weight"].T + sd["c_proj.bias"]
    check(model, sd, images(), vec, tokens=tokens)


def test_save_pretrained_round_trip(tmp_path):
    model = referred.create_model("tiny", conditioning="text", seed=4)
    model.save_pretrained(tmp_path / "m", extra={"training": {"epochs": 1}})
    loaded = referred.load_model(tmp_path / "m")
    assert loaded.config == model.config
    x = torch.randn(2, 3, 64, 64)
    c = torch.randn(2, 384)
    torch.testing.assert_close(loaded(x, c), model(x, c), rtol=0, atol=0)
    for name in ("B-16", "B-32", "L-14", "tiny"):  # every shipped architecture builds
        assert referred.model.config.architecture(name)["name"] == name


def test_conv_stem_checkpoint_infers_architecture(tmp_path):
    model = referred.create_model("tiny", seed=5)
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    cfg = referred.load_model(tmp_path / "tiny.pth").config
    assert cfg.conv_stem == (32, 64, 128) and cfg.patch_size == 8 and cfg.input_resolution == 64
