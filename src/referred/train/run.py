"""Everything a training loop needs, prepared from a :class:`TrainConfig`: :func:`prepare`.

Order: resolve the model spec and defaults → join the process group → open the dataset (the
data layer's errors name what is missing) → pack or reuse the pair index → caption vectors
(text) → the model, optimiser and gradient scaler → the resumed state of ``out/last`` when
there is one (and the run's config matches).

Across nodes, ``out`` may be one folder on shared storage or a folder on each node's own disk
(only rank 0 writes checkpoints). Caches are therefore built by rank 0 first (a shared disk
then holds one copy), then by local rank 0 of any node that does not see it. Resuming, the
processes agree on the newest ``last/`` any of them sees: ``torchrun --rdzv-backend c10d``
ranks nodes by host name, not ``--node-rank``, so rank 0 may move to another node between
launches; a process that does not see that checkpoint receives it from one that does.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import referred
from referred.categories import LRVSF_CATEGORIES
from referred.data import Dataset, open_dataset
from referred.model import CondViT
from referred.model.checkpoints import read_weights
from referred.model.cpu_linear import use_onednn_linears
from referred.model.text import TextMemo, load_text_encoder
from referred.train import distributed as D
from referred.train.captions import caption_bank, product_texts
from referred.train.checkpoint import LAST, find_checkpoint, load_state, set_rng_state
from referred.train.config import (
    AUTO_MODEL,
    ModelSpec,
    TrainConfig,
    recommended_model,
    resolve_model_spec,
)
from referred.train.index import DataError, PairIndex, load_or_build
from referred.train.pairs import AugmentConfig, PairDataset, TextConditions
from referred.train.schedule import param_groups
from referred.train.setup import (
    autocast,
    build_model,
    resolve_device,
    resolve_precision,
    text_encoder_name,
)

log = logging.getLogger(__name__)
TRAIN_CONFIG_FILE = "train_config.json"
RESUME_MODES = ("auto", "must", "never")
GPU_WORKERS = 8


def _new_acc() -> dict[str, float]:
    return {"loss_sum": 0.0, "steps": 0, "replaced": 0, "bad_images": 0, "seconds": 0.0}


@dataclass
class Run:
    """The prepared run; the loop mutates ``epoch``, ``step``, ``batch_in_epoch`` and the rest."""

    cfg: TrainConfig
    info: D.DistInfo
    device: torch.device
    precision: str
    autocast: Any
    out: Path
    dataset: Dataset
    valid_split: str | None
    index: PairIndex
    data: PairDataset
    skipped: dict[str, int]
    per_rank_batch: int
    steps_per_epoch: int
    model: CondViT
    optimizer: torch.optim.Optimizer
    scaler: Any
    condition: Callable[[torch.Tensor], torch.Tensor | None]
    text_memo: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    epoch_acc: dict[str, float] = field(default_factory=_new_acc)
    best_score: float | None = None
    wall_offset: float = 0.0

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    @property
    def warmup_steps(self) -> int:
        return min(self.total_steps, self.steps_per_epoch * self.cfg.warmup_epochs)

    @staticmethod
    def new_epoch_acc() -> dict[str, float]:
        return _new_acc()

    def extra(self, row: dict[str, Any]) -> dict[str, Any]:
        """What ``config.json`` of a checkpoint records besides the model config."""
        return {
            "training": self.cfg.to_dict(),
            "trained": {**row, "world_size": self.info.world_size},
        }


def prepare(config: TrainConfig, resume: str = "auto", text_encoder: Any = None) -> Run:
    """Build a :class:`Run` (see the module docstring)."""
    if resume not in RESUME_MODES:
        raise ValueError(f"unknown resume mode {resume!r}; expected one of {RESUME_MODES}")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    info = D.env_info()
    device = resolve_device(config.device, info)
    spec = resolve_model_spec(config.model, device.type)
    if config.model == AUTO_MODEL:
        name, why = recommended_model(device.type)
        log.info("--model auto on %s: %s, %s", device.type, name, why)
    cfg = config.resolved(spec)
    info = D.init_distributed(device)
    precision = resolve_precision(cfg.precision, device)
    if cfg.workers is None:
        cfg = replace(cfg, workers=0 if device.type == "cpu" else GPU_WORKERS)
    if cfg.batch_size % info.world_size:
        raise ValueError(
            f"batch size {cfg.batch_size} is not divisible by the {info.world_size} processes"
        )
    out = Path(cfg.out)
    dataset, train_split, valid_split = open_training_data(Path(cfg.data))
    index = _shared_index(dataset, train_split, cfg, out, info)
    encoder_name, memo, text = _text_setup(spec, cfg, index, out, info, text_encoder)
    model = build_model(spec, cfg, None if text is None else text[1].shape[1], encoder_name)
    model.to(device)
    if memo is not None:  # saved with every checkpoint: category chips need no text encoder
        model.known_texts = dict(zip(LRVSF_CATEGORIES, memo(list(LRVSF_CATEGORIES))))
    # float32 on the CPU: oneDNN linears where this CPU runs them faster (referred.model.cpu)
    onednn = device.type == "cpu" and precision == "fp32" and use_onednn_linears(model)
    data, skipped, condition = _pair_data(cfg, index, model, text, device)
    steps = len(data) // cfg.batch_size
    if cfg.same_category > cfg.batch_size // info.world_size:
        raise ValueError(
            f"--same-category {cfg.same_category} exceeds the {cfg.batch_size // info.world_size} "
            "pairs each process takes a step"
        )
    if steps == 0:
        raise DataError(
            f"{cfg.data}: {len(data)} products can be trained on, fewer than one batch of "
            f"{cfg.batch_size}; lower --batch-size"
        )
    groups = param_groups(model, cfg.weight_decay, trunk_lr_scale=cfg.trunk_lr_scale)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    run = Run(
        cfg,
        info,
        device,
        precision,
        autocast(device, precision),
        out,
        dataset,
        valid_split,
        index,
        data,
        skipped,
        cfg.batch_size // info.world_size,
        steps,
        model,
        optimizer,
        scaler,
        condition,
        memo,
    )
    _start_or_resume(run, resume)
    if info.is_main:
        _write_train_config(run, spec, train_split)
    log.info(
        "training %s (%s conditioning) on %d products of %s, %d steps/epoch x %d epochs, "
        "global batch %d on %d process(es), %s, %s%s",
        model.config.name,
        cfg.conditioning,
        len(data),
        cfg.data,
        steps,
        cfg.epochs,
        cfg.batch_size,
        info.world_size,
        device,
        precision,
        ", oneDNN linears" if onednn else "",
    )
    return run


def open_training_data(root: Path) -> tuple[Dataset, str, str | None]:
    """The dataset, its training split (``train``, else ``catalog``) and validation split."""
    dataset = open_dataset(root)  # FileNotFoundError / ValueError name what is expected
    splits = dataset.splits
    train_split = "train" if "train" in splits else ("catalog" if "catalog" in splits else None)
    if train_split is None:
        raise DataError(
            f"{root} ({dataset.layout} layout) has no training split (found: "
            f"{', '.join(splits) or 'none'}); the training layout needs TRAIN/*.tar"
        )
    valid = "valid" if "valid" in splits else None
    if valid is None:
        log.warning("%s has no validation split: best/ will follow the training loss", root)
    return dataset, train_split, valid


def _shared_index(
    dataset: Dataset, split: str, cfg: TrainConfig, out: Path, info: D.DistInfo
) -> PairIndex:
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"
    index = _built_once(info, lambda build: load_or_build(dataset, split, cache, build=build))
    if index is None:
        raise DataError(f"the training index under {cache} was not built by local rank 0")
    return index


def _built_once(info: D.DistInfo, get: Callable[[bool], Any]) -> Any:
    """A cached artefact: ``get(True)`` loads or builds it, ``get(False)`` only loads it.

    Rank 0 goes first, so nodes that share the cache's disk read its copy; then local rank 0
    of each node that does not see it (a disk of its own) builds one; then the rest load.
    """
    value = get(True) if info.is_main else None
    D.barrier()
    if value is None and info.local_rank == 0:
        value = get(True)
    D.barrier()
    return value if value is not None else get(False)


def _text_setup(
    spec: ModelSpec, cfg: TrainConfig, index: PairIndex, out: Path, info: D.DistInfo, given: Any
) -> tuple[str | None, TextMemo | None, tuple[TextConditions, np.ndarray] | None]:
    """For text conditioning: the encoder's name, a memo for validation, and each product's
    caption rows with the caption bank ``(T, cond_dim)``."""
    if cfg.conditioning != "text":
        return None, None, None
    name = text_encoder_name(spec, cfg)
    encoder = given if given is not None else load_text_encoder(name)
    texts, rows = product_texts(index)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"
    bank = _built_once(info, lambda _: caption_bank(encoder, name, texts, cache))
    return name, TextMemo(encoder), (rows, bank)


def _pair_data(
    cfg: TrainConfig,
    index: PairIndex,
    model: CondViT,
    text: tuple[TextConditions, np.ndarray] | None,
    device: torch.device,
) -> tuple[PairDataset, dict[str, int], Callable]:
    """The dataset of pairs, the skip counts, and the batch-condition → model-input map."""
    skipped = dict(index.skipped)
    products = np.arange(len(index))
    conditions: Any = None
    aug = AugmentConfig(
        enabled=cfg.augment,
        size=model.config.input_resolution,
        pad_value=model.config.preprocess.pad_value,
        resample=model.config.preprocess.resample,
    )

    def pairs(conds: Any) -> PairDataset:
        return PairDataset(index, products, conds, aug, cfg.seed, cfg.augment_views or 0)

    if cfg.conditioning == "category":
        table = np.array(
            [
                model.config.categories.index(c) if c in model.config.categories else -1
                for c in referred.LRVSF_CATEGORIES
            ]
            + [-1],
            np.int64,
        )
        conditions = table[index.categories.astype(np.int64)]  # -1 (unknown) → table[-1]
        products = np.flatnonzero(conditions >= 0)
        if len(products) < len(index):
            skipped["category-not-in-model"] = len(index) - len(products)
        return pairs(conditions), skipped, lambda c: c
    if text is not None:
        bank = torch.from_numpy(text[1]).to(device)  # (T, cond_dim)
        return pairs(text[0]), skipped, lambda c: bank[c]
    return pairs(None), skipped, lambda c: None


def _start_or_resume(run: Run, resume: str) -> None:
    if resume == "never":
        _clear_outputs(run)
        return
    found = _agreed_checkpoint(run.out, run.info)
    if found is None:
        if resume == "must":
            raise FileNotFoundError(f"--resume: no checkpoint to resume in {run.out / LAST}")
        return
    last, saved, state, weights = found
    diff = run.cfg.differences(TrainConfig.from_dict(saved.get("training", {})))
    if diff:
        raise ValueError(
            f"{last} was trained with a different configuration ({'; '.join(diff)}); pass the "
            "same flags to resume, or --overwrite to start again"
        )
    run.model.load_state_dict(weights)
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    run.epoch, run.step = state["epoch"], state["step"]
    run.batch_in_epoch, run.epoch_acc = state["batch_in_epoch"], state["epoch_acc"]
    run.history, run.best_score = list(state["history"]), state["best_score"]
    run.wall_offset = state["wall_seconds"]
    log.info("resumed %s at epoch %d, step %d", last, run.epoch + 1, run.step)


def _clear_outputs(run: Run) -> None:
    """``--overwrite``: local rank 0 of every node clears its ``out`` (a stale ``last/`` on a
    node's own disk would otherwise be resumed later); concurrent deletes of a shared folder
    are harmless."""
    if run.info.local_rank == 0:
        for name in ("last", "last.old", "best", "best.old", "tb", "metrics.csv"):
            path = run.out / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    D.barrier()


def _agreed_checkpoint(out: Path, info: D.DistInfo) -> tuple[Path, dict, dict, dict] | None:
    """The newest ``out/last`` any process sees: (folder, its config.json, training state,
    weights), the same on every process; ``None`` when no process sees one."""
    mine = None
    last = find_checkpoint(out, LAST)
    if last is not None:
        mine = (last, json.loads((last / "config.json").read_text()), load_state(last))
    steps = D.all_gather_objects(-1 if mine is None else int(mine[2]["step"]))
    newest = max(steps)
    if newest < 0:
        return None
    source = steps.index(newest)
    local = mine is not None and steps[info.rank] == newest
    payload = (*mine, read_weights(mine[0])[0]) if local else None
    if all(D.all_gather_objects(local)):  # a shared disk: every process reads its own copy
        return payload
    if info.rank == source:
        log.info("sending %s (step %d) to the processes that do not see it", mine[0], newest)
    received = D.broadcast_object(payload if info.rank == source else None, src=source)
    return payload if local else received


def _write_train_config(run: Run, spec: ModelSpec, train_split: str) -> None:
    run.out.mkdir(parents=True, exist_ok=True)
    record = {
        "train": run.cfg.to_dict(),
        "model_spec": {"kind": spec.kind, "value": spec.value},
        "model": run.model.config.to_dict(),
        "data": {
            "root": str(run.cfg.data),
            "layout": run.dataset.layout,
            "train_split": train_split,
            "valid_split": run.valid_split,
            "products": len(run.data),
            "skipped": run.skipped,
        },
        "world_size": run.info.world_size,
        "device": str(run.device),
        "precision": run.precision,
        "steps_per_epoch": run.steps_per_epoch,
        "versions": {"referred": referred.__version__, "torch": torch.__version__},
    }
    tmp = run.out / f".{TRAIN_CONFIG_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(run.out / TRAIN_CONFIG_FILE)
