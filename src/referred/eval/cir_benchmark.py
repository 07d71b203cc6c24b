"""The composed-retrieval benchmark: inputs → rankings per method → report.json, table.md.

``run_cir_benchmark(model, "fiq/", "out/")`` evaluates, on one split of a FashionIQ-layout
folder (default ``test`` when it has captions, else ``val``), the model's Combiner (when it
has one, :mod:`referred.cir`) and the training-free baselines of
:mod:`referred.cir.baselines`. The baselines' text bridge is built from (at most
``bridge_triplets``) training triplets; the weighted sum's and slerp's weights are chosen on
the validation split unless that is the split evaluated (then the defaults are kept).
Vectors are cached in ``cache_dir`` (default ``OUT/embeddings``), keyed by the model's
fingerprint: a training run's ``OUT/cache`` can be passed to reuse its vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from referred.cir.baselines import BASELINES, TextBridge, compose
from referred.cir.data import SplitVectors, split_vectors, wordings
from referred.cir.features import VectorCache, image_vectors, model_key, text_vectors
from referred.cir.plan import plan_split
from referred.data.fashioniq import FashionIQ
from referred.eval.cir import cir_ranks, cir_report, cir_table, method_scores
from referred.eval.report import save_json

log = logging.getLogger(__name__)
WEIGHT_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_WEIGHTS = {"weighted": 0.3, "slerp": 0.5}


@dataclass
class CIRBenchmarkResult:
    report: dict[str, Any]
    table: str
    paths: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: method → category → each triplet's target rank
    ranks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


Composer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rank_all(vectors: SplitVectors, compose_fn: Composer) -> dict[str, np.ndarray]:
    """Ranks per category of one composition ``compose_fn(q (n, D), t (n, T)) → (n, D)``."""
    out = {}
    for c in vectors.plan.categories:
        q = compose_fn(vectors.queries(c), vectors.eval_texts(c)).numpy()
        plan = vectors.plan
        out[c] = cir_ranks(q, vectors.gallery(c).numpy(), plan.targets[c], plan.candidates[c])
    return out


def baseline_fn(name: str, bridge: TextBridge, weight: float) -> Composer:
    return lambda q, t: compose(name, q, bridge(t), weight)


def choose_weight(name: str, val: SplitVectors, bridge: TextBridge) -> float:
    """The grid weight with the best mean of R@10 and R@50 on ``val`` (first best wins)."""
    scores = [
        method_scores(rank_all(val, baseline_fn(name, bridge, w)), samples=0)["average"]["mean"]
        for w in WEIGHT_GRID
    ]
    return WEIGHT_GRID[int(np.argmax(scores))]


def build_bridge(
    data: FashionIQ, encoder: Any, images: VectorCache, texts: VectorCache, encode: Any,
    limit: int, k: int, progress: bool,
) -> TextBridge:  # fmt: skip
    """The text bridge from up to ``limit`` training triplets (evenly spaced), each of their
    four wordings paired with their target's vector."""
    triplets = data.triplets("train")
    if len(triplets) > limit:
        keep = np.linspace(0, len(triplets) - 1, limit).round().astype(int)
        triplets = [triplets[i] for i in keep]
    targets = image_vectors(
        encoder, data.image_path, [t.target for t in triplets], images, progress
    )
    words = [w for t in triplets for w in wordings(t)]
    tv = text_vectors(encode, words, texts)
    return TextBridge(torch.from_numpy(tv), torch.from_numpy(np.repeat(targets, 4, axis=0)), k)


def run_cir_benchmark(
    model: Any,
    data: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = None,
    samples: int = 200,
    seed: int = 0,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    bridge_triplets: int = 3000,
    bridge_k: int = 32,
    text_encoder: Any = None,
    image_encoder: Any = None,
    model_name: str | None = None,
    progress: bool = False,
) -> CIRBenchmarkResult:
    """Run the benchmark (see the module docstring). ``text_encoder`` (a callable list[str]
    → (B, T)) replaces loading the sentence encoder, ``image_encoder`` (``encode_targets``,
    ``batch_size``) the model's query path (tests)."""
    from referred.model.config import DEFAULT_TEXT_ENCODER
    from referred.model.text import load_text_encoder
    from referred.query import QueryEncoder

    ds = FashionIQ(data)
    notes: list[str] = []
    if split is None:
        split = "test" if "test" in ds.splits() else "val"
        notes.append(f"evaluated on the {split!r} split")
    ds.check_split(split)
    head = getattr(model, "cir_head", None)
    enc_name = (head.text_encoder if head else None) or model.config.text_encoder
    enc_name = enc_name or DEFAULT_TEXT_ENCODER
    encode = text_encoder or load_text_encoder(enc_name)
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else out / "embeddings"
    images = VectorCache(cache / "images.npz", model_key(model))
    texts = VectorCache(cache / "texts.npz", enc_name)
    encoder = image_encoder or QueryEncoder(model, batch_size=batch_size)
    plan = plan_split(ds, split)
    if plan.added_targets:
        notes.append(f"{plan.added_targets} targets missing from image_splits were added")
    test = split_vectors(ds, plan, encoder, images, encode, texts, progress)
    ranks: dict[str, dict[str, np.ndarray]] = {}
    if head is not None:
        with torch.inference_mode():
            ranks["combiner"] = rank_all(test, lambda q, t: head.net(q, t))
    weights = dict(DEFAULT_WEIGHTS)
    if "train" in ds.splits():
        bridge = build_bridge(
            ds, encoder, images, texts, encode, bridge_triplets, bridge_k, progress
        )
        if "val" in ds.splits() and split != "val":
            val = split_vectors(ds, plan_split(ds, "val"), encoder, images, encode, texts, progress)
            weights = {n: choose_weight(n, val, bridge) for n in DEFAULT_WEIGHTS}
        else:
            notes.append("weighted and slerp keep their default weights (no separate val split)")
        for name in BASELINES:
            ranks[name] = rank_all(test, baseline_fn(name, bridge, weights.get(name, 0.5)))
    else:
        notes.append("no train split: the text bridge cannot be built; only the image baseline")
        ranks["image"] = rank_all(test, lambda q, t: q)
    primary = "combiner" if head is not None else "image"
    if head is None:
        notes.append("the model has no Combiner: the top-level scores are the image baseline's")
    report = cir_report(
        ranks, primary, samples=samples, seed=seed, split=split, data=str(data),
        model=model_name, text_encoder=enc_name, baseline_weights=weights,
        bridge={"triplets": bridge_triplets, "k": bridge_k}, notes=notes,
        gallery_sizes={c: len(plan.galleries[c]) for c in plan.categories},
    )  # fmt: skip
    table = cir_table(report)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": save_json(report, out / "report.json"), "table": out / "table.md"}
    paths["table"].write_text(table + "\n")
    return CIRBenchmarkResult(report, table, paths, notes, ranks)
