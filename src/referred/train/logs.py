"""Where a run reports: ``metrics.csv`` (one row per epoch), TensorBoard, a progress bar.

``metrics.csv`` is rewritten from the checkpoint's history when a run resumes, so an epoch
that ran after the last checkpoint and was lost does not appear twice. TensorBoard is optional
(``pip install 'referred[train]'``): without it a note is logged and the run goes on; a
resumed run purges the events after its checkpoint's step.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

COLUMNS = (
    "epoch",
    "step",
    "loss",
    "lr",
    "val_R@1",
    "val_R@5",
    "val_R@10",
    "val_Cat@1",
    "samples_per_s",
    "logit_scale",
    "epoch_seconds",
    "wall_seconds",
    "bad_images",
    "replaced_samples",
)
METRICS_FILE = "metrics.csv"


class RunLog:
    """Per-epoch rows to ``metrics.csv`` and TensorBoard; per-step loss to TensorBoard."""

    def __init__(self, out: Path, history: list[dict[str, Any]], step: int, enabled: bool):
        self.path = out / METRICS_FILE
        self.enabled = enabled
        self.tb: Any = None
        if not enabled:
            return
        with open(self.path, "w", newline="") as f:  # the checkpoint's history is the truth
            writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: no TensorBoard logs (metrics.csv only)")
            return
        self.tb = SummaryWriter(str(out / "tb"), purge_step=step if step else None)

    def step(self, step: int, loss: float, lr: float) -> None:
        if self.tb is not None:
            self.tb.add_scalar("train/loss_step", loss, step)
            self.tb.add_scalar("train/lr", lr, step)

    def epoch(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, COLUMNS, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"epoch/{key}", value, row["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def progress_bar(total: int, initial: int, epoch: int, enabled: bool) -> tqdm:
    """A bar over the epoch's steps; ``set_postfix`` shows loss and samples/s."""
    return tqdm(
        total=total,
        initial=initial,
        desc=f"epoch {epoch + 1}",
        unit="step",
        disable=not enabled,
        dynamic_ncols=True,
        leave=False,
    )
