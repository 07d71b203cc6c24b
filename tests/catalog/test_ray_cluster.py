"""The Ray engine on a real two-node Ray cluster on this host (#15, item 2).

One module-wide cluster from Ray's own multi-node harness (``ray.cluster_utils.Cluster``): a
head node and a worker node, 1 CPU each, separate raylets and object stores, bound to
127.0.0.1. The catalog build (``referred index build --engine ray --ray-address``) and the
benchmark's embedding (``referred benchmark --engine ray``) give the local engine's ids and
vectors; a worker node killed mid-job still leaves every product embedded exactly once. The
cluster is stopped at the end and no process of it may outlive the module.

Tolerance: vectors equal to the local engine's within ``atol=1e-6`` (unit vectors, the same
float32 code on both paths: with the tiny model here they agree exactly; scripts/bench_ray.py
measures 1.2e-7 with the demo model, whose batches Ray Data may cut differently).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import referred
import referred.cli as cli
from referred.catalog import build_catalog_index, ray_embed
from referred.catalog.cache import read_embeddings
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.eval import run_benchmark
from tests.catalog.test_catalog_build import write_catalog
from tests.search.test_searcher import CATS

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
from ray.cluster_utils import Cluster  # noqa: E402

ATOL = 1e-6
BOUND_S = 30  # the cluster's processes must be gone this long after it is stopped


@pytest.fixture(scope="module")
def cluster():
    """Head + one worker node, 1 CPU each, on 127.0.0.1 only.

    On Linux, Ray replaces a loopback address by the host's own before it connects (its
    "cluster" mode); its macOS/Windows mode keeps loopback, which a one-host cluster bound to
    127.0.0.1 needs. Ray reads the switch when imported, so it is set on the module as well.
    A dead node is declared after 5 missed health checks, 1 s apart (Ray's default is slower).
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    mp.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    checks = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "node_ip_address": "127.0.0.1",
            "_system_config": checks,
        },
    )
    session = Path(c.head_node.get_session_dir_path())
    try:
        add_worker(c)
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        mp.undo()
        left = wait_gone(session, BOUND_S)
        for pid in left:  # ours: stop them, then fail
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(session, ignore_errors=True)  # its logs and sockets
        assert not left, f"Ray processes still running {BOUND_S} s after shutdown: {left}"


def add_worker(c):
    node = c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    c.wait_for_nodes(timeout=60)
    return node


def worker_node(c):
    """The worker node, a fresh one if an earlier test killed it."""
    return next(iter(c.worker_nodes)) if c.worker_nodes else add_worker(c)


