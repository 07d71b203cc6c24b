"""The interim demo: a synthetic catalog, a small model, exact search, printed results.

Builds (or reuses) a synthetic LRVS-F-style dataset, loads the bundled demo model when there
is one (else a randomly initialised tiny model, said plainly), embeds the test gallery and
distractors unconditioned, and answers a few referred queries (scene + category), printing the
top results and the test set's R@1. The web page replaces this printout in a later release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from referred.categories import LRVSF_CATEGORIES

log = logging.getLogger(__name__)

DEMO_MODEL_DIR = Path(__file__).parent / "assets" / "demo-model"


@dataclass(frozen=True)
class DemoResult:
    recall_at_1: float
    queries: int
    gallery: int
    trained_model: bool


def ensure_demo_data(root: Path, products: int = 400, distractors: int = 400) -> Path:
    """The cached synthetic dataset under ``root`` (written on first use)."""
    from referred.data.synth import SynthConfig, write_synthetic_dataset

    marker = root / ".complete"
    if not marker.is_file():
        log.info("writing a synthetic catalog to %s", root)
        write_synthetic_dataset(
            root, SynthConfig(products=products, distractors=distractors), overwrite=True
        )
        marker.write_text("ok\n")
    return root


def load_demo_model() -> tuple[torch.nn.Module, bool]:
    """The bundled demo model, or a random tiny one (``trained`` says which)."""
    from referred.model import create_model, load_model

    if (DEMO_MODEL_DIR / "config.json").is_file():
        return load_model(DEMO_MODEL_DIR), True
    return create_model("tiny", conditioning="category", seed=0), False


def run_demo(cache: Path, show: int = 3, k: int = 5) -> DemoResult:
    """Embed the demo catalog, answer referred queries, print what was found."""
    from referred.data import open_dataset

    torch.set_num_threads(1)
    ds = open_dataset(ensure_demo_data(cache))
    model, trained = load_demo_model()
    if not trained:
        print("note: no trained demo model is bundled; using an untrained tiny CondViT, so the")
        print("      results below are near chance. Train one with `referred train`.")
    products = list(ds.products("test"))
    gallery_ids = [p.product_id for p in products]
    gallery_cats = [p.category for p in products]
    images = [p.simple[0].read_bytes() for p in products]
    for d in ds.distractors("test"):
        gallery_ids.append(f"distractor/{d.distractor_id}")
        gallery_cats.append(d.category)
        images.append(d.image.read_bytes())
    gallery = model.encode_targets(images, batch_size=64).numpy()  # (G, D)
    queries = model.encode_queries(
        [p.complex[0].read_bytes() for p in products], [p.category for p in products], 64
    ).numpy()  # (Q, D)
    scores = queries @ gallery.T  # (Q, G): exact inner product on normalised vectors
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = top[:, 0] == np.arange(len(products))
    for qi in range(min(show, len(products))):
        p = products[qi]
        print(f"\nquery: scene of product {p.product_id}, condition {p.category!r}")
        for rank, gi in enumerate(top[qi], 1):
            mark = "  <- target" if gi == qi else ""
            print(
                f"  {rank}. {gallery_ids[gi]:<24} {gallery_cats[gi]!s:<12} "
                f"{scores[qi, gi]:.3f}{mark}"
            )
    r1 = float(hits.mean()) if len(hits) else 0.0
    print(
        f"\nR@1 over {len(products)} test queries against {len(gallery_ids)} catalog images: "
        f"{r1:.1%} (chance: {1 / max(len(gallery_ids), 1):.1%}); categories: "
        f"{', '.join(LRVSF_CATEGORIES)}"
    )
    return DemoResult(r1, len(products), len(gallery_ids), trained)
