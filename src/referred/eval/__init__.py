"""LRVS-F benchmark: metrics, exact streamed ranking, bootstrap protocols and reports.

Layers, lowest first: ``metrics`` (pure numpy) and ``sources`` (distractor block readers);
``ranking`` (one streamed pass for a whole distractor sweep); ``bootstrap`` (subsets as
weights); ``benchmark.evaluate`` (embeddings -> report dict); ``report`` / ``plot`` (files).
``embeddings`` reads precomputed parquet embeddings; ``encode`` is the model seam;
``runner.run_benchmark`` goes from a model and a dataset to the report files. Names are
imported on first use; matplotlib and torch only by the functions that need them.
"""

from referred._lazy import lazy_exports

#: Public name -> the submodule that defines it. Imported on first use, so that
#: ``import referred.eval.metrics`` needs numpy only (no pyarrow, torch or matplotlib).
_LAZY = {
    "EvalConfig": "benchmark",
    "evaluate": "benchmark",
    "Subsample": "bootstrap",
    "load_lrvsf_folds": "bootstrap",
    "lrvsf_subsamples": "bootstrap",
    "paper_subsamples": "bootstrap",
    "MissingEmbeddingsError": "embeddings",
    "ParquetEmbeddings": "embeddings",
    "read_embeddings": "embeddings",
    "Benchmarkable": "encode",
    "embed_in_batches": "encode",
    "SweepResult": "ranking",
    "WeightSpec": "ranking",
    "sweep_ranks": "ranking",
    "load_report": "report",
    "markdown_table": "report",
    "model_card": "report",
    "model_card_yaml": "report",
    "write_report": "report",
    "BenchmarkResult": "runner",
    "NotEnoughDistractorsError": "runner",
    "run_benchmark": "runner",
    "Multiplicity": "sources",
    "array_blocks": "sources",
    "npy_blocks": "sources",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(
    __name__, {name: f"referred.eval.{module}" for name, module in _LAZY.items()}
)
