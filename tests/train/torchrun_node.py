"""``referred train`` as one worker of a torchrun node, for tests/train/test_multinode.py.

The worker dies with its launcher (``PR_SET_PDEATHSIG``), as it would with its machine, and
records its pid in ``$REFERRED_TEST_NODE_DIR`` so the test can kill it whatever happens. With
``$REFERRED_TEST_HANG_AT_STEP=N`` it stops before its step ``N + 1`` and writes
``$REFERRED_TEST_NODE_DIR/hung``: the test then kills the node at a known point of the run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

from referred.cli.train import main
from referred.train import loop

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _hang_at(step: int, marker: Path) -> None:
    original = loop._Loop._step

    def step_or_hang(self: loop._Loop, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.r.step == step:
            marker.write_text(str(step))
            time.sleep(3600)  # the test kills this node meanwhile
        return original(self, *args, **kwargs)

    loop._Loop._step = step_or_hang  # type: ignore[method-assign]


if __name__ == "__main__":
    _die_with_parent()
    node = Path(os.environ["REFERRED_TEST_NODE_DIR"])
    (node / f"worker-{os.getpid()}.pid").write_text(str(os.getpid()))
    if "REFERRED_TEST_HANG_AT_STEP" in os.environ:
        _hang_at(int(os.environ["REFERRED_TEST_HANG_AT_STEP"]), node / "hung")
    sys.exit(main(sys.argv[1:]))
