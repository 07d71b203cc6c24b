"""referred.query: one set of condition rules, and the same vector from every caller."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import referred
from referred.categories import LRVSF_CATEGORIES
from referred.query import (
    MAX_TEXT_CHARS,
    NONE,
    Condition,
    EmptyTextError,
    QueryEncoder,
    QueryError,
    TextTooLongError,
    UnknownCategoryError,
    UnsupportedConditionError,
    coerce,
    parse,
)
from tests.search.test_searcher import fake_text_encoder

CAT = referred.create_model("tiny", conditioning="category", seed=0).config
TXT = referred.create_model("tiny", conditioning="text", seed=0).config
NO = referred.create_model("tiny", conditioning="none", seed=0).config


@pytest.mark.parametrize("name", ["Lower Body", "lower_body", " LOWER-body ", "lower  body", 4])
def test_a_category_is_named_loosely_or_by_index(name):
    assert parse(CAT, category=name) == Condition("category", "Lower Body")
    assert parse(TXT, category=name) == Condition("text", "Lower Body")  # sent as its name


@pytest.mark.parametrize("config", [CAT, TXT], ids=["category model", "text model"])
@pytest.mark.parametrize("bad", ["Socks", "lowerbody", 10, -1])
def test_an_unknown_category_is_refused_on_every_model_listing_the_choices(config, bad):
    with pytest.raises(UnknownCategoryError, match="accepts: Bags, Feet, Hands"):
        parse(config, category=bad)


def test_texts_are_stripped_bounded_and_refused_by_category_models():
    assert parse(TXT, text="  a red tote ") == Condition("text", "a red tote")
    assert parse(TXT, text="x" * MAX_TEXT_CHARS).value == "x" * MAX_TEXT_CHARS
    with pytest.raises(QueryError, match=f"1001 characters; at most {MAX_TEXT_CHARS}"):
        parse(TXT, text="x" * (MAX_TEXT_CHARS + 1))
    for empty in ("", "   ", 3):
        with pytest.raises(QueryError, match="non-empty str"):
            parse(TXT, text=empty)
    assert parse(TXT, text="red\x00tote\tbag\x85").value == "red tote bag"  # controls: spaces
    with pytest.raises(EmptyTextError):
        parse(TXT, text="\x00\x1b ")
    with pytest.raises(TextTooLongError, match="at most 20"):  # a service may lower the limit
        parse(TXT, text="x" * 21, max_text_chars=20)
    assert len(parse(TXT, text="x" * 1000, max_text_chars=5000).value) == 1000  # never raise it
    with pytest.raises(UnsupportedConditionError, match=r"categories only.*Valid categories: Bags"):
        parse(CAT, text="a red tote")


def test_impossible_combinations():
    with pytest.raises(UnsupportedConditionError, match="not both"):
        parse(TXT, category="Bags", text="red")
    with pytest.raises(UnsupportedConditionError, match="takes no condition"):
        parse(NO, category="Bags")
    with pytest.raises(QueryError, match=r"a name .* or an index"):
        parse(CAT, category=True)
    assert parse(NO) == parse(CAT) == NONE


def test_loose_conditions_of_search_many_and_encode_queries():
    assert coerce(CAT, "bags") == Condition("category", "Bags")
    assert coerce(TXT, "bags") == Condition("text", "Bags")
    assert coerce(TXT, "a striped scarf") == Condition("text", "a striped scarf")
    assert coerce(CAT, {"category": "neck"}) == Condition("category", "Neck")
    assert coerce(CAT, np.int64(2)) == Condition("category", "Hands")
    assert coerce(CAT, None) == NONE
    with pytest.raises(UnknownCategoryError):  # a category model never reads a str as text
        coerce(CAT, "a striped scarf")
    with pytest.raises(QueryError, match="got keys \\['colour'\\]"):
        coerce(CAT, {"colour": "red"})
    with pytest.raises(QueryError, match="a condition must be"):
        coerce(CAT, 1.5)


def test_the_choices_are_the_table_or_lrvsf_names():
    assert QueryEncoder(referred.create_model("tiny", seed=0)).category_choices == LRVSF_CATEGORIES
    assert QueryEncoder(referred.CondViT(NO)).category_choices == ()


def scene(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (50, 36, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_mixed_kinds_are_batched_per_kind_and_kept_in_order():
    model = referred.create_model("tiny", conditioning="text", seed=3)
    enc = QueryEncoder(model, batch_size=2, text_encoder=fake_text_encoder)
    calls = []
    net = enc.net
    enc.net = lambda x, c=None: calls.append((len(x), c is None)) or net(x, c)
    images = [scene(i) for i in range(4)] + [scene(1)]
    conds = [None, "Bags", "a red tote", None, "bags"]
    out = enc.encode(images, conds)
    assert sorted(calls) == sorted([(2, True), (2, False), (1, False)])
    one_by_one = torch.cat([enc.encode([im], [c]) for im, c in zip(images, conds)])
    torch.testing.assert_close(out, one_by_one, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], out[4])  # "Bags" and "bags": one condition
    assert not torch.allclose(out[1], out[2], atol=1e-3)  # the text changes the vector
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_the_benchmark_and_the_service_give_the_same_vectors(tmp_path):
    """The same scene and condition through `referred benchmark`'s embedding stage and through
    the Searcher (the web service's path), `referred embed` and the model's own method."""
    from referred.catalog import build_catalog_index
    from referred.catalog.cache import read_embeddings
    from referred.data import open_dataset
    from referred.data.synth import SynthConfig, write_synthetic_dataset
    from referred.embed import embed_items
    from referred.eval.inputs import _query_image, model_digest, model_inputs
    from referred.search import Searcher

    write_synthetic_dataset(tmp_path / "ds", SynthConfig(products=12, distractors=4, size=32))
    ds = open_dataset(tmp_path / "ds")
    model = referred.create_model("tiny", seed=5).eval()
    encoder = QueryEncoder(model)
    inputs = model_inputs(encoder, ds, "category", 0, tmp_path / "bench", 4, 64, False, [])
    assert model_digest(encoder) == model_digest(model)  # caches keyed by the weights
    products = {p.product_id: p for p in ds.products("test")}
    key = str(inputs.products.keys[0])
    product = products[key]
    image = _query_image(product).read_bytes()
    from_benchmark = torch.from_numpy(inputs.queries[0])

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "a.png").write_bytes(scene(0))
    build_catalog_index(model, tmp_path / "idx", source=catalog, progress=False)
    searcher = Searcher.open(tmp_path / "idx", model=model)
    from_service = torch.from_numpy(searcher.embed(image, category=product.category))
    torch.testing.assert_close(from_service, from_benchmark, atol=1e-6, rtol=0)

    embed_items(model, [(key, image)], tmp_path / "e.parquet", product.category, progress=False)
    from_embed = torch.tensor(read_embeddings(tmp_path / "e.parquet")[1][0])
    torch.testing.assert_close(from_embed, from_benchmark, atol=1e-6, rtol=0)
    plain = model.encode_queries([image], [product.category])[0]  # the plain forward
    torch.testing.assert_close(plain, from_benchmark, atol=1e-5, rtol=0)
