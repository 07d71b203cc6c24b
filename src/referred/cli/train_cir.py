"""``referred train --task cir``: train a Combiner over a frozen CondViT (docs/cir.md).

Takes the ``train`` verb's parsed flags; those that only concern a CondViT's own training are
refused here, by name.
"""

from __future__ import annotations

import argparse

#: ``train`` flags a Combiner run does not take: (attribute, flag, value when not given).
_CONDVIT_ONLY = (
    ("conditioning", "--conditioning", "category"),
    ("workers", "--workers", None),
    ("device", "--device", "auto"),
    ("precision", "--precision", "auto"),
    ("head_only_epochs", "--head-only-epochs", None),
    ("trunk_lr_scale", "--trunk-lr-scale", None),
    ("val_distractors", "--val-distractors", None),
    ("no_augment", "--no-augment", False),
    ("augment_views", "--augment-views", None),
    ("same_category", "--same-category", 0),
    ("trunk_memo_gb", "--trunk-memo-gb", 4.0),
    ("cache_dir", "--cache-dir", None),
)


def config_from_args(args: argparse.Namespace):  # -> CIRTrainConfig
    from referred.cli import UserError
    from referred.train.cir_config import CIRTrainConfig

    given = [flag for attr, flag, unset in _CONDVIT_ONLY if getattr(args, attr, unset) != unset]
    if given:
        raise UserError(
            f"--task cir trains a Combiner over a frozen CondViT and does not take "
            f"{', '.join(given)}; it takes --data, --out, --model, --epochs, --batch-size, "
            "--lr, --seed, --threads, --max-minutes, --text-encoder, --resume/--overwrite"
        )
    if args.model == "auto":
        raise UserError(
            "--task cir needs --model: the trained CondViT (file, folder or hub id) whose "
            "catalog space the Combiner composes in, e.g. src/referred/assets/demo-model"
        )
    extra = {
        k: v
        for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr))
        if v is not None
    }
    return CIRTrainConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.max_minutes,
        text_encoder=args.text_encoder,
        progress=not args.no_progress,
        **extra,
    )


def run_cir(args: argparse.Namespace) -> int:
    """0 when the run finished or stopped resumably."""
    from referred.train.cir import train_cir

    config = config_from_args(args)
    mode = "must" if args.resume else "never" if args.overwrite else "auto"
    result = train_cir(config, resume=mode)
    state = "finished" if result.finished else "stopped (run again to resume)"
    best = max((row["val_score"] for row in result.history), default=None)
    score = "" if best is None else f"; best val mean(R@10, R@50) {100 * best:.1f}%"
    print(f"{state}: {result.epochs_done} epochs; best: {result.best}{score}")
    return 0
