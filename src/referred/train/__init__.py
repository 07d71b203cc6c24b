"""Training CondViT (``referred train``): a separate layer that inference users never import.

::

    from referred.train import TrainConfig, train
    result = train(TrainConfig(data="synth/", out="runs/tiny-cat", model="tiny", epochs=10))
    model = referred.load_model(result.best)

Modules: ``config`` (the frozen run config, defaults per architecture), ``loss`` (pure
symmetric InfoNCE), ``schedule`` (lr and trainable phases), ``distributed`` (torchrun/DDP,
autograd-aware all-gather), ``index`` (packed map-style training split), ``pairs`` (pair
sampling, augmentation, data order), ``captions`` (frozen text-encoder bank), ``validate``
(R@K), ``checkpoint`` (atomic best/last, exact resume), ``logs`` (metrics.csv, TensorBoard,
progress), ``setup``/``run`` (config → device, model, optimiser), ``loop`` (:func:`train`).
See docs/training.md.
"""

from referred.train.config import TrainConfig
from referred.train.index import DataError
from referred.train.loop import TrainingError, TrainResult, train
from referred.train.loss import info_nce
from referred.train.validate import evaluate_split

__all__ = [
    "DataError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "evaluate_split",
    "info_nce",
    "train",
]
