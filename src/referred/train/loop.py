"""The training loop: :func:`train` runs a :class:`TrainConfig` from start (or resume) to end.

One step: a batch of pairs per process → the scene embedded under its condition, the product
without → L2-normalised, gathered with gradient across processes → symmetric InfoNCE → AdamW
(through a gradient scaler in fp16) → ``logit_scale`` clamped to ``[0, ln 100]``. Each epoch
ends with validation R@K, ``last/`` (resumable) and, when R@1 improves, ``best/``.

Preparation (index, captions, model, optimiser, resume) is in :mod:`referred.train.run`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from referred.model.trunk_memo import memo_for
from referred.train import distributed as D
from referred.train.checkpoint import BEST, LAST, rng_state, save_checkpoint
from referred.train.config import TrainConfig
from referred.train.logs import RunLog, progress_bar
from referred.train.loss import clamp_logit_scale_, info_nce
from referred.train.pairs import EpochBatches, normalize_pixels
from referred.train.run import Run, prepare
from referred.train.schedule import learning_rate, set_trainable
from referred.train.validate import embed_split, retrieval_metrics

log = logging.getLogger(__name__)

#: The batch fields naming each image for a frozen trunk's memo (:mod:`referred.train.pairs`).
KEY_FIELDS = ("complex_key", "complex_decoded", "simple_key", "simple_decoded")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what to do."""


@dataclass
class TrainResult:
    """What a call to :func:`train` did. ``finished`` is false after a time/step stop."""

    out: Path
    best: Path | None
    last: Path | None
    epochs_done: int
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = True


class PairModel(torch.nn.Module):
    """Both forwards of a step in one module call (what DDP expects per backward)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        scenes: torch.Tensor,
        products: torch.Tensor,
        cond: torch.Tensor | None,
        keys: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, R, R) ×2, condition → (B, D) query and (B, D) target embeddings.

        ``keys``: the batch's ``{complex,simple}_{key,decoded}`` (:mod:`referred.train.pairs`),
        handed to a frozen trunk's memo, which finds the images by them."""
        memo = self.model.trunk_memo
        if memo is None or keys is None:
            return self.model(scenes, cond), self.model(products)
        with memo.given(list(keys["complex_key"]), keys["complex_decoded"].tolist()):
            q = self.model(scenes, cond)
        with memo.given(list(keys["simple_key"]), keys["simple_decoded"].tolist()):
            t = self.model(products)
        return q, t


def train(
    config: TrainConfig,
    *,
    resume: str = "auto",
    text_encoder: Any = None,
    progress: bool = True,
    until_step: int | None = None,
) -> TrainResult:
    """Train (or resume) the run described by ``config``; see docs/training.md.

    Args:
        config: the run; ``None`` fields take the model's defaults.
        resume: ``"auto"`` (continue ``out/last`` if it exists), ``"must"`` (fail without it)
            or ``"never"`` (start again, replacing earlier outputs).
        text_encoder: a callable list[str] → (B, dim) tensor replacing the configured frozen
            sentence encoder (tests, custom encoders).
        progress: show a progress bar (main process only).
        until_step: stop, resumably, once this many optimiser steps are done in total.
    """
    run = prepare(config, resume=resume, text_encoder=text_encoder)
    try:
        return _Loop(run, progress, until_step).run()
    finally:
        D.shutdown()


