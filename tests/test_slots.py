"""Forward slots: as many model forwards at once as the cores hold, never more."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from referred.slots import ForwardSlots, slots_for, usable_cpus


@pytest.mark.parametrize(
    "cpus, threads, want", [(2, 1, 2), (2, 2, 1), (16, 4, 4), (2, 8, 1), (1, 1, 1), (3, 2, 1)]
)
def test_slots_are_the_cores_over_the_threads_of_a_forward(cpus, threads, want):
    assert slots_for(cpus, threads) == want


def peak_running(slots: ForwardSlots, workers: int) -> int:
    """Run ``workers`` threads through ``slots`` at once; the most that were inside together."""
    inside, peak, lock = [0], [0], threading.Lock()
    start = threading.Barrier(workers)

    def work() -> None:
        start.wait()
        with slots:
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads) and slots.running == 0
    return peak[0]


def test_forwards_run_together_up_to_the_limit_and_follow_the_thread_count():
    threads_per_forward = [1]
    slots = ForwardSlots(cpus=2, threads_per_forward=lambda: threads_per_forward[0])
    assert slots.limit == 2 and peak_running(slots, 6) == 2
    threads_per_forward[0] = 2  # e.g. torch.set_num_threads(2) later: one at a time
    assert slots.limit == 1 and peak_running(slots, 4) == 1


def test_a_forward_that_raises_frees_its_slot():
    slots = ForwardSlots(cpus=1, threads_per_forward=lambda: 1)
    with pytest.raises(RuntimeError), slots:
        raise RuntimeError("forward failed")
    assert slots.running == 0 and peak_running(slots, 2) == 1


def test_defaults_read_this_machine():
    slots = ForwardSlots()
    assert slots.cpus == usable_cpus() >= 1 and slots.limit >= 1


def test_the_query_encoder_counts_the_threads_its_fast_twin_runs_on():
    from referred.model.fast import optimize_for_inference
    from referred.query import QueryEncoder
    from tests.model.test_hybrid import small_hybrid

    model = small_hybrid().eval()
    cores = usable_cpus()
    encoder = QueryEncoder(optimize_for_inference(model, threads=cores + 1))
    assert encoder._slots.limit == 1  # more threads a forward than cores: one at a time
    assert QueryEncoder(model)._slots.limit == slots_for(cores, torch.get_num_threads())