def cluster_pids(session: Path) -> list[int]:
    """Processes started for the cluster: those that name its session folder or write in it."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            text = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if str(session) in text or any(link.startswith(str(session)) for link in links):
            found.append(int(proc.name))
    return found


def wait_gone(session: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := cluster_pids(session)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(scope="module")
def model():
    return referred.create_model("tiny", categories=CATS, seed=0)


def embeddings(path):
    ids, vectors = read_embeddings(path)
    assert len(ids) == len(set(ids)), "an id twice"
    order = np.argsort(ids)
    return [ids[i] for i in order], vectors[order]


def assert_same(local, remote):
    ids, vectors = embeddings(local)
    rids, rvectors = embeddings(remote)
    assert rids == ids
    np.testing.assert_allclose(rvectors, vectors, rtol=0, atol=ATOL)


def test_cli_index_build_on_the_cluster_equals_local(cluster, model, tmp_path, capsys):
    write_catalog(tmp_path / "cat.parquet", n=24)
    model.save_pretrained(tmp_path / "model")
    argv = ["index", "build", "--model", str(tmp_path / "model")]
    argv += ["--catalog", str(tmp_path / "cat.parquet"), "--batch-size", "4", "--no-progress"]
    assert cli.main([*argv, "--out", str(tmp_path / "local")]) == 0
    ray_argv = ["--engine", "ray", "--ray-address", cluster.address, "--workers", "2"]
    assert cli.main([*argv, "--out", str(tmp_path / "ray"), *ray_argv]) == 0
    assert "embedded 24 images (24 new, 0 already done)" in capsys.readouterr().out
    assert_same(
        tmp_path / "local.work/embeddings.parquet", tmp_path / "ray.work/embeddings.parquet"
    )
    assert not ray.is_initialized()  # the job disconnected; the cluster stays up


def test_a_worker_node_killed_mid_job_loses_and_repeats_nothing(
    cluster, model, tmp_path, monkeypatch
):
    """The worker node is killed (raylet, object store, actor: SIGKILL) once the driver has
    written 2 batches and both nodes hold a model actor; Ray restarts the actor and resubmits
    what it held, and the build finishes with every product once, equal to local."""
    n, batch = 96, 2
    write_catalog(tmp_path / "cat.parquet", n=n)
    local = build_catalog_index(model, tmp_path / "local", source=tmp_path / "cat.parquet",
                                batch_size=batch, progress=False)  # fmt: skip
    victim, seen = worker_node(cluster), {}

    class KillingCache(ray_embed.OutputCache):
        def add(self, ids, vectors):
            super().add(ids, vectors)
            seen["rows"] = seen.get("rows", 0) + len(ids)
            if "killed_at" not in seen and seen["rows"] >= 2 * batch:
                seen["idle_cpus"] = ray.available_resources().get("CPU", 0.0)
                seen["killed_at"] = seen["rows"]
                cluster.remove_node(victim, allow_graceful=False)

    monkeypatch.setattr(ray_embed, "OutputCache", KillingCache)
    report = build_catalog_index(model, tmp_path / "ray", source=tmp_path / "cat.parquet",
                                 engine="ray", ray_address=cluster.address, workers=2,
                                 batch_size=batch, progress=False)  # fmt: skip
    assert seen["killed_at"] < n, "the job had finished before the kill"
    assert seen["idle_cpus"] == 0, "the worker node held no actor when it was killed"
    assert victim not in cluster.worker_nodes
    assert (report.embedded, report.already_done, report.failures) == (n, 0, [])
    assert_same(local.embeddings, report.embeddings)


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ds"
    cfg = SynthConfig(products=40, distractors=30, size=32, test_fraction=0.5, valid_fraction=0.05)
    write_synthetic_dataset(root, cfg)
    return root


BENCH = {"distractor_counts": (0, 10, 30), "shard_size": 16, "batch_size": 4, "baselines": True}


@pytest.fixture(scope="module")
def bench_local(bench_data, tmp_path_factory):
    """The tiny model with LRVS-F's categories, and its benchmark on the local engine."""
    model = referred.create_model("tiny", conditioning="category", seed=0)
    out = tmp_path_factory.mktemp("local")
    return model, out, run_benchmark(model, bench_data, out_dir=out, **BENCH)


def assert_same_benchmark(local_out, local, out, result):
    """Every part of the embedding cache alike (ids in order, record, vectors); same report."""
    for kind in ("queries-category", "queries-none", "targets", "distractors"):
        parts = sorted((local_out / "embeddings" / kind).glob("part-*.parquet"))
        assert parts
        for part in parts:
            twin = out / "embeddings" / kind / part.name
            a, b = pq.read_table(part), pq.read_table(twin)
            assert a.column("id").to_pylist() == b.column("id").to_pylist()  # same order
            assert a.schema.metadata == b.schema.metadata  # same record and stream run
            np.testing.assert_allclose(read_embeddings(twin)[1], read_embeddings(part)[1],
                                       rtol=0, atol=ATOL)  # fmt: skip
    assert result.report["full"] == local.report["full"]
    assert result.baselines[0]["full"] == local.baselines[0]["full"]


def recording_chunks(log: Path, slow_node: str = "", seconds: float = 0.0):
    """A stand-in for the benchmark's Ray task that notes where each chunk starts (a file
    ``<chunk digest>@<node id>``, this host's disk being every node's) and, on ``slow_node``,
    sleeps ``seconds`` first; then runs the real task."""
    real = ray_embed._encode_chunk

    def task(box, factory, args, threads, items):
        node = ray.get_runtime_context().get_node_id()
        what = repr((args, [(it.key, it.cond) for it in items])).encode()
        (log / f"{hashlib.sha1(what).hexdigest()[:16]}@{node}").touch()
        if node == slow_node:
            time.sleep(seconds)
        return real(box, factory, args, threads, items)

    return task


