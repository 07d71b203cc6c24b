"""Embed a catalog as a Ray Data job: the same output and resume rules as ``embed_items``.

The driver lists the products still to embed, Ray Data decodes and embeds them in a pool of
model actors (``map_batches`` with :class:`ray.data.ActorPoolStrategy`), and the driver writes
the results as they stream back into the one resumable cache
(:class:`referred.catalog.cache.OutputCache`, with the record :func:`referred.embed.embed_items`
writes), so a killed job resumes, locally or on Ray.

The weights travel once through Ray's object store (no shared filesystem needed for them);
image *paths* must be readable from the workers (a shared filesystem), image *bytes* (a parquet
catalog with an image column) travel with the rows. ``ray`` is optional: ``pip install
'referred[ray]'``; it is imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from referred.catalog.cache import EmbedReport, OutputCache, write_failures
from referred.embed import Item, decode_batch, embed_record, failures_path, progress_bar


class _Embedder:
    """Ray actor: rebuilds the model from the object store once, then embeds batches."""

    def __init__(self, weights: Any, threads: int = 1) -> None:
        import ray
        import torch

        from referred.model import CondViT, ModelConfig
        from referred.query import QueryEncoder

        torch.set_num_threads(threads)
        config, state = ray.get(weights) if isinstance(weights, ray.ObjectRef) else weights
        self.model = CondViT(ModelConfig.from_dict(config)).eval()
        self.model.load_state_dict(state)
        self.encoder = QueryEncoder(self.model)  # the one query path, as embed_items

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows in, one row out per row: its vector, or zeros and the reason it failed."""
        import torch

        from referred.query import NONE

        cfg = self.model.config
        ids, arrays, failures = decode_batch(zip(batch["id"], batch["image"]), cfg.preprocess)
        vectors = np.zeros((len(ids) + len(failures), cfg.output_dim), dtype=np.float32)
        if arrays:
            pixels = torch.from_numpy(np.stack(arrays))  # (b, 3, R, R)
            vectors[: len(ids)] = self.encoder.forward(pixels, [NONE] * len(ids)).numpy()
        errors = [""] * len(ids) + [reason for _, reason in failures]
        return {
            "id": np.array(ids + [i for i, _ in failures], dtype=object),
            "vector": vectors,
            "error": np.array(errors, dtype=object),
        }


def embed_with_ray(
    model: Any,
    items: Iterable[Item],
    out: str | os.PathLike,
    *,
    address: str | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    total: int | None = None,
) -> EmbedReport:
    """Embed ``(id, image)`` pairs unconditioned into the parquet ``out`` with Ray Data.

    ``address``: a Ray cluster (``ray://head:10001`` or ``auto``); None starts a local Ray
    with 2 CPUs. ``workers``: model actors (default: the cluster's CPUs, at most 2 locally).
    """
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError("--engine ray needs Ray Data: pip install 'referred[ray]'") from exc
    import torch

    from referred.query import NONE

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = EmbedReport(output=out)
    cache = OutputCache(out, embed_record(model, NONE), model.config.output_dim)
    rows = [
        {"id": item_id, "image": str(src) if isinstance(src, Path) else src}
        for item_id, src in cache.pending(items, report)
    ]
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        if rows:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            weights = ray.put((model.config.to_dict(), state))
            cpus = int(ray.cluster_resources().get("CPU", 1))
            size = max(1, min(workers or cpus, cpus, len(rows)))
            todo = len(rows) if total is None else total - report.already_done
            bar = progress_bar(progress, todo)
            ds = ray.data.from_items(rows).map_batches(
                _Embedder,
                fn_constructor_kwargs={"weights": weights, "threads": torch.get_num_threads()},
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=size),
                num_cpus=1,
            )
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                good = batch["error"] == ""
                ids = [str(i) for i in batch["id"][good]]
                if ids:
                    cache.add(ids, np.asarray(batch["vector"][good], dtype=np.float32))
                    report.embedded += len(ids)
                bad = zip(batch["id"][~good], batch["error"][~good])
                report.failures.extend((str(i), str(e)) for i, e in bad)
                if bar is not None:
                    bar.update(len(good))
            if bar is not None:
                bar.close()
    finally:
        if started:
            ray.shutdown()
    cache.finish()
    write_failures(failures_path(out), report.failures)
    return report
