"""Embed on a Ray cluster: the same output and resume rules as the local jobs.

Two jobs run here, each through :func:`ray_session` (connect to ``address``, refused at once
with a message naming it when nothing answers there, or start a local Ray):

* **The catalog** (:func:`embed_with_ray`, ``referred index build --engine ray``): the driver
  lists the products still to embed, Ray Data decodes and embeds them in a pool of model
  actors (``map_batches`` with :class:`ray.data.ActorPoolStrategy`), and the driver writes the
  results as they stream back into the one resumable cache
  (:class:`referred.catalog.cache.OutputCache`, with the record
  :func:`referred.embed.embed_items` writes), keeping each id once, so a killed job resumes,
  locally or on Ray.
* **The benchmark** (:class:`RayEncoders`, ``referred benchmark --engine ray``): each part of
  the benchmark's cache is split into chunks of ``batch_size`` items, and each chunk is a Ray
  task that runs the benchmark's own local encode function on a copy of the model; the chunks
  come back in order, so the vectors are those of the local path.

A worker node lost mid-job costs nothing but time: Ray Data recreates the actors and resubmits
the batches they held (its defaults for actor pools), Ray re-runs lost tasks elsewhere
(``max_retries``), and the driver takes each id (each chunk) once. The model travels
once through Ray's object store (no shared filesystem needed for it); image *paths* must be
readable from the workers (a shared filesystem), image *bytes* (a parquet catalog with an
image column) travel with the rows. ``ray`` is optional: ``pip install 'referred[ray]'``; it
is imported only here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from referred.catalog.cache import EmbedItem, EmbedReport, OutputCache, write_failures
from referred.embed import Item, decode_batch, embed_record, failures_path, progress_bar

#: Seconds to wait for the head's port before calling a cluster unreachable.
CONNECT_TIMEOUT_S = 5.0
#: Hosts Ray (2.x, Linux) replaces by this machine's address before it connects.
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class RayUnreachableError(ConnectionError, ValueError):
    """Nothing answers at the Ray address given: the message names it and says what to do
    (a ValueError too: a bad argument, which the command line reports in one line)."""


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError("--engine ray needs Ray Data: pip install 'referred[ray]'") from exc
    return ray


def dial_address(address: str) -> tuple[str, int] | None:
    """The host and port a Ray driver connects to for ``address`` (``host:port`` of the head,
    ``ray://host:port`` for Ray Client); None for ``auto``, which Ray looks up itself.

    Ray replaces a loopback host (``127.0.0.1``, ``localhost``) by this machine's address, so
    that is what is dialled.
    """
    text = address.strip()
    if text in ("auto", "local"):
        return None
    client = text.startswith("ray://")
    host, sep, port = text.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"Ray address {address!r} is not host:port (the head's GCS port, e.g. "
            "10.0.0.5:6379), ray://host:port (Ray Client) or auto"
        )
    if not client and host in _LOOPBACK:
        import ray.util

        host = ray.util.get_node_ip_address()
    return host, int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`RayUnreachableError` when nothing accepts a connection at ``address``
    within ``timeout`` seconds (``ray.init`` would wait for it for many minutes)."""
    target = dial_address(address)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:  # refused, unroutable, timed out, unknown host
        reason = exc.strerror or str(exc) or type(exc).__name__
    via, hint = "", "start its head (ray start --head --port=PORT) or give the address it printed"
    if host not in address:  # a loopback address, which Ray does not dial as given
        via = f" (Ray connects to it as {host}:{port})"
        if _answers("127.0.0.1", port):
            hint = (
                "its head listens on 127.0.0.1 only, but Ray on Linux connects to loopback "
                "addresses through this host's own: start the head on that address"
            )
    raise RayUnreachableError(
        f"cannot reach the Ray cluster at {address}{via}: {reason} (waited at most "
        f"{timeout:g} s); {hint}"
    )


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, connected to ``address`` (checked first, see :func:`check_reachable`), or a local
    Ray with 2 CPUs when None; shut down on exit if this call started it."""
    ray = _import_ray()
    if ray.is_initialized():  # the caller's own session: use it, leave it up
        yield ray
        return
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


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

    ``address``: a Ray cluster (``head:6379``, ``ray://head:10001`` or ``auto``); None starts
    a local Ray with 2 CPUs. ``workers``: model actors (default: the cluster's CPUs, at most 2
    locally). Every id of ``items`` ends up once in ``out`` or among the failures; a batch Ray
    hands back twice (a retry after a lost node) is taken once.
    """
    ray = _import_ray()
    import torch

    from referred.query import NONE

    if address:
        check_reachable(address)  # before listing what is left, which can take a while
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = EmbedReport(output=out)
    cache = OutputCache(out, embed_record(model, NONE), model.config.output_dim)
    rows = [
        {"id": item_id, "image": str(src) if isinstance(src, Path) else src}
        for item_id, src in cache.pending(items, report)
    ]
    if rows:  # nothing left to do: no Ray at all
        with ray_session(address):
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
                # No retry settings: a node lost mid-job is survived by Ray Data's defaults
                # for actor pools (max_restarts=-1, max_task_retries=-1: its actors are
                # recreated and the batches they held resubmitted); passing them is deprecated
                # (Ray 2.60). tests/catalog/test_ray_cluster.py kills a worker node mid-job.
            )
            try:
                seen = _collect(
                    ds.iter_batches(batch_size=None, batch_format="numpy"), cache, report, bar
                )
            finally:
                cache.flush()  # what came back is kept, even when the job fails
                if bar is not None:
                    bar.close()
            missing = [r["id"] for r in rows if str(r["id"]) not in seen]
            if missing:
                raise RuntimeError(
                    f"the Ray job returned {len(rows) - len(missing)} of {len(rows)} products "
                    f"(first missing: {missing[:3]}); those it returned are kept: run it again "
                    "to embed the rest"
                )
    cache.finish()
    write_failures(failures_path(out), report.failures)
    return report


