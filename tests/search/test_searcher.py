"""The Searcher on a tiny random CondViT and a flat index of generated product images."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

import referred
from referred.imageio import ImageDecodeError
from referred.index import FilterError, UnknownFieldError, create_index
from referred.model.encoding import set_text_encoder
from referred.search import (
    USER_ERRORS,
    Hit,
    IndexMismatchError,
    QueryError,
    Searcher,
    UnknownCategoryError,
    UnknownProductError,
    UnsupportedConditionError,
)

CATS = ("Bags", "Feet", "Head")
N = 12


def photo(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A random RGB image (h, w) = size."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    photo(seed).save(buf, "PNG")
    return buf.getvalue()


def fake_text_encoder(texts):
    """Deterministic 384-d unit vectors from the text's characters (no sentence model)."""
    out = []
    for t in texts:
        rng = np.random.default_rng(sum(map(ord, t)))
        v = rng.standard_normal(384).astype(np.float32)
        out.append(v / np.linalg.norm(v))
    return torch.from_numpy(np.stack(out))


def catalog_index(model, n: int = N):
    """A flat index of n products: image i, category CATS[i % 3], title and image path."""
    vectors = model.encode_targets([photo(i) for i in range(n)]).numpy()
    index = create_index("flat", vectors.shape[1])
    meta = [
        {"category": CATS[i % 3], "title": f"item {i}", "image": f"/img/{i}.png"} for i in range(n)
    ]
    index.add([f"p{i}" for i in range(n)], vectors, meta)
    return index


@pytest.fixture(scope="module")
def text_searcher():
    m = referred.create_model("tiny", conditioning="text", seed=1)
    set_text_encoder(m, fake_text_encoder)
    return Searcher(m, catalog_index(m))


class CountingForward:
    """Wraps the forward a searcher runs and records the batch size of every call."""

    def __init__(self, searcher, monkeypatch):
        self.batches: list[int] = []
        original = searcher.encoder.net

        def forward(x, c=None):
            self.batches.append(x.shape[0])
            return original(x, c)

        monkeypatch.setattr(searcher.encoder, "net", forward)


def test_interface_attributes(searcher, text_searcher):
    assert searcher.categories == CATS and not searcher.accepts_text
    assert text_searcher.categories == () and text_searcher.accepts_text
    assert searcher.category_choices == CATS
    assert text_searcher.category_choices == referred.LRVSF_CATEGORIES  # sent as texts
    assert len(searcher) == N and searcher.model_matches_index is None


