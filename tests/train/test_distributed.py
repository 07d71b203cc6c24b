"""The autograd-aware all-gather, checked in two real gloo processes against one process."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from referred.train.distributed import all_gather_with_grad, env_info
from referred.train.loss import info_nce

B, D_IN, D_OUT = 3, 5, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(D_IN, D_OUT, generator=g)
    return w, torch.randn(2 * B, D_IN, generator=g), torch.randn(2 * B, D_IN, generator=g)


def _grad(w, xq, xt, rank=0, world=1):
    """Gradient of the contrastive loss w.r.t. a shared projection ``w``."""
    w = w.clone().requires_grad_(True)
    rows = slice(rank * B, rank * B + B) if world > 1 else slice(None)
    q = F.normalize(xq[rows] @ w, dim=-1)
    t = F.normalize(xt[rows] @ w, dim=-1)
    loss = info_nce(
        q, t, torch.tensor(1.5), all_gather_with_grad(q), all_gather_with_grad(t), rank * B
    )
    loss.backward()
    return w.grad


def _worker(rank: int, port: int, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        w, xq, xt = _data()
        g = _grad(w, xq, xt, rank, 2)
        dist.all_reduce(g)  # what DDP does, then divides by the world size
        out[rank] = g / 2
        gathered = all_gather_with_grad(torch.full((2, 1), float(rank)))
        out[f"gathered{rank}"] = gathered.flatten().tolist()
    finally:
        dist.destroy_process_group()


def test_single_process_gather_is_the_identity():
    x = torch.randn(4, 2)
    assert all_gather_with_grad(x) is x
    assert env_info().world_size == int(os.environ.get("WORLD_SIZE", 1))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_processes_give_the_full_batch_gradient():
    w, xq, xt = _data()
    expected = _grad(w, xq, xt)  # one process, the whole batch of 2B pairs
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
        results = dict(out)
    assert results["gathered0"] == results["gathered1"] == [0.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(results[0], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[1], expected, rtol=1e-5, atol=1e-6)
