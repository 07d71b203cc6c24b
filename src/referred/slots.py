"""How many model forwards may run at once in one process: as many as the cores hold.

A forward runs on ``torch.get_num_threads()`` threads. Two forwards of 2 threads each on 2 cores
thrash; two forwards of 1 thread each use both cores, where one lock would leave one idle (a
service sets 1 thread per forward and runs several requests at once). :class:`ForwardSlots`
admits ``max(1, cores // threads per forward)`` forwards at once, reading both when a forward
asks, so a later ``torch.set_num_threads`` is followed; the others wait their turn.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import torch


def usable_cpus() -> int:
    """Cores this process may run on (its affinity where the OS tells it, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def slots_for(cpus: int, threads_per_forward: int) -> int:
    """Forwards that fit at once: ``cpus // threads_per_forward``, at least 1."""
    return max(1, int(cpus) // max(1, int(threads_per_forward)))


class ForwardSlots:
    """A context manager: ``with slots:`` waits for a free slot, then runs the forward.

    ``cpus`` (default: :func:`usable_cpus`) and ``threads_per_forward`` (default:
    ``torch.get_num_threads``, read at each entry) decide the slots (:func:`slots_for`).
    """

    def __init__(
        self, cpus: int | None = None, threads_per_forward: Callable[[], int] | None = None
    ) -> None:
        self.cpus = usable_cpus() if cpus is None else max(1, int(cpus))
        self.threads_per_forward = threads_per_forward or torch.get_num_threads
        self.running = 0
        self._free = threading.Condition()

    @property
    def limit(self) -> int:
        """Forwards admitted at once now."""
        return slots_for(self.cpus, self.threads_per_forward())

    def __enter__(self) -> ForwardSlots:
        with self._free:
            self._free.wait_for(lambda: self.running < self.limit)
            self.running += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._free:
            self.running -= 1
            self._free.notify_all()  # the limit may have risen meanwhile
