"""Embed a catalog as a Ray Data job: the same output and resume rules as ``embed_items``.

The driver lists the products still to embed, Ray Data decodes and embeds them in a pool of
model actors (``map_batches`` with :class:`ray.data.ActorPoolStrategy`), and the driver writes
the results as they stream back into the same resumable parquet parts as
:func:`referred.embed.embed_items`, so a killed job resumes, locally or on Ray.

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

from referred.embed import EmbedReport, Item, PartWriter, done_ids, progress_bar, write_failures


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
        import torch

        from referred.imageio import ImageDecodeError
        from referred.preprocess import preprocess_image
        from referred.query import NONE

        cfg = self.model.config
        n = len(batch["id"])
        vectors = np.zeros((n, cfg.output_dim), dtype=np.float32)
        errors = np.full(n, "", dtype=object)
        arrays, ok = [], []
        for i, src in enumerate(batch["image"]):
            try:
                arrays.append(preprocess_image(src, cfg.preprocess))
                ok.append(i)
            except (ImageDecodeError, FileNotFoundError, OSError) as exc:
                errors[i] = str(exc) or type(exc).__name__
        if arrays:
            pixels = torch.from_numpy(np.stack(arrays))  # (b, 3, R, R)
            vectors[ok] = self.encoder.forward(pixels, [NONE] * len(ok)).numpy()
        return {"id": batch["id"], "vector": vectors, "error": errors}


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

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = EmbedReport(output=out)
    rows = _pending(items, done_ids(out), report)
    meta = {"model": model.config.name, "condition": ""}
    writer = PartWriter(out, model.config.output_dim, meta, rows_per_part=4096)
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
                    writer.add(ids, np.asarray(batch["vector"][good], dtype=np.float32))
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
    writer.finish()
    write_failures(out, report.failures)
    return report


def _pending(items: Iterable[Item], done: set[str], report: EmbedReport) -> list[dict[str, Any]]:
    """Rows still to embed (ids in ``done`` are counted, repeats reported), for Ray Data."""
    rows, seen = [], set()
    for item_id, src in items:
        if item_id in done:
            report.already_done += 1
        elif item_id in seen:
            report.failures.append((item_id, "duplicate id in the input; kept the first"))
        else:
            seen.add(item_id)
            rows.append({"id": item_id, "image": str(src) if isinstance(src, Path) else src})
    return rows
