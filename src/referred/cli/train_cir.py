"""``referred train --task cir``: train a Combiner over a frozen CondViT (docs/cir.md).

Takes the ``train`` verb's parsed flags; those that only concern a CondViT's own training are
refused here, by name.
"""

from __future__ import annotations

import argparse

from referred.cli.train import condvit_only_flags_given


def config_from_args(args: argparse.Namespace):  # -> CIRTrainConfig
    from referred.cli import UserError
    from referred.train.cir_config import CIRTrainConfig

    given = condvit_only_flags_given(args)
    if given:
        raise UserError(
            f"--task cir trains a Combiner over a frozen CondViT and does not take "
            f"{', '.join(given)}; it takes --data, --out, --model, --epochs, --batch-size, "
            "--lr, --hidden, --temperature, --dropout, --weight-decay, --seed, --threads, "
            "--max-minutes, --text-encoder, --resume/--overwrite"
        )
    if args.model == "auto":
        raise UserError(
            "--task cir needs --model: the trained CondViT (file, folder or hub id) whose "
            "catalog space the Combiner composes in, e.g. src/referred/assets/demo-model"
        )
    names = ("epochs", "batch_size", "lr", "hidden", "temperature", "dropout", "weight_decay")
    # not given: the config's defaults
    extra = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
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
