"""Validation recall: embeddings match the model's own encoders; metrics match a full matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from referred.data import open_dataset
from referred.eval.metrics import ranks_from_scores
from referred.model import create_model
from referred.model.config import make_config
from referred.train.validate import SplitEmbeddings, embed_split, retrieval_metrics
from tests.train.conftest import FIXTURES, MICRO_ARCH


def test_embeddings_are_the_models_query_and_target_encodings():
    model = create_model(make_config(MICRO_ARCH, "category"), seed=0)
    ds = open_dataset(FIXTURES / "training")
    emb = embed_split(model, ds, "valid")
    products = list(ds.products("valid"))
    q = model.encode_queries(
        [p.complex[0].open() for p in products], [p.category for p in products]
    )
    t = model.encode_targets([p.simple[0].open() for p in products])
    np.testing.assert_allclose(emb.queries, q.numpy(), atol=1e-5)
    np.testing.assert_allclose(emb.targets, t.numpy(), atol=1e-5)
    d = model.encode_targets([x.image.open() for x in ds.distractors("valid")])
    np.testing.assert_allclose(emb.distractors, d.numpy(), atol=1e-5)
    assert emb.target_categories.tolist() == [5, 8]  # Neck, Waist
    assert embed_split(model, ds, "valid", max_distractors=1).distractors.shape == (1, 16)


def test_recall_matches_ranks_from_the_full_score_matrix():
    rng = np.random.default_rng(0)

    def unit(n):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    targets = unit(20)
    queries = unit(20) * 0.3 + targets  # noisy copies: most, not all, rank first
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    emb = SplitEmbeddings(queries, targets, np.arange(20) % 3, unit(50), np.arange(50) % 3)
    got = retrieval_metrics(emb)
    scores = queries @ np.concatenate([targets, emb.distractors]).T
    ranks = ranks_from_scores(scores, np.arange(20))
    for k in (1, 5, 10):
        assert got[f"R@{k}"] == pytest.approx(np.mean(ranks <= k))
    sweep = retrieval_metrics(emb, distractor_counts=(0, 50))
    assert sweep[50] == got and sweep[0]["R@1"] >= got["R@1"]
    with pytest.raises(ValueError, match="exceed the 50 distractors"):
        retrieval_metrics(emb, distractor_counts=(100,))


def test_unusable_products_are_counted():
    model = create_model(make_config(MICRO_ARCH, "category", categories=["Neck"]), seed=0)
    torch.manual_seed(0)
    emb = embed_split(model, open_dataset(FIXTURES / "training"), "valid")
    assert len(emb.queries) == 1 and emb.skipped["unusable-product"] == 1  # Waist: no token


def test_a_text_model_is_validated_on_captions_or_category_names():
    model = create_model(make_config(MICRO_ARCH, "text", cond_dim=8), seed=0)
    ds = open_dataset(FIXTURES / "training")
    products = list(ds.products("valid"))
    seen: list[str] = []

    def encoder(texts):
        seen.extend(texts)
        return torch.stack([torch.full((8,), float(len(t))) for t in texts])

    by_caption = embed_split(model, ds, "valid", text_encoder=encoder)
    assert seen == [p.captions[0] if p.captions else p.category for p in products]
    seen.clear()
    by_name = embed_split(model, ds, "valid", text_encoder=encoder, texts="category")
    assert seen == [p.category for p in products]
    np.testing.assert_allclose(by_name.targets, by_caption.targets)
    with pytest.raises(ValueError, match="texts must be one of"):
        embed_split(model, ds, "valid", text_encoder=encoder, texts="title")
