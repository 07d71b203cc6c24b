"""Bad checkpoints fail with the problem named; nothing arbitrary is unpickled."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

import referred
from referred.model import CheckpointError
from referred.model import hub as hub_mod
from tests.model import layouts
from tests.model.test_parity import random_state


def test_missing_and_unexpected_keys_are_named(tmp_path):
    sd = random_state(categories=referred.LRVSF_CATEGORIES)
    del sd["ln_post.weight"]
    sd["extra.thing"] = torch.zeros(2)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        referred.load_model(tmp_path / "bad.pth")
    assert "missing keys ['ln_post.weight']" in str(err.value)
    assert "unexpected keys ['extra.thing']" in str(err.value)


def test_shape_mismatch_is_named(tmp_path):
    sd = random_state()
    sd["ln_pre.bias"] = torch.zeros(7)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"ln_pre.bias: checkpoint \(7,\)"):
        referred.load_model(tmp_path / "bad.pth")


def test_corrupt_files(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        referred.load_model(tmp_path / "junk.safetensors")
    sd = random_state()
    torch.save(sd, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: not a readable torch state dict"):
        referred.load_model(tmp_path / "cut.pth")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_arbitrary_pickles_are_refused(tmp_path, capsys):
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"conv1.weight": Evil()}, f)
    with pytest.raises(CheckpointError, match="not a readable torch state dict"):
        referred.load_model(tmp_path / "evil.pth")
    assert "pwned" not in capsys.readouterr().out


def test_unknown_layout_and_bad_paths(tmp_path):
    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        referred.load_model(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="neither a file, a folder nor a hub id"):
        referred.load_model(tmp_path / "nope.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no weights found"):
        referred.load_model(tmp_path / "empty")


def test_missing_shard_is_named(tmp_path):
    folder = layouts.write_hf_txt(random_state(cond_dim=128), tmp_path / "txt")
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="names the shard model-00002-of-00002"):
        referred.load_model(folder)


def test_unknown_category_count_needs_names(tmp_path):
    sd = random_state(categories=("a", "b", "c"))
    torch.save(sd, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="has 3 category embeddings; pass categories"):
        referred.load_model(tmp_path / "m.pth")
    model = referred.load_model(tmp_path / "m.pth", categories=["a", "b", "c"])
    assert model.config.categories == ("a", "b", "c")


def test_offline_hub_id_says_what_to_pass(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="huggingface-cli download Slep/CondViT-B16-cat"):
        referred.load_model("Slep/CondViT-B16-cat")


def test_hub_download_skips_sentence_encoder_shards(tmp_path, monkeypatch):
    """The hub path fetches config, index and only the shards with vision weights."""
    folder = layouts.write_hf_txt(random_state(cond_dim=128), tmp_path / "remote")
    fetched = []

    def fake_download(repo_id, filename, revision=None):
        assert repo_id == "Slep/CondViT-B16-txt"
        fetched.append(filename)
        return str(folder / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    model = referred.load_model("Slep/CondViT-B16-txt")
    assert fetched == [
        "config.json",
        "model.safetensors.index.json",
        "model-00002-of-00002.safetensors",
    ]
    assert model.config.cond_dim == 128
    assert hub_mod.looks_like_hub_id("Slep/CondViT-B16-cat")
    assert not hub_mod.looks_like_hub_id("./relative/path/x.pth")


def test_saved_format_version_is_checked(tmp_path):
    model = referred.create_model("tiny", seed=0)
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["format_version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="format_version 99 is not supported"):
        referred.load_model(tmp_path / "m")
