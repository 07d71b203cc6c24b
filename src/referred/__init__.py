"""referred: Referred Visual Search with CondViT.

A shopper shows a photo of a person and says which item they mean; ``referred`` finds that exact
product in a catalog. The few names most users need::

    import referred
    model = referred.load_model("Slep/CondViT-B16-cat")          # or a local file/folder
    q = model.encode_queries(["scene.jpg"], ["Bags"])           # (1, 512), L2-normalised
    t = model.encode_targets(["product.jpg"])                   # (1, 512)
"""

from referred.categories import LRVSF_CATEGORIES
from referred.model import CondViT, ModelConfig, create_model, load_model
from referred.preprocess import PreprocessConfig

__version__ = "0.1.0"

__all__ = [
    "LRVSF_CATEGORIES",
    "CondViT",
    "ModelConfig",
    "PreprocessConfig",
    "__version__",
    "create_model",
    "load_model",
]