class _Loop:
    def __init__(self, run: Run, progress: bool, until_step: int | None) -> None:
        self.r, self.cfg = run, run.cfg
        self.progress = progress and run.info.is_main
        self.until_step = until_step
        self.started = time.monotonic()
        self.log = RunLog(run.out, run.history, run.step, enabled=run.info.is_main)
        self.trainable: bool | None = None
        self.wrapped: torch.nn.Module | None = None

    # -- orchestration ------------------------------------------------------------------------
    def run(self) -> TrainResult:
        r = self.r
        stopped = False
        try:
            while r.epoch < self.cfg.epochs and not stopped and self._spent() < 1.0:
                stopped = self._epoch()
                if r.batch_in_epoch == 0:  # the epoch completed
                    self._end_epoch()
                    stopped = stopped or self._should_stop()
            horizon = self.cfg.max_minutes is not None and self._spent() >= 1.0
            if horizon and r.batch_in_epoch:  # the schedule ended mid-epoch: validate, save
                log.info("reached the %g-minute horizon mid-epoch", self.cfg.max_minutes)
                self._end_epoch()
        finally:
            self.log.close()
            r.model.trunk_memo = None  # the memo belongs to this run, not to the model
        finished = r.epoch >= self.cfg.epochs or horizon
        if not finished:
            if r.batch_in_epoch:  # stopped mid-epoch: the position within it is saved too
                self._save_last()
            log.info(
                "stopped at epoch %d, step %d: run the same command again to resume",
                r.epoch + 1,
                r.step,
            )
        return TrainResult(
            r.out,
            _exists(r.out / BEST),
            _exists(r.out / LAST),
            r.epoch,
            r.step,
            r.history,
            finished,
        )

    def _should_stop(self) -> bool:
        at_step = self.until_step is not None and self.r.step >= self.until_step
        return at_step or self._spent() >= 1.0

    def _spent(self) -> float:
        """The share of ``--max-minutes`` used by the run so far, resumed invocations included
        (0 without a budget); averaged over processes so every one sees the same schedule."""
        if self.cfg.max_minutes is None:
            return 0.0
        share = self._wall() / (60.0 * self.cfg.max_minutes)
        return D.all_reduce_sum([share], self.r.device)[0] / self.r.info.world_size

    # -- one epoch ----------------------------------------------------------------------------
    def _model_for_phase(self) -> torch.nn.Module:
        head_only = self.r.epoch < self.cfg.head_only_epochs
        if self.trainable != head_only or self.wrapped is None:
            frozen = ("trunk.",) if self.cfg.trunk_lr_scale == 0 else ()
            n = set_trainable(self.r.model, head_only, frozen)
            log.info(
                "epoch %d: training %s (%d parameters)",
                self.r.epoch + 1,
                "proj and the condition embeddings only"
                if head_only
                else "all parameters" + (" but the frozen trunk" if frozen else ""),
                n,
            )
            self.trainable = head_only
            if self.r.model.trunk_memo is None:
                keyed = self.r.data.fixed_views
                memo = memo_for(
                    self.r.model, self.cfg.trunk_lr_scale, self.cfg.trunk_memo_gb, keyed
                )
                self.r.model.trunk_memo = memo
                # images whose maps it holds are not decoded again (worker processes see
                # the keys known when each epoch's workers start)
                self.r.data.known = memo.known if memo is not None and keyed else None
            self.wrapped = None  # drop the previous DDP wrapper (and its gradient hooks) first
            self.wrapped = _wrap(PairModel(self.r.model), self.r.device, self.r.info)
        return self.wrapped

    def _loader(self) -> DataLoader:
        r = self.r
        r.data.set_epoch(r.epoch)
        sampler = EpochBatches(
            len(r.data),
            r.per_rank_batch,
            self.cfg.seed,
            r.epoch,
            r.info.rank,
            r.info.world_size,
            start=r.batch_in_epoch,
            labels=r.data.labels(),
            group=self.cfg.same_category,
        )
        return DataLoader(
            r.data,
            batch_sampler=sampler,
            num_workers=self.cfg.workers,
            pin_memory=r.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.cfg.seed * 1000 + r.epoch),
        )

    def _epoch(self) -> bool:
        """Train the rest of the current epoch; True when stopped before its end."""
        r = self.r
        model = self._model_for_phase()
        model.train()
        acc = r.epoch_acc
        bar = progress_bar(r.steps_per_epoch, r.batch_in_epoch, r.epoch, self.progress)
        t0 = time.monotonic()
        try:
            for batch in self._loader():
                loss = self._step(model, batch)
                acc["loss_sum"] += loss
                acc["steps"] += 1
                acc["replaced"] += int(batch["replaced"].gt(0).sum())
                acc["bad_images"] += int(batch["bad_images"].sum())
                acc["seconds"] += time.monotonic() - t0
                t0 = time.monotonic()
                r.step += 1
                r.batch_in_epoch += 1
                rate = acc["steps"] * self.cfg.batch_size / max(acc["seconds"], 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", samples_s=f"{rate:.1f}")
                if r.batch_in_epoch == r.steps_per_epoch:
                    r.batch_in_epoch = 0
                    return False
                if self._should_stop():
                    return True
        finally:
            bar.close()
        r.batch_in_epoch = 0
        return False

    def _step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
        r, dev = self.r, self.r.device
        lr = learning_rate(
            r.step,
            base_lr=self.cfg.lr,
            warmup=r.warmup_steps,
            total=r.total_steps,
            spent=self._spent(),  # --max-minutes is the schedule's horizon too
        )
        for group in r.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        pre = r.model.config.preprocess
        scenes = normalize_pixels(batch["complex"].to(dev, non_blocking=True), pre.mean, pre.std)
        products = normalize_pixels(batch["simple"].to(dev, non_blocking=True), pre.mean, pre.std)
        cond = r.condition(batch["cond"].to(dev, non_blocking=True))
        keys = {k: batch[k] for k in KEY_FIELDS if k in batch}
        with r.autocast:
            q, t = model(scenes, products, cond, keys or None)  # (B, D) each
        q, t = F.normalize(q.float(), dim=-1), F.normalize(t.float(), dim=-1)
        offset = r.info.rank * q.shape[0]
        loss = info_nce(
            q, t, r.model.logit_scale, D.all_gather_with_grad(q), D.all_gather_with_grad(t), offset
        )
        mean_loss = D.all_reduce_sum([loss.item()], dev)[0] / r.info.world_size
        if not math.isfinite(mean_loss):
            raise TrainingError(self._nan_message(mean_loss, lr))
        r.optimizer.zero_grad(set_to_none=True)
        r.scaler.scale(loss).backward()
        r.scaler.step(r.optimizer)
        r.scaler.update()
        clamp_logit_scale_(r.model.logit_scale)
        if self.r.info.is_main and r.step % self.cfg.log_every == 0:
            self.log.step(r.step, mean_loss, lr)
        return mean_loss

    def _nan_message(self, value: float, lr: float) -> str:
        last = self.r.out / LAST
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
        return (
            f"the loss became {value} at epoch {self.r.epoch + 1}, step {self.r.step} "
            f"(lr {lr:.3g}, logit_scale {float(self.r.model.logit_scale.detach()):.3f}); training "
            f"stopped and {kept}. Lower --lr, or use --precision fp32 if it was fp16/bf16."
        )

    # -- end of epoch -------------------------------------------------------------------------
    def _validate(self) -> dict[str, float]:
        r = self.r
        if r.valid_split is None:
            return {}
        emb = embed_split(
            r.model,
            r.dataset,
            r.valid_split,
            max_distractors=self.cfg.val_distractors,
            batch_size=max(64, r.per_rank_batch),
            workers=self.cfg.workers,
            autocast=r.autocast,
            text_encoder=r.text_memo,
            rank=r.info.rank,
            world_size=r.info.world_size,
        )
        if emb.skipped.total():
            log.info("validation skipped: %s", dict(+emb.skipped))
        return {f"val_{k}": v for k, v in retrieval_metrics(emb).items()}

    def _end_epoch(self) -> None:
        r, acc = self.r, self.r.epoch_acc
        val = self._validate()
        bad, replaced = D.all_reduce_sum([acc["bad_images"], acc["replaced"]], r.device)
        row = {
            "epoch": r.epoch + 1,
            "step": r.step,
            "loss": acc["loss_sum"] / max(1, acc["steps"]),
            "lr": r.optimizer.param_groups[0]["lr"],
            **val,
            "samples_per_s": acc["steps"] * self.cfg.batch_size / max(acc["seconds"], 1e-9),
            "logit_scale": float(r.model.logit_scale.detach().exp()),
            "epoch_seconds": acc["seconds"],
            **self._memo_row(),
            "wall_seconds": self._wall(),
            "bad_images": int(bad),  # all processes
            "replaced_samples": int(replaced),
        }
        r.history.append(row)
        r.epoch += 1
        r.epoch_acc = r.new_epoch_acc()
        score = val.get("val_R@1", -float(row["loss"]))
        if r.info.is_main:
            if r.best_score is None or score > r.best_score:
                r.best_score = score
                save_checkpoint(r.out, BEST, r.model, r.extra(row))
            self._save_last()
            self.log.epoch(row)
            log.info("%s", _epoch_line(row, self.cfg, r.skipped))
        D.barrier()

    def _memo_row(self) -> dict[str, Any]:
        memo = self.r.model.trunk_memo
        if memo is None:
            return {}
        stats = memo.stats
        return {"trunk_memo_hit_rate": stats.hit_rate(), "trunk_memo_gb": stats.bytes / 1e9}

    def _wall(self) -> float:
        """Wall time of the run so far, including earlier invocations (resumed runs)."""
        return self.r.wall_offset + time.monotonic() - self.started

    def _save_last(self) -> None:
        r = self.r
        if not r.info.is_main:
            return
        state = {
            "epoch": r.epoch,
            "step": r.step,
            "batch_in_epoch": r.batch_in_epoch,
            "data_order": {"seed": self.cfg.seed, "epoch": r.epoch, "batch": r.batch_in_epoch},
            "epoch_acc": dict(r.epoch_acc),
            "optimizer": r.optimizer.state_dict(),
            "scaler": r.scaler.state_dict(),
            "rng": rng_state(),
            "history": r.history,
            "best_score": r.best_score,
            "wall_seconds": self._wall(),
        }
        save_checkpoint(r.out, LAST, r.model, r.extra(r.history[-1] if r.history else {}), state)


def _wrap(module: torch.nn.Module, device: torch.device, info: D.DistInfo) -> torch.nn.Module:
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def _exists(path: Path) -> Path | None:
    return path if path.exists() else None


def _epoch_line(row: dict[str, Any], cfg: TrainConfig, skipped: dict[str, int]) -> str:
    val = ", ".join(
        f"{k[4:]} {100 * v:.1f}%"
        for k, v in row.items()
        if k.startswith("val_") and isinstance(v, float)
    )
    skip = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())) or "none"
    return (
        f"epoch {row['epoch']}/{cfg.epochs}: loss {row['loss']:.4f}, lr {row['lr']:.3g}, "
        f"{val or 'no validation split'}, {row['samples_per_s']:.1f} samples/s, logit scale "
        f"{row['logit_scale']:.1f}, {row['epoch_seconds']:.0f} s; skipped at indexing: {skip}; "
        f"this epoch: {row['bad_images']} images did not decode (skipped), "
        f"{row['replaced_samples']} products replaced (no decodable pair)"
    )
