"""Composed retrieval: "this, but in red" on top of referred search.

A :class:`Combiner` (after CLIP4Cir) turns the CondViT embedding of the query item (a
referred scene + condition, or a catalog product) and the sentence embedding of a
modification into a vector of the same catalog space, so existing indexes answer it. It is
trained on triplets over frozen vectors (``referred train --task cir``, :mod:`referred.train.cir`)
and saved beside its CondViT (``combiner.safetensors``, :mod:`referred.cir.io`), where
``referred.load_model`` finds it (``model.cir_head``). Beside it, training-free baselines
(:mod:`referred.cir.baselines`); the benchmark is :mod:`referred.eval.cir_benchmark`.

    model = referred.load_model("src/referred/assets/demo-model")
    composer = Composer.of(model)                       # None without a Combiner
    v = composer(model.encode_targets(["dress.jpg"]), ["in red"])   # (1, D) unit rows
"""

from __future__ import annotations

from referred._lazy import lazy_exports

_LAZY = {
    "BASELINES": "referred.cir.baselines",
    "CIRHead": "referred.cir.io",
    "Combiner": "referred.cir.combiner",
    "CombinerConfig": "referred.cir.combiner",
    "Composer": "referred.cir.compose",
    "MAX_MODIFY_CHARS": "referred.cir.compose",
    "TextBridge": "referred.cir.baselines",
    "check_modification": "referred.cir.compose",
    "load_head": "referred.cir.io",
    "save_head": "referred.cir.io",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