def chunk_nodes(log: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in log.iterdir():
        key, node = f.name.rsplit("@", 1)
        out.setdefault(key, set()).add(node)
    return out


def test_benchmark_embedding_on_the_cluster_equals_local(
    cluster, bench_data, bench_local, tmp_path, monkeypatch
):
    model, local_out, local = bench_local
    victim = worker_node(cluster)
    (tmp_path / "log").mkdir()
    monkeypatch.setattr(ray_embed, "_encode_chunk", recording_chunks(tmp_path / "log"))
    out = tmp_path / "ray"
    result = run_benchmark(model, bench_data, out_dir=out, engine="ray",
                           ray_address=cluster.address, workers=2, **BENCH)  # fmt: skip
    assert_same_benchmark(local_out, local, out, result)
    nodes = set().union(*chunk_nodes(tmp_path / "log").values())
    assert nodes == {cluster.head_node.node_id, victim.node_id}  # both nodes embedded


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_address_is_refused_at_once_naming_it(tmp_path, model, capsys):
    port = closed_port()
    write_catalog(tmp_path / "cat.parquet", n=3)
    model.save_pretrained(tmp_path / "model")
    argv = ["index", "build", "--model", str(tmp_path / "model"), "--catalog"]
    argv += [str(tmp_path / "cat.parquet"), "--out", str(tmp_path / "ix"), "--engine", "ray"]
    t0 = time.monotonic()
    assert cli.main([*argv, "--ray-address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in err
    assert cli.main([*argv, "--ray-address", "head-without-port"]) == 2
    assert "is not host:port" in capsys.readouterr().err
    assert time.monotonic() - t0 < 2 * ray_embed.CONNECT_TIMEOUT_S + 5
    assert not ray.is_initialized()


@pytest.mark.slow  # 15-25 s more; `make test-all` runs it
def test_benchmark_survives_a_worker_node_killed_mid_chunk(
    cluster, bench_data, bench_local, tmp_path, monkeypatch
):
    """The worker node is killed while it embeds a chunk (its tasks sleep 3 s first, so the
    kill lands inside one); Ray runs that chunk again on the head, and the benchmark's cache
    and report are the local ones."""
    model, local_out, local = bench_local
    victim, head = worker_node(cluster), cluster.head_node.node_id
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setattr(ray_embed, "_encode_chunk", recording_chunks(log, victim.node_id, 3.0))
    killed = {}

    def kill_on_first_chunk():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            started = [c for c, nodes in chunk_nodes(log).items() if victim.node_id in nodes]
            if started:
                killed["chunk"] = started[0]
                cluster.remove_node(victim, allow_graceful=False)
            time.sleep(0.05)

    thread = threading.Thread(target=kill_on_first_chunk, daemon=True)
    thread.start()
    out = tmp_path / "ray"
    result = run_benchmark(model, bench_data, out_dir=out, engine="ray",
                           ray_address=cluster.address, workers=2, **BENCH)  # fmt: skip
    thread.join(10)
    assert killed, "no chunk ran on the worker node"
    assert chunk_nodes(log)[killed["chunk"]] == {victim.node_id, head}  # lost, then redone
    assert_same_benchmark(local_out, local, out, result)


def test_benchmark_cli_engine_arguments(bench_data, bench_local, tmp_path, capsys):
    model = bench_local[0]
    model.save_pretrained(tmp_path / "model")
    argv = ["benchmark", "--data", str(bench_data), "--model", str(tmp_path / "model")]
    argv += ["--out", str(tmp_path / "b"), "--distractors", "0", "--no-progress"]
    assert cli.main([*argv, "--ray-address", "127.0.0.1:1"]) == 2
    assert "--ray-address needs --engine ray" in capsys.readouterr().err
    port = closed_port()
    assert cli.main([*argv, "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"]) == 2
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_a_head_on_loopback_only_is_explained(cluster, monkeypatch):
    """Ray's Linux default dials this host's address for 127.0.0.1: with the head on loopback
    only, nothing answers there, and the message says why."""
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", True)
    if ray.util.get_node_ip_address() == "127.0.0.1":
        pytest.skip("this host's only address is 127.0.0.1")
    with pytest.raises(ray_embed.RayUnreachableError, match=r"listens on 127\.0\.0\.1 only"):
        ray_embed.check_reachable(cluster.address)
