"""``referred train --task presence``: fit a presence head for a trained CondViT.

The head ("is the asked item in this photo at all?", :mod:`referred.presence`) is fitted on the
scenes of ``--data`` whose worn categories are known (``referred data synth`` records them),
calibrated on its validation split and measured on its test split; ``--out`` receives the
model with the head beside it (the model's own files are copied, never changed in place).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

#: ``train`` flags a presence fit takes besides --data, --model and --out.
TAKES = "--epochs, --batch-size, --lr, --seed, --threads, --overwrite"


def run_presence(args: argparse.Namespace) -> int:
    """0 when the head was fitted and saved."""
    import torch

    import referred
    from referred.cli import UserError
    from referred.cli.train import condvit_only_flags_given
    from referred.presence import save_head
    from referred.presence.fit import fit_presence

    given = condvit_only_flags_given(args) + [
        flag
        for attr, flag in (("max_minutes", "--max-minutes"), ("text_encoder", "--text-encoder"))
        if getattr(args, attr, None) is not None
    ]
    if getattr(args, "resume", False):
        given.append("--resume")
    if given:
        raise UserError(
            f"--task presence fits a head on a frozen CondViT and does not take "
            f"{', '.join(given)}; it takes --data, --model, --out, {TAKES}"
        )
    if args.model == "auto":
        raise UserError("--task presence needs --model: the trained CondViT to fit a head for")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite and out != Path(args.model):
        raise UserError(f"{out} exists and is not empty; pass --overwrite to replace it")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = referred.load_model(args.model)
    head, report = fit_presence(
        model,
        args.data,
        epochs=args.epochs or 30,
        lr=args.lr or 1e-3,
        batch=args.batch_size or 32,
        seed=args.seed,
        log=lambda line: print(line, flush=True),
    )
    source = Path(args.model)
    if source.is_dir() and source.resolve() != out.resolve():
        shutil.copytree(source, out, dirs_exist_ok=True)
    elif not source.is_dir():
        model.save_pretrained(out)
    made_with = {
        "command": "referred train --task presence",
        "model": str(args.model),
        "data": str(args.data),
        "epochs": args.epochs or 30,
        "lr": args.lr or 1e-3,
        "batch_size": args.batch_size or 32,
        "seed": args.seed,
    }
    save_head(out, head, {**report.as_dict(), "made_with": made_with})
    summary = {k: report.as_dict()[k] for k in ("test_auc", "test_ece", "valid_auc", "scenes")}
    print(json.dumps(summary, indent=1))
    print(f"presence head saved in {out} (presence.safetensors, presence.json)")
    return 0
