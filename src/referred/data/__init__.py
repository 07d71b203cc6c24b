"""LRVS-F data: one record model, streaming readers for every layout, prep, checks, synthesis.

Read any dataset folder::

    from referred.data import open_dataset, ReadStats
    ds = open_dataset("LRVSF/")                 # layout detected: training, hf, zenodo, catalog
    stats = ReadStats()
    for product in ds.products("test", stats=stats):
        product.simple[0].open(), product.complex[0].open(), product.category
    print(stats.summary())                      # what was skipped, and why

Records: :class:`Product` (``simple`` and ``complex`` :class:`ImageRecord` tuples, category,
captions, split) and :class:`Distractor`. Readers skip bad items and count them in
:class:`ReadStats`; a file unusable as a whole raises :class:`DataFileError` naming it.

Tools: :func:`check_dataset` (``referred data check``), :mod:`referred.data.prepare`
(``referred data prepare``), :mod:`referred.data.synth` (``referred data synth``), and
:func:`load_bootstrap_ids` (a restricted unpickler for ``bootstrap_IDs.pkl``).
"""

from referred.data.base import Dataset
from referred.data.bootstrap import UnsafePickleError, load_bootstrap_ids, save_bootstrap_ids
from referred.data.check import CheckReport, check_dataset
from referred.data.detect import detect_layout, open_dataset
from referred.data.records import (
    DataFileError,
    Distractor,
    ImageRecord,
    ImageType,
    Problem,
    Product,
    ReadStats,
    Severity,
)

__all__ = [
    "CheckReport",
    "DataFileError",
    "Dataset",
    "Distractor",
    "ImageRecord",
    "ImageType",
    "Problem",
    "Product",
    "ReadStats",
    "Severity",
    "UnsafePickleError",
    "check_dataset",
    "detect_layout",
    "load_bootstrap_ids",
    "open_dataset",
    "save_bootstrap_ids",
]
