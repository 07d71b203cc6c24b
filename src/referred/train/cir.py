"""Train a Combiner on FashionIQ-layout triplets over a frozen CondViT (``--task cir``).

Everything runs on vectors: the CondViT embeds each image once and the sentence encoder each
text once (cached in ``OUT/cache``), so an epoch takes seconds on a CPU. Per step, a batch
of triplets is composed (candidate vector + one of four wordings) and scored against every
training image; the loss is InfoNCE towards the target, the candidate left out. Each epoch is
validated with the FashionIQ metric on the validation split (mean of R@10 and R@50).

Outputs, as ``referred train`` writes them: ``OUT/best`` is a model folder (the CondViT as
given plus ``combiner.safetensors`` of the best epoch: ``referred.load_model(OUT/best)``
composes), ``OUT/last`` holds the latest Combiner and the training state (re-running the
same command resumes it), ``OUT/metrics.csv`` one row per epoch.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from referred.cir.combiner import Combiner, CombinerConfig
from referred.cir.data import SplitVectors, split_vectors
from referred.cir.features import VectorCache, model_key
from referred.cir.io import CIRHead, load_head, save_head
from referred.cir.plan import plan_split
from referred.data.fashioniq import FashionIQ
from referred.eval.cir import cir_ranks, method_scores
from referred.train.checkpoint import rng_state, set_rng_state
from referred.train.cir_config import CIRTrainConfig

log = logging.getLogger(__name__)
STATE_FILE, CONFIG_FILE, METRICS_FILE = "training_state.pt", "train_config.json", "metrics.csv"
RESUME_MODES = ("auto", "must", "never")


@dataclass
class CIRTrainResult:
    out: Path
    best: Path | None
    finished: bool
    epochs_done: int
    history: list[dict[str, Any]] = field(default_factory=list)


def text_encoder_name(config: CIRTrainConfig, model: Any) -> str:
    """The sentence encoder of the modifications: the config's, the model's, the default."""
    from referred.model.config import DEFAULT_TEXT_ENCODER

    return config.text_encoder or model.config.text_encoder or DEFAULT_TEXT_ENCODER


def load_vectors(
    config: CIRTrainConfig,
    model: Any,
    encode_texts: Any,
    encoder_name: str,
    image_encoder: Any = None,
) -> tuple[SplitVectors, SplitVectors]:
    """(train, validation) vectors, embedded once into ``OUT/cache``; ``image_encoder``
    (``encode_targets(paths) → (B, D)``, ``batch_size``) defaults to the model's query path."""
    from referred.query import QueryEncoder

    data = FashionIQ(config.data)
    for split in (config.train_split, config.val_split):
        data.check_split(split)
    cache = Path(config.out) / "cache"
    images = VectorCache(cache / "images.npz", model_key(model))
    texts = VectorCache(cache / "texts.npz", encoder_name)
    encoder = image_encoder or QueryEncoder(model, batch_size=config.embed_batch)
    out = []
    for split in (config.train_split, config.val_split):
        plan = plan_split(data, split)
        out.append(split_vectors(data, plan, encoder, images, encode_texts, texts, config.progress))
    return out[0], out[1]


def validate(net: Combiner, val: SplitVectors) -> dict[str, float]:
    """FashionIQ R@1 / R@10 / R@50 per category and averaged, and the mean of the
    averaged R@10 and R@50 (``val_score``)."""
    net.eval()
    ranks = {}
    with torch.inference_mode():
        for c in val.plan.categories:
            q = net(val.queries(c), val.eval_texts(c)).numpy()
            ranks[c] = cir_ranks(
                q, val.gallery(c).numpy(), val.plan.targets[c], val.plan.candidates[c]
            )
    scores = method_scores(ranks, ks=(1, 10, 50), samples=0)
    row = {f"val_{c}_{k}": v for c, d in scores["categories"].items() for k, v in d.items()
           if k.startswith("R@")}  # fmt: skip
    row.update({f"val_{k}": v for k, v in scores["average"].items() if k.startswith("R@")})
    # the score: mean of R@10 and R@50 (R@1 breaks its ties, e.g. once both saturate)
    row["val_score"] = (row["val_R@10"] + row["val_R@50"]) / 2
    return row


