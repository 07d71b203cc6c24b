"""CondViT: configs, the module, weight conversion and the factory."""

from referred.model.checkpoints import CheckpointError
from referred.model.condvit import CondViT
from referred.model.config import ModelConfig, available_architectures, make_config
from referred.model.factory import create_model, load_model

__all__ = [
    "CheckpointError",
    "CondViT",
    "ModelConfig",
    "available_architectures",
    "create_model",
    "load_model",
    "make_config",
]