@pytest.mark.parametrize("condition", [{}, {"category": "Feet"}, {"category": "bags"}])
def test_search_returns_k_hits_with_metadata(searcher, model, condition):
    hits = searcher.search(png(3), k=5, **condition)
    assert len(hits) == 5 and all(isinstance(h, Hit) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        i = int(h.id[1:])
        assert h.metadata == {
            "category": CATS[i % 3],
            "title": f"item {i}",
            "image": f"/img/{i}.png",
        }
    # the same query through the model's own API and a direct index search
    cond = [condition["category"]] if condition else None
    q = model.encode_queries([photo(3)], cond).numpy()
    _, ids = searcher.index.search(q, 5)
    assert [h.id for h in hits] == list(ids[0])


def test_the_fast_forward_finds_what_the_plain_model_finds(searcher, model):
    from referred.model.fast import FastCondViT

    assert isinstance(searcher.encoder.net, FastCondViT)
    plain = Searcher(model, searcher.index, fast=False)
    assert plain.encoder.net is model
    for cond in ({}, {"category": "Feet"}):
        fast_hits, plain_hits = (
            searcher.search(png(7), k=8, **cond),
            plain.search(png(7), k=8, **cond),
        )
        assert [h.id for h in fast_hits] == [h.id for h in plain_hits]
        np.testing.assert_allclose(
            [h.score for h in fast_hits], [h.score for h in plain_hits], atol=1e-5
        )


def test_repeated_texts_skip_the_sentence_encoder(model):
    m = referred.create_model("tiny", conditioning="text", seed=1)
    seen: list[str] = []

    def counting(texts):
        seen.extend(texts)
        return fake_text_encoder(texts)

    set_text_encoder(m, counting)
    s = Searcher(m, catalog_index(m))
    first = s.search(png(2), text="a red bag", k=3)
    s.search_many([png(1), png(2)], ["a red bag", "Bags"], k=3)
    assert seen == ["a red bag", "Bags"]
    assert [h.id for h in s.search(png(2), text="a red bag", k=3)] == [h.id for h in first]
    seen.clear()
    s.warm_up()  # what the service does at start: every category choice, once
    assert seen == [c for c in referred.LRVSF_CATEGORIES if c != "Bags"]
    s.search(png(3), category="Neck")
    assert len(seen) == 9


def test_text_query_and_category_as_text(text_searcher):
    hits = text_searcher.search(photo(1), text="a red leather bag", k=4)
    assert len(hits) == 4 and hits[0].metadata["title"].startswith("item")
    by_name = text_searcher.search(photo(1), category="Bags", k=4)  # sent as the text "Bags"
    assert by_name == text_searcher.search(photo(1), text="Bags", k=4)


def test_filter_and_small_catalog_padding(searcher):
    hits = searcher.search(photo(0), k=10, filter={"category": "Head"})
    assert len(hits) == 4 and {h.metadata["category"] for h in hits} == {"Head"}
    assert searcher.search(photo(0), k=50) and len(searcher.search(photo(0), k=50)) == N


def test_shop_the_look_is_one_forward_and_filters_by_category(searcher, monkeypatch):
    counter = CountingForward(searcher, monkeypatch)
    looks = searcher.shop_the_look(photo(5), k=3)
    assert counter.batches == [3]  # one forward, a batch of the 3 categories
    assert list(looks) == list(CATS)
    for category, hits in looks.items():
        assert len(hits) == 3 and {h.metadata["category"] for h in hits} == {category}
        single = searcher.search(photo(5), category=category, k=3, filter={"category": category})
        assert [h.id for h in hits] == [h.id for h in single]
        assert np.allclose([h.score for h in hits], [h.score for h in single], atol=1e-5)


def test_shop_the_look_subset_unfiltered_and_text_model(searcher, text_searcher, monkeypatch):
    looks = searcher.shop_the_look(photo(5), categories=["head", "Bags", "Head"], k=N)
    assert list(looks) == ["Head", "Bags"]  # canonical spelling, duplicates dropped
    free = searcher.shop_the_look(photo(5), categories=["Head"], k=N, filter_by_category=False)
    assert len(free["Head"]) == N
    counter = CountingForward(text_searcher, monkeypatch)
    looks = text_searcher.shop_the_look(photo(5), k=2)  # LRVS-F names, as texts
    assert counter.batches == [len(referred.LRVSF_CATEGORIES)]
    assert {h.metadata["category"] for h in looks["Feet"]} == {"Feet"}
    assert looks["Waist"] == []  # no product of that category in the catalog


def test_search_many_batches_by_kind(searcher, monkeypatch):
    images = [photo(i) for i in range(5)]
    conds = ["Bags", None, {"category": "Feet"}, "Head", None]
    counter = CountingForward(searcher, monkeypatch)
    many = searcher.search_many(images, conds, k=3)
    assert sorted(counter.batches) == [2, 3]  # 3 category queries, 2 unconditioned
    for image, cond, hits in zip(images, conds, many):
        category = cond["category"] if isinstance(cond, dict) else cond
        single = searcher.search(image, category=category, k=3)
        assert [h.id for h in hits] == [h.id for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-5)
    counter.batches.clear()
    searcher.search_many(images, None, k=1)
    assert counter.batches == [5]
    assert searcher.search_many([], [], k=3) == []


def test_more_like_this_excludes_the_product(searcher):
    hits = searcher.more_like_this("p4", k=5)
    assert len(hits) == 5 and "p4" not in [h.id for h in hits]
    vector = searcher.index.get(["p4"]).vectors
    scores, ids = searcher.index.search(vector, 6)
    want = [(i, s) for i, s in zip(ids[0], scores[0]) if i != "p4"][:5]
    assert [(h.id, h.score) for h in hits] == [(i, pytest.approx(float(s))) for i, s in want]
    only = searcher.more_like_this("p4", k=5, filter={"category": "Feet"})  # p4 is Feet
    assert {h.metadata["category"] for h in only} == {"Feet"} and len(only) == 3


def test_attention_is_a_distribution_over_the_patch_grid(searcher, text_searcher):
    g = searcher.model.config.grid
    for s, kw in [
        (searcher, {}),
        (searcher, {"category": "Feet"}),
        (text_searcher, {"text": "hat"}),
    ]:
        a = s.attention(png(2), **kw)
        assert a.shape == (g, g) and a.dtype == np.float32
        assert a.sum() == pytest.approx(1.0, abs=1e-5) and (a >= 0).all()
    assert not np.allclose(
        searcher.attention(photo(2)), searcher.attention(photo(2), category="Feet")
    )


def test_product_metadata(searcher):
    assert searcher.product("p7") == {
        "id": "p7",
        "category": "Feet",
        "title": "item 7",
        "image": "/img/7.png",
    }


def test_user_errors_are_clear(searcher, text_searcher, model):
    img = photo(0)
    with pytest.raises(UnknownCategoryError, match="'Shoes'; this model accepts: Bags, Feet, Head"):
        searcher.search(img, category="Shoes")
    with pytest.raises(UnsupportedConditionError, match="categories only; free text"):
        searcher.search(img, text="red bag")
    with pytest.raises(UnsupportedConditionError, match="not both"):
        searcher.search(img, category="Bags", text="red bag")
    with pytest.raises(QueryError, match="non-empty"):
        text_searcher.search(img, text="  ")
    for k in (0, -1, 1001, True, 2.0, "3"):
        with pytest.raises(QueryError, match="k must be an int from 1 to 1000"):
            searcher.search(img, k=k)
    with pytest.raises(UnknownProductError, match="'nope'") as err:
        searcher.more_like_this("nope")
    assert isinstance(err.value, KeyError) and str(err.value).startswith("unknown product id")
    with pytest.raises(KeyError, match="nope"):
        searcher.product("nope")
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        searcher.search(png(0)[:50])
    with pytest.raises(ImageDecodeError, match="cannot read an image from int"):
        searcher.search(42)
    with pytest.raises(UnknownFieldError, match="'colour'"):
        searcher.search(img, filter={"colour": "red"})
    with pytest.raises(FilterError):
        searcher.search(img, filter=["Bags"])
    with pytest.raises(QueryError, match="2 images but 1 conditions"):
        searcher.search_many([img, img], ["Bags"])
    with pytest.raises(UnknownCategoryError):
        searcher.shop_the_look(img, categories=["Bags", "Shoes"])
    with pytest.raises(QueryError, match="list of names"):
        searcher.shop_the_look(img, categories="Bags")
    for exc in (UnknownCategoryError("x", ()), UnknownProductError("x")):
        assert isinstance(exc, USER_ERRORS) and isinstance(exc, (ValueError, KeyError))


def test_unconditional_model_and_dimension_mismatch(model):
    plain = referred.create_model("tiny", conditioning="none", seed=0)
    s = Searcher(plain, catalog_index(plain, 4))
    assert s.categories == () and len(s.search(photo(0), k=2)) == 2
    with pytest.raises(UnsupportedConditionError, match="takes no condition"):
        s.search(photo(0), category="Bags")
    with pytest.raises(UnsupportedConditionError, match="conditioned model"):
        s.shop_the_look(photo(0))
    with pytest.raises(IndexMismatchError, match="64-d embeddings but the index holds 8-d"):
        Searcher(model, create_index("flat", 8))


def test_recorded_fingerprint_is_checked(model, caplog):
    from referred.search.provenance import model_record

    index = catalog_index(model, 3)
    index.info = {"model": model_record(model, "some/path")}
    assert Searcher(model, index).model_matches_index is True
    other = referred.create_model("tiny", categories=CATS, seed=5)
    with caplog.at_level(logging.WARNING):
        assert Searcher(other, index).model_matches_index is False
    assert "built with other weights (some/path" in caplog.text


def test_catalog_writes_through_the_searcher(model, tmp_path):
    s = Searcher(model, catalog_index(model, 6))
    s.upsert_product("new", png(40), {"category": "Bags", "title": "new bag"})
    hit = s.search(png(40), k=1)[0]
    assert (hit.id, hit.metadata["title"]) == ("new", "new bag")
    assert np.allclose(
        s.index.get(["new"]).vectors[0], model.encode_targets([photo(40)])[0], atol=1e-5
    )
    s.upsert_product("new", png(41))  # replaced: vector and metadata
    assert s.product("new") == {"id": "new"}
    s.delete_product("new")
    with pytest.raises(UnknownProductError, match="'new'"):
        s.delete_product("new")
    s.save_index(tmp_path / "saved")
    assert len(Searcher.open(tmp_path / "saved", model)) == 6


def test_a_hybrid_searcher_runs_the_trunk_once_per_photo():
    from referred.model.config import ModelConfig

    arch = ModelConfig(input_resolution=64, trunk="efficientnet-lite0", width=64, layers=1,
                       heads=2, output_dim=16, categories=CATS)  # fmt: skip
    hybrid = referred.create_model(arch, seed=0)
    index = catalog_index(hybrid)
    plain = Searcher(referred.create_model(arch, seed=0), index, trunk_memo_mb=0)
    assert plain.model.trunk_memo is None
    searcher = Searcher(hybrid, index)
    seen = []
    hybrid.trunk.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    for cat in CATS:
        got, expected = (
            searcher.search(png(3), k=5, category=cat),
            plain.search(png(3), k=5, category=cat),
        )
        assert [h.id for h in got] == [h.id for h in expected]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in expected], atol=1e-5)
    assert seen == [1]  # three items asked of one photo: one trunk forward
    searcher.search(png(4), k=5, category="Bags")
    assert seen == [1, 1] and hybrid.trunk_memo.stats.hits == 2
    with pytest.raises(ValueError, match="trunk_memo_mb must be >= 0"):
        Searcher(hybrid, index, trunk_memo_mb=-1)
