"""LRVS-F benchmark: metrics, exact streamed ranking, bootstrap protocols and reports.

Layers, lowest first: ``metrics`` (pure numpy) and ``sources`` (distractor block readers);
``ranking`` (one streamed pass for a whole distractor sweep); ``bootstrap`` (subsets as
weights); ``benchmark.evaluate`` (embeddings -> report dict); ``report`` / ``plot`` (files).
``embeddings`` reads precomputed parquet embeddings; ``encode`` is the model seam;
``runner.run_benchmark`` goes from a model and a dataset to the report files. matplotlib
and torch are imported only by the functions that need them.
"""

from referred.eval.benchmark import EvalConfig, evaluate
from referred.eval.bootstrap import Subsample, lrvsf_subsamples, paper_subsamples
from referred.eval.embeddings import MissingEmbeddingsError, ParquetEmbeddings, read_embeddings
from referred.eval.encode import Benchmarkable, embed_in_batches
from referred.eval.ranking import SweepResult, WeightSpec, sweep_ranks
from referred.eval.report import load_report, markdown_table, model_card_yaml, write_report
from referred.eval.runner import BenchmarkResult, run_benchmark
from referred.eval.sources import Multiplicity, array_blocks, npy_blocks

__all__ = [
    "BenchmarkResult",
    "Benchmarkable",
    "EvalConfig",
    "MissingEmbeddingsError",
    "Multiplicity",
    "ParquetEmbeddings",
    "Subsample",
    "SweepResult",
    "WeightSpec",
    "array_blocks",
    "embed_in_batches",
    "evaluate",
    "load_report",
    "lrvsf_subsamples",
    "markdown_table",
    "model_card_yaml",
    "npy_blocks",
    "paper_subsamples",
    "read_embeddings",
    "run_benchmark",
    "sweep_ranks",
    "write_report",
]
