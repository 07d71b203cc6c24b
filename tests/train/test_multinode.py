"""torchrun across nodes: two launchers on this machine are two nodes (c10d rendezvous, gloo).

Each node has its own output folder, as two machines with their own disks (the harder case:
on shared storage every process reads the same ``last/``). One test, two launches (~1 min on
2 vCPUs, mostly four processes importing torch per launch):

1. nodes A and B (one process each, global batch 8 = 2 × 4) train; B stops in epoch 2, after
   rank 0 saved ``last/`` at the end of epoch 1, and is killed (launcher and worker); A's
   worker then fails on the lost peer. A's ``last/`` equals one process's weights after the
   same steps with the full batch.
2. both are launched again, B first: c10d orders nodes by host, then launcher pid, so B is rank
   0 now and sees no checkpoint; A sends its ``last/`` to B, both resume at the end of epoch 1
   and finish, ending with the weights of an uninterrupted single-process run.

Tolerance (rtol 1e-4, atol 1e-5, measured max |Δ| ~1e-6): two processes compute the same
loss and gradient as one, summed in another order. The gathered embeddings hold rank 0's
rows then rank 1's (every second product of the batch each), so the InfoNCE logits are a
permutation of the single process's, the cross-entropy sums run in another order, and the
gradient is the sum of two all-reduced halves (gather backward, then DDP) instead of one
sum; float32 rounding of those sums differs in the last bits, and AdamW carries it on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from referred.train import TrainConfig, train

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc"),
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available"),
]

NODE_SCRIPT = Path(__file__).with_name("torchrun_node.py")
STEPS_PER_EPOCH = 6  # 48 training products, global batch 8
RTOL, ATOL = 1e-4, 1e-5
WAIT_S = 180  # per launch; a launch takes ~25 s on 2 busy vCPUs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Nodes:
    """torchrun launchers, each in its own session; all of them and their workers are killed
    on exit, whatever happened."""

    def __init__(self, flags: list[str]) -> None:
        self.flags = flags
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, node: Path, port: int, log: str, hang_at: int | None = None):
        node.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "GLOO_SOCKET_IFNAME": "lo",  # 127.0.0.1 only
            "REFERRED_TEST_NODE_DIR": str(node),
        }
        env.pop("REFERRED_TEST_HANG_AT_STEP", None)
        if hang_at is not None:
            env["REFERRED_TEST_HANG_AT_STEP"] = str(hang_at)
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            "--local-addr=127.0.0.1",
            "--max-restarts=0",
            str(NODE_SCRIPT),
            *self.flags,
            "--out",
            str(node / "out"),
        ]
        with open(node / log, "wb") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((proc, node))
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """The node dies: its launcher's process group, then its workers."""
        node = next(n for p, n in self.started if p is proc)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pidfile in node.glob("worker-*.pid"):
            pid = int(pidfile.read_text())
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # gone
            if NODE_SCRIPT.name.encode() in cmdline:
                os.kill(pid, signal.SIGKILL)

    def wait(self, *procs: subprocess.Popen) -> list[int]:
        deadline = time.monotonic() + WAIT_S
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]

    def logs(self) -> str:
        return "\n".join(
            f"--- {log}\n{log.read_text(errors='replace')[-3000:]}"
            for _, node in self.started
            for log in sorted(node.glob("*.log"))
        )

    def __enter__(self) -> _Nodes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc, _ in self.started:
            self.kill(proc)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _step(folder: Path) -> int:
    return torch.load(folder / "training_state.pt", weights_only=True)["step"]


def _assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=RTOL, atol=ATOL, msg=key)
    return max(float((got[k] - want[k]).abs().max()) for k in want)


def _wait_for(path: Path, nodes: _Nodes, *procs: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        exited = [p.returncode for p in procs if p.poll() is not None]
        assert not exited, f"a node exited ({exited}) before {path}:\n{nodes.logs()}"
        assert time.monotonic() < deadline, f"no {path} after {WAIT_S} s:\n{nodes.logs()}"
        time.sleep(0.1)


def test_two_nodes_train_like_one_process_and_resume_after_losing_one(
    synth_data, micro_arch, tmp_path
):
    cfg = TrainConfig(
        data=str(synth_data),
        out=str(tmp_path / "one"),
        model=str(micro_arch),
        epochs=2,
        batch_size=8,
        lr=2e-3,
        workers=0,
        device="cpu",
        threads=1,
    )
    # one process, the full batch: weights after epoch 1, then at the end (resume is exact)
    epoch1 = _weights(train(cfg, progress=False, until_step=STEPS_PER_EPOCH).last)
    final = _weights(train(cfg, progress=False).last)
    assert any(not torch.equal(epoch1[k], final[k]) for k in final)

    flags = [
        *("--data", cfg.data, "--model", cfg.model, "--epochs", "2", "--batch-size", "8"),
        *("--lr", "2e-3", "--workers", "0", "--device", "cpu", "--threads", "1"),
        "--no-progress",
    ]
    a, b = tmp_path / "node-a", tmp_path / "node-b"
    with _Nodes(flags) as nodes:
        port = _free_port()
        pa = nodes.start(a, port, "launch1.log")  # started first: rank 0
        pb = nodes.start(b, port, "launch1.log", hang_at=STEPS_PER_EPOCH + 2)
        _wait_for(b / "hung", nodes, pa, pb)
        nodes.kill(pb)
        (rc,) = nodes.wait(pa)
        assert rc != 0, f"node A finished without its peer:\n{nodes.logs()}"
        assert not (b / "out" / "last").exists()  # only rank 0 writes
        assert _step(a / "out" / "last") == STEPS_PER_EPOCH
        diff1 = _assert_close(_weights(a / "out" / "last"), epoch1)

        port = _free_port()
        pb = nodes.start(b, port, "launch2.log")  # started first: rank 0 now
        pa = nodes.start(a, port, "launch2.log")
        assert nodes.wait(pb, pa) == [0, 0], nodes.logs()
    log_b = (b / "launch2.log").read_text()
    assert f"at epoch 2, step {STEPS_PER_EPOCH}" in log_b, log_b  # rank 0 (B) resumed
    assert json.loads((b / "out" / "train_config.json").read_text())["world_size"] == 2
    assert _step(b / "out" / "last") == 2 * STEPS_PER_EPOCH
    assert _step(a / "out" / "last") == STEPS_PER_EPOCH  # A was rank 1: nothing written
    diff2 = _assert_close(_weights(b / "out" / "last"), final)
    print(f"max |two nodes - one process|: {diff1:.2e} after epoch 1, {diff2:.2e} at the end")
