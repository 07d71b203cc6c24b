"""The Combiner, the training-free baselines and the text bridge, and the Combiner saved
beside its CondViT (``referred.load_model`` attaches it; the CondViT's weights stay)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import referred
from referred.cir import Combiner, CombinerConfig, TextBridge, load_head, save_head
from referred.cir.baselines import BASELINES, compose, slerp
from referred.cir.io import COMBINER_NAME, CIRHead, CombinerFileError
from referred.search.provenance import fingerprint


def test_slerp_walks_the_great_circle():
    q, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(slerp(q, t, 0.0), q) and torch.allclose(slerp(q, t, 1.0), t)
    c = math.cos(math.pi / 6)
    assert torch.allclose(slerp(q, t, 1 / 3), torch.tensor([[c, 0.5]]), atol=1e-6)  # 30°
    assert torch.allclose(slerp(q, q, 0.4), q)  # parallel rows stay put


def test_baselines_by_hand():
    q, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    s = 1 / math.sqrt(2)
    assert torch.allclose(compose("image", q, t), q) and torch.allclose(compose("text", q, t), t)
    assert torch.allclose(compose("sum", q, t), torch.tensor([[s, s]]))
    w = compose("weighted", q, t, 0.25)  # 0.75 q + 0.25 t, normalised
    assert torch.allclose(w, F.normalize(torch.tensor([[3.0, 1.0]]), dim=-1))
    assert set(BASELINES) == {"image", "text", "sum", "weighted", "slerp"}
    with pytest.raises(ValueError, match="unknown baseline 'product'"):
        compose("product", q, t)
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
        compose("weighted", q, t, 1.5)


def test_text_bridge_averages_the_targets_of_the_nearest_requests():
    texts = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    bridge = TextBridge(texts, targets, k=2)
    out = bridge(torch.tensor([[1.0, 0.05]]))  # nearest: requests 0 and 1
    assert torch.allclose(out, torch.tensor([[s := 1 / math.sqrt(2), s, 0.0]]))
    with pytest.raises(ValueError, match="same N"):
        TextBridge(texts, targets[:2])


def test_an_untrained_combiner_answers_near_the_image_alone():
    torch.manual_seed(0)
    net = Combiner(CombinerConfig(image_dim=16, text_dim=8)).eval()
    q = F.normalize(torch.randn(5, 16), dim=-1)
    out = net(q, torch.randn(5, 8))  # (5, 16)
    assert out.shape == (5, 16) and torch.allclose(out.norm(dim=-1), torch.ones(5))
    assert torch.allclose(out, q, atol=1e-6)  # λ (0.12) mixes in a zero text projection
    with pytest.raises(ValueError, match="unknown Combiner config keys"):
        CombinerConfig.from_dict({"image_dim": 4, "text_dim": 4, "layers": 2})


def _trained_like_head(image_dim: int, seed: int = 0) -> CIRHead:
    torch.manual_seed(seed)
    net = Combiner(CombinerConfig(image_dim=image_dim, text_dim=8))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return CIRHead(net, "fake-encoder", {"note": "test"})


def test_the_combiner_travels_with_its_model(tmp_path):
    model = referred.create_model("tiny", conditioning="text", cond_dim=8, seed=0)
    model.save_pretrained(tmp_path / "m")
    assert not hasattr(referred.load_model(tmp_path / "m"), "cir_head")
    head = _trained_like_head(model.config.output_dim)
    save_head(tmp_path / "m", head)
    assert (tmp_path / "m" / COMBINER_NAME).stat().st_size < 200_000  # float16 on disk
    loaded = referred.load_model(tmp_path / "m")
    assert fingerprint(loaded) == fingerprint(model)  # the CondViT is untouched
    got = loaded.cir_head
    assert got.text_encoder == "fake-encoder" and got.record == {"note": "test"}
    q, t = F.normalize(torch.randn(4, 64), dim=-1), torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(got.net(q, t), head.net.eval()(q, t), atol=2e-3)  # fp16 weights
    loaded.save_pretrained(tmp_path / "again")  # re-saving keeps it
    assert load_head(tmp_path / "again") is not None


def test_a_bad_combiner_file_is_named(tmp_path):
    (tmp_path / COMBINER_NAME).write_bytes(b"not safetensors")
    with pytest.raises(CombinerFileError, match="not a readable safetensors file"):
        load_head(tmp_path)
    save_head(tmp_path, _trained_like_head(32))
    with pytest.raises(CombinerFileError, match="composes 32-d vectors but the model outputs 64-d"):
        load_head(tmp_path, image_dim=64)