def _train_rows(train: SplitVectors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(candidate rows, target rows) in ``train.images`` and wordings (n, 4), all categories."""
    plan = train.plan
    cats = plan.categories
    queries = torch.from_numpy(np.concatenate([plan.query_rows[c] for c in cats]))
    targets = torch.from_numpy(np.concatenate([plan.galleries[c][plan.targets[c]] for c in cats]))
    return queries, targets, torch.cat([train.wordings[c] for c in cats])


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def contrastive_loss(
    out: torch.Tensor,
    bank: torch.Tensor,
    targets: torch.Tensor,
    candidates: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """InfoNCE of composed rows ``out`` (B, D) over ``bank`` (N, D) towards rows ``targets``
    (B,), each row's candidate (B,) left out of its softmax."""
    logits = out @ bank.T / tau  # (B, N)
    logits = logits.scatter(1, candidates[:, None], float("-inf"))
    return F.cross_entropy(logits, targets)


def _epoch(
    net: Combiner,
    opt: torch.optim.Optimizer,
    train: SplitVectors,
    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    config: CIRTrainConfig,
    epoch: int,
    step: int,
    total: int,
    warmup: int,
) -> tuple[int, float]:
    """One pass over the triplets in a seeded order; returns (step, mean loss)."""
    queries, targets, words = rows
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(len(queries), generator=g)
    pick = torch.randint(0, 4, (len(queries),), generator=g)
    net.train()
    losses = []
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, warmup, config.lr)
        text = train.texts[words[idx, pick[idx]]]  # (B, T)
        out = net(train.images[queries[idx]], text)  # (B, D)
        loss = contrastive_loss(out, train.images, targets[idx], queries[idx], config.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
    return step, float(np.mean(losses))


def _save_best(out: Path, model: Any, head: CIRHead) -> Path:
    """``OUT/best``: the CondViT once, then the Combiner (replaced atomically)."""
    best = out / "best"
    if not (best / "config.json").is_file():
        tmp = out / "best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tmp.rename(best)
    save_head(best, head)
    return best


def _save_last(out: Path, head: CIRHead, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    last = out / "last"
    save_head(last, head, dtype=torch.float32)
    tmp = last / f".{STATE_FILE}.tmp"
    torch.save({**state, "optimizer": opt.state_dict(), "rng": rng_state()}, tmp)
    tmp.replace(last / STATE_FILE)


def _start(config: CIRTrainConfig, resume: str) -> dict[str, Any] | None:
    """The saved state to resume from, or None; checks the run's config against it."""
    if resume not in RESUME_MODES:
        raise ValueError(f"unknown resume mode {resume!r}; expected one of {RESUME_MODES}")
    out = Path(config.out)
    state_path = out / "last" / STATE_FILE
    if resume == "never" and out.exists():
        for name in ("last", "best", METRICS_FILE, CONFIG_FILE):
            p = out / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    elif state_path.is_file():
        saved = json.loads((out / CONFIG_FILE).read_text())
        changed = config.changes_from(saved)
        if changed:
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(changed)}); use the same "
                "settings to resume, another --out, or --overwrite"
            )
        return torch.load(state_path, map_location="cpu", weights_only=True)
    elif resume == "must":
        raise FileNotFoundError(f"--resume: {state_path} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return None


@dataclass
class _Progress:
    """Where a run stands: what ``last/training_state.pt`` holds besides the optimiser."""

    epoch: int = 0
    step: int = 0
    best_score: tuple[float, float] = (-1.0, -1.0)
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0

    @classmethod
    def resumed(cls, out: Path, saved: dict[str, Any], net: Combiner, opt: Any) -> _Progress:
        """Load ``out/last`` into ``net`` and ``opt`` and restore the RNG states."""
        head = load_head(out / "last")
        if head is None:
            raise FileNotFoundError(f"{out / 'last'} has a training state but no Combiner")
        net.load_state_dict(head.net.state_dict())
        opt.load_state_dict(saved["optimizer"])
        set_rng_state(saved["rng"])
        return cls(saved["epoch"], saved["step"], tuple(saved["best_score"]),
                   list(saved["history"]), float(saved["wall_seconds"]))  # fmt: skip


def train_cir(
    config: CIRTrainConfig,
    resume: str = "auto",
    text_encoder: Any = None,
    image_encoder: Any = None,
) -> CIRTrainResult:
    """Train (or resume) a Combiner. ``text_encoder`` (a callable list[str] → (B, T)) replaces
    loading the named sentence encoder, ``image_encoder`` the model's query path (tests)."""
    from referred.model import load_model
    from referred.model.text import load_text_encoder

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    saved = _start(config, resume)
    out = Path(config.out)
    model = load_model(config.model)
    name = text_encoder_name(config, model)
    encode = text_encoder or load_text_encoder(name)
    train, val = load_vectors(config, model, encode, name, image_encoder)
    torch.manual_seed(config.seed)
    dims = (model.config.output_dim, train.texts.shape[1])
    net = Combiner(CombinerConfig(*dims, config.hidden, config.dropout))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = _Progress() if saved is None else _Progress.resumed(out, saved, net, opt)
    rows = _train_rows(train)
    per_epoch = math.ceil(len(rows[0]) / config.batch_size)
    t0 = time.perf_counter() - run.wall_seconds
    best = out / "best" if (out / "best" / "config.json").is_file() else None
    while run.epoch < config.epochs:
        t_epoch = time.perf_counter()
        run.step, loss = _epoch(
            net, opt, train, rows, config, run.epoch, run.step, per_epoch * config.epochs,
            per_epoch,
        )  # fmt: skip
        run.epoch += 1
        row = {"epoch": run.epoch, "step": run.step, "loss": loss, **validate(net, val)}
        row["epoch_seconds"] = time.perf_counter() - t_epoch
        run.history.append(row)
        log.info("cir epoch %d: loss %.4f, val R@10 %.4f R@50 %.4f", run.epoch, loss,
                 row["val_R@10"], row["val_R@50"])  # fmt: skip
        record = {"training": config.to_dict(), "trained": row, "data": str(config.data)}
        if (row["val_score"], row["val_R@1"]) > run.best_score:
            run.best_score = (row["val_score"], row["val_R@1"])
            best = _save_best(out, model, CIRHead(_copy(net), name, record))
        run.wall_seconds = time.perf_counter() - t0
        _save_last(out, CIRHead(net, name, record), opt, asdict(run))
        _write_metrics(out / METRICS_FILE, run.history)
        spent = config.max_minutes is not None and run.wall_seconds / 60 >= config.max_minutes
        if spent and run.epoch < config.epochs:
            log.info("time budget of %.1f min spent after epoch %d", config.max_minutes, run.epoch)
            return CIRTrainResult(out, best, False, run.epoch, run.history)
    return CIRTrainResult(out, best, True, run.epoch, run.history)


def _copy(net: Combiner) -> Combiner:
    twin = Combiner(net.config)
    twin.load_state_dict(net.state_dict())
    return twin.eval()


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
