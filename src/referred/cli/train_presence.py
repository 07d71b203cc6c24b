"""``referred train --task presence|floor|locator``: heads fitted beside a frozen CondViT.

``presence`` fits a presence head; ``floor`` measures the score floor under which a result is
marked weak (:mod:`referred.presence.floor`), on the validation split of ``--data``;
``locator`` fits the box head that makes queries close-ups (:mod:`referred.zoom`).

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


def _check_frozen_task(args: argparse.Namespace, takes: str, fits: bool = True) -> Path:
    """The --out folder of a task on a frozen --model; UserError for flags it does not take
    (``fits``: the task fits weights, so it takes --epochs, --batch-size and --lr)."""
    from referred.cli import UserError
    from referred.cli.train import condvit_only_flags_given

    others = [("max_minutes", "--max-minutes"), ("text_encoder", "--text-encoder")]
    if not fits:
        others += [("epochs", "--epochs"), ("batch_size", "--batch-size"), ("lr", "--lr")]
    given = condvit_only_flags_given(args) + [
        flag for attr, flag in others if getattr(args, attr, None) is not None
    ]
    if getattr(args, "resume", False):
        given.append("--resume")
    if given:
        raise UserError(
            f"--task {args.task} works on a frozen CondViT and does not take "
            f"{', '.join(given)}; it takes --data, --model, --out, {takes}"
        )
    if args.model == "auto":
        raise UserError(f"--task {args.task} needs --model: the trained CondViT to measure")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite and out != Path(args.model):
        raise UserError(f"{out} exists and is not empty; pass --overwrite to replace it")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return out


def _copy_model(model, source: Path, out: Path) -> None:
    """``out`` holds the model (its files copied, never changed in place)."""
    if source.is_dir() and source.resolve() != out.resolve():
        shutil.copytree(source, out, dirs_exist_ok=True)
    elif not source.is_dir():
        model.save_pretrained(out)


def run_presence(args: argparse.Namespace) -> int:
    """0 when the head was fitted and saved."""
    import referred
    from referred.presence import save_head
    from referred.presence.fit import fit_presence

    out = _check_frozen_task(args, TAKES)
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
    _copy_model(model, Path(args.model), out)
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


def run_floor(args: argparse.Namespace) -> int:
    """0 when the floor was measured and saved beside the model in --out."""
    import referred
    from referred.presence.floor import FILE, fit_score_floor, save_floor

    out = _check_frozen_task(args, "--threads, --overwrite", fits=False)
    model = referred.load_model(args.model)
    record = fit_score_floor(model, args.data, log=lambda line: print(line, flush=True))
    _copy_model(model, Path(args.model), out)
    made_with = {"command": "referred train --task floor", "model": str(args.model)}
    save_floor(out, {**record, "made_with": {**made_with, "data": str(args.data)}})
    print(json.dumps(record, indent=1))
    floor = record["floor"]
    print(f"score floor saved in {out} ({FILE}): results under {floor:.4f} are marked weak")
    return 0


def run_locator(args: argparse.Namespace) -> int:
    """0 when the locator was fitted and saved beside the model in --out."""
    import referred
    from referred.zoom.calibrate import GROWS, MAX_VIEWS
    from referred.zoom.fit import fit_locator
    from referred.zoom.io import save_locator
    from referred.zoom.views import Views

    out = _check_frozen_task(args, TAKES + ", --scene-size, --pairs, --grow, --max-views")
    if getattr(args, "grow", None) is not None and getattr(args, "max_views", None) is not None:
        from referred.cli import UserError

        raise UserError("--grow fixes one close-up (no search); --max-views bounds the search")
    model = referred.load_model(args.model)
    settings = {
        "scene_size": getattr(args, "scene_size", None),
        "pairs": None if getattr(args, "pairs", None) is None else {"train": args.pairs},
        "epochs": args.epochs or 8,
        "lr": args.lr or 1e-3,
        "batch": args.batch_size or 64,
        "seed": args.seed,
        "grows": GROWS if getattr(args, "grow", None) is None else (args.grow,),
        "max_views": getattr(args, "max_views", None) or MAX_VIEWS,
    }
    head, report = fit_locator(
        model, args.data, log=lambda line: print(line, flush=True), **settings
    )
    _copy_model(model, Path(args.model), out)
    made_with = {
        "command": "referred train --task locator",
        "model": str(args.model),
        "data": str(args.data),
        **settings,
    }
    views = Views.from_record(report.views)
    save_locator(out, head, views, {**report.as_dict(), "made_with": made_with})
    print(json.dumps(report.as_dict(), indent=1))
    print(
        f"locator saved in {out} (locator.safetensors, locator.json): conditioned queries "
        "are now embedded as close-ups of the item it finds "
        f"({views.label()}: {views.count} close-up{'s' if views.count > 1 else ''} a query)"
    )
    return 0