def _collect(
    batches: Iterable[dict], cache: OutputCache, report: EmbedReport, bar: Any
) -> set[str]:
    """Write the rows that stream back, each id once (a retried batch may come back twice);
    list the failed ones. Returns the ids seen."""
    seen: set[str] = set()
    for batch in batches:
        ids, keep, failed = [], [], 0
        for row, (item_id, error) in enumerate(zip(batch["id"], batch["error"])):
            item_id = str(item_id)
            if item_id in seen:
                continue
            seen.add(item_id)
            if error == "":
                ids.append(item_id)
                keep.append(row)
            else:
                report.failures.append((item_id, str(error)))
                failed += 1
        if ids:
            cache.add(ids, np.asarray(batch["vector"][keep], dtype=np.float32))
            report.embedded += len(ids)
        if bar is not None:
            bar.update(len(ids) + failed)
    return seen


# The benchmark: chunks of the cache's parts as Ray tasks.

#: A local encode function's factory: (model, *args) -> items -> (vectors, {index: reason}),
#: as ``referred.eval.inputs._encoder``; a module-level function, so that Ray can send it.
EncodeFactory = Callable[..., Callable[[Sequence[EmbedItem]], tuple[np.ndarray, dict[int, str]]]]


def _model_payload(model: Any) -> tuple:
    """What travels to the workers: a QueryEncoder as its CondViT and settings (its fast
    twin does not pickle), anything else as itself."""
    from referred.query import QueryEncoder

    if isinstance(model, QueryEncoder):
        return ("query_encoder", model.model, model.batch_size, model.net is not model.model)
    return ("model", model)


def _rebuild(payload: tuple) -> Any:
    if payload[0] == "query_encoder":
        from referred.query import QueryEncoder

        _, model, batch_size, fast = payload
        return QueryEncoder(model.eval(), fast=fast, batch_size=batch_size)
    return payload[1]


#: In each Ray worker process: the encode function of the last (model, factory, arguments).
_WORKER_ENCODE: dict[tuple, Callable] = {}


def _encode_chunk(
    box: list, factory: EncodeFactory, args: tuple, threads: int, items: Sequence[EmbedItem]
) -> tuple[np.ndarray, dict[int, str]]:
    """The Ray task: ``factory(model, *args)(items)``, the model built once per worker
    process (``box`` holds the model's object reference, so Ray does not fetch it per task)."""
    import ray
    import torch

    key = (box[0].hex(), factory, args)
    encode = _WORKER_ENCODE.get(key)
    if encode is None:
        torch.set_num_threads(threads)
        _WORKER_ENCODE.clear()
        encode = _WORKER_ENCODE[key] = factory(_rebuild(ray.get(box[0])), *args)
    return encode(items)


class RayEncoders:
    """Encode functions that run on Ray, for :meth:`referred.catalog.cache.EmbeddingCache.ensure`.

    ``encoder(factory, *args)`` is the Ray twin of ``factory(model, *args)``: called with a
    part's items, it sends chunks of ``chunk`` items to Ray tasks (at most ``workers`` at a
    time; default the cluster's CPUs), each running ``factory(model, *args)`` on a worker, and
    returns their vectors and failures in the items' order, as the local call would. With
    ``chunk`` a multiple of the local batch size the model sees the same batches. Ray is
    started (or connected to) on first use; :meth:`close` shuts down what was started.
    """

    def __init__(
        self, model: Any, *, address: str | None = None, workers: int | None = None, chunk: int = 32
    ) -> None:
        if chunk < 1 or (workers is not None and workers < 1):
            raise ValueError(f"chunk and workers must be >= 1, got {chunk}, {workers}")
        _import_ray()
        self.model, self.address, self.workers, self.chunk = model, address, workers, chunk
        self._stack: ExitStack | None = None
        self._box: list | None = None

    def _start(self) -> Any:
        """Ray, connected and holding the model, on first use."""
        ray = _import_ray()
        if self._stack is None:
            stack = ExitStack()
            stack.enter_context(ray_session(self.address))
            self._stack = stack
            self._box = [ray.put(_model_payload(self.model))]
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self.workers = max(1, min(self.workers or cpus, cpus))
            # A task lost with its node runs again on another one (Ray's task retries); an
            # error raised by the model is not retried.
            self._task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(
                _encode_chunk
            )
        return ray

    def encoder(self, factory: EncodeFactory, *args: Any) -> Callable:
        import torch

        threads = torch.get_num_threads()

        def encode(items: Sequence[EmbedItem]) -> tuple[np.ndarray, dict[int, str]]:
            ray = self._start()
            items = list(items)
            starts = range(0, len(items), self.chunk)
            results: dict[int, tuple[np.ndarray, dict[int, str]]] = {}
            running: dict[Any, int] = {}
            todo = list(starts)[::-1]
            while todo or running:
                while todo and len(running) < self.workers:
                    s = todo.pop()
                    chunk = items[s : s + self.chunk]
                    running[self._task.remote(self._box, factory, args, threads, chunk)] = s
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    results[running.pop(ref)] = ray.get(ref)
            vectors = [results[s][0] for s in starts if len(results[s][0])]
            failed = {s + i: why for s in starts for i, why in results[s][1].items()}
            return (np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)), failed

        return encode

    def close(self) -> None:
        """Shut down the Ray this object started (a no-op when it never ran)."""
        if self._stack is not None:
            stack, self._stack, self._box = self._stack, None, None
            stack.close()
