"""The run configuration of ``referred train``: one frozen dataclass, defaults per architecture.

A :class:`TrainConfig` holds every value that decides what a run computes. Fields left ``None``
are filled by :meth:`TrainConfig.resolved` from the model being trained:

* from scratch with a named architecture (``tiny``, ``B-16`` …): that architecture's defaults
  (:data:`ARCH_DEFAULTS`; ``tiny`` follows docs/benchmarks.md: batch 64, lr 1e-3);
* from weights (CLIP, a released checkpoint, a previous run): the paper's fine-tuning recipe
  (lrvs-f.md §4: lr 1e-5, 30 epochs, global batch 420, first epoch head-only).

``batch_size`` is the *global* batch (all processes together, as the paper reports it); each
of ``W`` processes takes ``batch_size / W`` pairs a step, so results do not depend on the
number of GPUs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from referred.model.config import (
    CONDITIONINGS,
    architecture,
    available_architectures,
    make_config,
)
from referred.model.hub import looks_like_hub_id

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOGIT_SCALE_MAX = math.log(100.0)

#: ``--model auto``: what to train on each device type, and why (said when a run starts).
RECOMMENDED_MODELS: dict[str, tuple[str, str]] = {
    "cpu": (
        "hybrid-lite0",
        "a hybrid CondViT on ImageNet EfficientNet-Lite0 features (pretrained trunk, a small "
        "transformer): what a CPU can train to find instances",
    ),
    "cuda": (
        "B-16",
        "CondViT-B/16 as in the paper; from scratch here: pass CLIP weights (--model "
        "ViT-B-16.pt) to fine-tune them as the paper does",
    ),
}
AUTO_MODEL = "auto"

#: Defaults of a hybrid run from scratch (both hybrid architectures).
_HYBRID_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 64,
    "lr": 5e-4,
    "trunk_lr_scale": 0.0,
    "augment_views": 1,
}
#: Defaults of a run from scratch, per named architecture.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 30, "batch_size": 64, "lr": 1e-3},
    # the trunk frozen by default: fine-tuning it at 224 px held 10.7 GB of activations and
    # ran under 2 pairs/s on a 2-vCPU EPYC (docs/benchmarks.md); --trunk-lr-scale 0.1 does it.
    # Frozen, its maps are memoised (one trunk pass per distinct image and view): one view
    # (the image itself) by default, because each view costs a trunk pass (~0.1 s an image)
    "hybrid-lite0": _HYBRID_DEFAULTS,
    # the same, its trunk run to stride 32 as well (docs/training.md, "The pyramid")
    "hybrid-lite0-pyramid": _HYBRID_DEFAULTS,
    # the same at 128 px, for zoom's close-ups (docs/training.md, "Zoom")
    "hybrid-lite0-128": _HYBRID_DEFAULTS,
    "B-32": {"epochs": 30, "batch_size": 360, "lr": 1e-5},
    "B-16": {"epochs": 30, "batch_size": 420, "lr": 1e-5},
    "L-14": {"epochs": 30, "batch_size": 420, "lr": 1e-5},
}
#: Shared by every run from scratch: no frozen phase, CLIP's initial temperature 1/0.07.
SCRATCH_DEFAULTS: dict[str, Any] = {
    "head_only_epochs": 0,
    "init_logit_scale": math.log(1 / 0.07),
    "augment_views": 0,
}
#: Defaults when initialising from weights: the paper's recipe (lrvs-f.md §4).
FINETUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 420,
    "lr": 1e-5,
    "head_only_epochs": 1,
    "init_logit_scale": None,  # keep the checkpoint's (ln 100 for the paper's fine-tuning)
    "augment_views": 0,
}
#: Fields that change how a run executes, not what it computes; a resumed run may change them.
OPERATIONAL_FIELDS = frozenset(
    {
        "data",
        "out",
        "workers",
        "device",
        "threads",
        "max_minutes",
        "cache_dir",
        "log_every",
        "trunk_memo_gb",
    }
)


@dataclass(frozen=True)
class ModelSpec:
    """What ``--model`` named: an architecture to build (``kind="arch"``) or weights to load."""

    kind: str  # "arch" or "weights"
    value: str  # architecture name, architecture JSON path, or weights path / hub id
    arch: dict[str, Any] | None = None  # the architecture dict for kind="arch"

    @property
    def defaults(self) -> dict[str, Any]:
        if self.kind == "arch":
            named = ARCH_DEFAULTS.get(str(self.value))
            if named is None:  # an architecture file: a hybrid's if it has a trunk
                hybrid = (self.arch or {}).get("trunk") is not None
                named = _HYBRID_DEFAULTS if hybrid else ARCH_DEFAULTS["tiny"]
            return {**SCRATCH_DEFAULTS, **named}
        return FINETUNE_DEFAULTS


def recommended_model(device_type: str) -> tuple[str, str]:
    """(architecture, why) that ``--model auto`` trains on a device of ``device_type``."""
    return RECOMMENDED_MODELS.get(device_type, RECOMMENDED_MODELS["cpu"])


def resolve_model_spec(model: str, device_type: str = "cpu") -> ModelSpec:
    """Tell an architecture (name or ``.json`` file of architecture keys) from weights;
    ``auto`` is the recommended architecture for ``device_type``.

    Raises ``ValueError`` naming what is accepted when ``model`` is neither.
    """
    if model == AUTO_MODEL:
        model = recommended_model(device_type)[0]
    names = available_architectures()
    key = model.replace("ViT-", "").replace("/", "-")
    if key in names:
        return ModelSpec("arch", key, architecture(key))
    path = Path(model)
    if path.is_file() and path.suffix == ".json" and not path.name.endswith(".index.json"):
        try:
            arch = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"--model {model}: not valid JSON ({exc})") from exc
        if not isinstance(arch, dict):
            raise ValueError(f"--model {model}: an architecture file holds a JSON object")
        arch = {**arch, "name": path.stem}
        try:
            make_config(arch, "none")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--model {model}: not a valid architecture ({exc})") from exc
        return ModelSpec("arch", str(path), arch)
    if path.exists() or looks_like_hub_id(model):
        return ModelSpec("weights", model)
    raise ValueError(
        f"--model {model!r} is neither an architecture ({', '.join(names)}, or a .json file of "
        "architecture keys) nor a weights file, checkpoint folder or hub id (owner/name)"
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; ``None`` fields get defaults from the model (see module).

    Args:
        data: dataset folder (training layout; any layout ``referred.data`` reads with pairs).
        out: output folder (``best/``, ``last/``, ``metrics.csv``, ``train_config.json``, ``tb/``).
        model: architecture name / JSON file (from scratch) or weights (file, folder, hub id);
            ``auto`` (default): the recommended one for the device (:data:`RECOMMENDED_MODELS`).
        conditioning: ``category``, ``text`` or ``none`` (the unconditional baseline).
        epochs, batch_size (global), lr: defaults per model (see :data:`ARCH_DEFAULTS`).
        trunk_lr_scale: a hybrid's pretrained trunk learns at ``lr × trunk_lr_scale`` (0: frozen).
        head_only_epochs: first epochs training only ``proj``, the condition embeddings and
            ``logit_scale`` (the paper's first epoch); default 1 from weights, 0 from scratch.
        init_logit_scale: initial log-temperature; default ln(1/0.07) from scratch (CLIP's:
            starting at ln 100 made tiny models collapse to uniform logits), the checkpoint's
            value from weights.
        warmup_epochs: epochs of linear lr warm-up; a cosine decay to 0 follows.
        weight_decay: AdamW decay of matrices (biases, norms, embeddings: none).
        augment: the paper's augmentation (random resized crop 0.8–1, flip); ``False`` feeds
            the inference preprocessing (pad, resize).
        augment_views: ``0``: a fresh augmentation at every draw (the paper's). ``N ≥ 1``: each
            image is seen as itself (view 0) or one of ``N - 1`` fixed augmentations, so a
            frozen trunk's maps repeat and :mod:`referred.model.trunk_memo` serves them.
            Default per model (hybrid-lite0: see :data:`ARCH_DEFAULTS`), else 0.
        trunk_memo_gb: memory for a frozen trunk's feature maps (0: recompute every time).
        same_category: ``k ≥ 1``: each batch is made of runs of ``k`` products of one category
            (in-batch hard negatives: a query must tell its product from ``k - 1`` others of
            its kind, not only from other kinds); ``0``: batches drawn at random.
        seed: seeds the model's initialisation, the data order and the augmentation.
        workers: DataLoader worker processes (0: load in the main process); default 0 on the
            CPU (measured fastest on 2 vCPUs: decoding 64 px images is cheap, a worker competes
            with the model for the cores), 8 per GPU process.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` (bf16 on CUDA, else fp32), ``fp32``, ``bf16``, ``fp16`` (CUDA, with
            a gradient scaler).
        threads: torch CPU threads (``None``: torch's default).
        max_minutes: the run's time budget, over all its invocations: the learning rate
            anneals to its minimum as it is used up (the schedule's horizon when it comes
            before the last epoch); the run then validates, saves and ends. ``None``: none.
        val_distractors: validation distractors used (``None``: all of the split).
        text_encoder: sentence encoder of ``text`` conditioning (default: the model's default).
        cache_dir: where the packed training images go (default ``out/cache``).
        log_every: steps between TensorBoard loss points.
    """

    data: str
    out: str
    model: str = AUTO_MODEL
    conditioning: str = "category"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    head_only_epochs: int | None = None
    init_logit_scale: float | None = None
    warmup_epochs: int = 1
    weight_decay: float = 0.1
    augment: bool = True
    augment_views: int | None = None
    trunk_memo_gb: float = 4.0
    same_category: int = 0
    seed: int = 0
    workers: int | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    max_minutes: float | None = None
    trunk_lr_scale: float | None = None
    val_distractors: int | None = None
    text_encoder: str | None = None
    cache_dir: str | None = None
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(
                f"unknown conditioning {self.conditioning!r}; expected one of {CONDITIONINGS}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {PRECISIONS}")
        _check(self.epochs is None or self.epochs >= 1, "epochs must be >= 1", self.epochs)
        _check(
            self.batch_size is None or self.batch_size >= 2,
            "batch size must be >= 2 (InfoNCE needs negatives)",
            self.batch_size,
        )
        _check(
            self.lr is None or (self.lr > 0 and math.isfinite(self.lr)),
            "learning rate must be a positive number",
            self.lr,
        )
        _check(self.weight_decay >= 0, "weight decay must be >= 0", self.weight_decay)
        _check(self.workers is None or self.workers >= 0, "workers must be >= 0", self.workers)
        _check(self.warmup_epochs >= 0, "warmup epochs must be >= 0", self.warmup_epochs)
        _check(
            self.head_only_epochs is None or self.head_only_epochs >= 0,
            "head-only epochs must be >= 0",
            self.head_only_epochs,
        )
        _check(
            self.init_logit_scale is None or 0 <= self.init_logit_scale <= LOGIT_SCALE_MAX,
            "initial logit scale must be in [0, ln 100]",
            self.init_logit_scale,
        )
        _check(self.threads is None or self.threads >= 1, "threads must be >= 1", self.threads)
        _check(
            self.max_minutes is None or self.max_minutes > 0,
            "max minutes must be > 0",
            self.max_minutes,
        )
        _check(
            self.val_distractors is None or self.val_distractors >= 0,
            "validation distractors must be >= 0",
            self.val_distractors,
        )
        _check(self.log_every >= 1, "log_every must be >= 1", self.log_every)
        _check(
            self.augment_views is None or self.augment_views >= 0,
            "augment views must be >= 0 (0: a fresh augmentation every time)",
            self.augment_views,
        )
        _check(self.trunk_memo_gb >= 0, "trunk memo size must be >= 0 GB", self.trunk_memo_gb)
        _check(self.same_category >= 0, "same-category run must be >= 0", self.same_category)
        _check(
            self.trunk_lr_scale is None or 0 <= self.trunk_lr_scale <= 1,
            "trunk learning-rate scale must be in [0, 1] (0 freezes the trunk)",
            self.trunk_lr_scale,
        )

    def resolved(self, spec: ModelSpec | None = None) -> TrainConfig:
        """A copy with every ``None`` default filled in for the model ``spec`` names."""
        spec = spec or resolve_model_spec(self.model)
        filled = {
            k: v for k, v in spec.defaults.items() if getattr(self, k) is None and v is not None
        }
        out = replace(self, **filled)
        if out.head_only_epochs > out.epochs:  # type: ignore[operator]
            raise ValueError(
                f"head-only epochs ({out.head_only_epochs}) exceed epochs ({out.epochs})"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown train config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def differences(self, other: TrainConfig) -> list[str]:
        """Fields that change the computation and differ from ``other`` (``name: a -> b``)."""
        return [
            f"{f.name}: {getattr(other, f.name)!r} -> {getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in OPERATIONAL_FIELDS and getattr(self, f.name) != getattr(other, f.name)
        ]


def _check(ok: bool, message: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{message}, got {value!r}")
