"""referred: Referred Visual Search with CondViT.

A shopper shows a photo of a person and says which item they mean; ``referred`` finds that exact
product in a catalog. The few names most users need::

    import referred
    model = referred.load_model("Slep/CondViT-B16-cat")          # or a local file/folder
    q = model.encode_queries(["scene.jpg"], ["Bags"])           # (1, 512), L2-normalised
    t = model.encode_targets(["product.jpg"])                   # (1, 512)
    fast = referred.optimize_for_inference(model)               # same vectors, faster on CPU

Names are imported on first use, so ``import referred.data`` (or the CLI) does not pay for torch.
"""

from __future__ import annotations

from referred._lazy import lazy_exports
from referred.categories import LRVSF_CATEGORIES

__version__ = "0.1.0"

_LAZY = {
    "CondViT": "referred.model",
    "ModelConfig": "referred.model",
    "create_model": "referred.model",
    "load_model": "referred.model",
    "optimize_for_inference": "referred.model.fast",
    "PreprocessConfig": "referred.preprocess",
}

__all__ = ["LRVSF_CATEGORIES", "__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
