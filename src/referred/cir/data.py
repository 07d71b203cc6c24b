"""Vectors of a FashionIQ-layout split, ready to train or evaluate a composition on.

:func:`split_vectors` embeds a :class:`~referred.cir.plan.SplitPlan`'s images with the
frozen CondViT and every triplet's texts with the sentence encoder (both cached, see
:mod:`referred.cir.features`). Training draws one of four wordings per triplet and step:
either annotator's text, or both joined either way; evaluation uses both joined
("c1 and c2", :meth:`Triplet.text`), the FashionIQ convention of CLIP4Cir.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from referred.cir.features import VectorCache, image_vectors, text_vectors
from referred.cir.plan import SplitPlan
from referred.data.fashioniq import FashionIQ, Triplet


def wordings(t: Triplet) -> tuple[str, str, str, str]:
    """The four training texts of a triplet: each caption, both joined in either order."""
    caps = [c.strip().rstrip(".") for c in t.captions if c.strip()]
    first, second = caps[0], caps[-1]
    return first, second, f"{first} and {second}", f"{second} and {first}"


@dataclass
class SplitVectors:
    """``images`` (N, D) in ``plan.names`` order; ``texts`` (M, T); per category the rows of
    its triplets' candidates (``queries``), their four wordings (``wordings`` (n, 4) rows of
    ``texts``; column 2 is the evaluation text) and the gallery of :class:`SplitPlan`."""

    plan: SplitPlan
    images: torch.Tensor
    texts: torch.Tensor
    wordings: dict[str, torch.Tensor]

    def gallery(self, category: str) -> torch.Tensor:
        return self.images[torch.from_numpy(self.plan.galleries[category])]  # (n_g, D)

    def queries(self, category: str) -> torch.Tensor:
        return self.images[torch.from_numpy(self.plan.query_rows[category])]  # (n, D)

    def eval_texts(self, category: str) -> torch.Tensor:
        return self.texts[self.wordings[category][:, 2]]  # (n, T)


def split_vectors(
    data: FashionIQ,
    plan: SplitPlan,
    encoder: Any,
    image_cache: VectorCache,
    encode_texts: Callable[[list[str]], Any],
    text_cache: VectorCache,
    progress: bool = False,
) -> SplitVectors:
    """Embed ``plan`` (see the module docstring)."""
    images = image_vectors(encoder, data.image_path, plan.names, image_cache, progress)
    all_words = {c: [wordings(t) for t in plan.triplets[c]] for c in plan.categories}
    unique = list(dict.fromkeys(w for ws in all_words.values() for four in ws for w in four))
    row = {w: i for i, w in enumerate(unique)}
    texts = text_vectors(encode_texts, unique, text_cache)
    rows = {
        c: torch.tensor([[row[w] for w in four] for four in ws], dtype=torch.long).reshape(-1, 4)
        for c, ws in all_words.items()
    }
    return SplitVectors(plan, torch.from_numpy(images), torch.from_numpy(np.asarray(texts)), rows)
