"""``referred train``: train a CondViT on an LRVS-F-layout dataset (see docs/training.md).

A thin layer: parse strings, build the frozen :class:`~referred.train.TrainConfig`, call
:func:`referred.train.train`, print. Also runnable alone: ``python -m referred.cli.train``.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the top-level subparsers."""
    p = sub.add_parser(
        "train",
        help="train a CondViT (category, text or unconditional) on an LRVS-F-layout dataset",
        description="Train CondViT with symmetric InfoNCE between conditioned scenes and "
        "products (paper recipe: lrvs-f.md section 4). Writes OUT/best (best validation R@1, "
        "loadable by referred.load_model), OUT/last (resumable), OUT/metrics.csv, OUT/tb. "
        "Re-running the same command resumes from OUT/last. Multi-GPU: launch with torchrun.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


#: ``train`` flags that only a CondViT's own training takes (a Combiner or presence-head fit
#: over a frozen CondViT refuses them): (attribute, flag, value when not given).
CONDVIT_ONLY = (
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


def condvit_only_flags_given(args: argparse.Namespace) -> list[str]:
    """The flags of :data:`CONDVIT_ONLY` given on this command line."""
    return [flag for attr, flag, unset in CONDVIT_ONLY if getattr(args, attr, unset) != unset]


#: ``train`` flags only ``--task cir`` takes (the Combiner's shape and loss): (attribute, flag).
CIR_ONLY = (
    ("hidden", "--hidden"),
    ("temperature", "--temperature"),
    ("dropout", "--dropout"),
    ("weight_decay", "--weight-decay"),
)


def cir_only_flags_given(args: argparse.Namespace) -> list[str]:
    """The flags of :data:`CIR_ONLY` given on this command line."""
    return [flag for attr, flag in CIR_ONLY if getattr(args, attr, None) is not None]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        choices=("rvs", "cir", "presence", "floor", "locator"),
        default="rvs",
        help="rvs (default): train a CondViT; cir: train a Combiner for composed retrieval "
        "('this, but in red') over the frozen CondViT --model, on FashionIQ-layout --data "
        "(docs/cir.md); presence: fit a head saying whether the asked item is in the photo "
        "at all, for the frozen CondViT --model, on --data scenes with known worn categories; "
        "floor: measure the score under which results are marked weak, on --data's "
        "validation split (docs/search.md); locator: fit a head finding the asked item's box "
        "in the scene, so queries are embedded as close-ups (docs/training.md, Zoom)",
    )
    p.add_argument("--data", required=True, help="dataset folder (training layout)")
    p.add_argument(
        "--model",
        default="auto",
        help="architecture to train from scratch (hybrid-lite0, tiny, B-32, B-16, L-14, or an "
        "architecture .json), or weights to start from (file, folder, hub id); default auto: "
        "hybrid-lite0 (pretrained EfficientNet-Lite0 trunk) on a CPU, B-16 on a GPU",
    )
    p.add_argument("--conditioning", default="category", help="category | text | none")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--epochs", type=_positive_int, help="default: 30")
    p.add_argument(
        "--batch-size", type=_positive_int, help="global batch (tiny 64, B-16 420, weights 420)"
    )
    p.add_argument("--lr", type=_positive_float, help="peak learning rate (tiny 1e-3, else 1e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, data order, augmentation")
    p.add_argument("--workers", type=_non_negative_int, help="data loader processes (CPU 0, GPU 8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="auto", help="auto | fp32 | bf16 | fp16 (CUDA)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (1 is fastest here)")
    p.add_argument(
        "--max-minutes",
        type=_positive_float,
        help="time budget: the learning rate anneals to it, then the run validates and ends",
    )
    p.add_argument(
        "--head-only-epochs",
        type=_non_negative_int,
        help="first epochs training only proj and the condition embeddings "
        "(default 1 from weights, 0 from scratch)",
    )
    p.add_argument(
        "--trunk-lr-scale",
        type=float,
        help="hybrids: the pretrained trunk's learning rate as a share of --lr (default 0: "
        "frozen; e.g. 0.1 fine-tunes it, at several times the memory and time)",
    )
    p.add_argument(
        "--val-distractors", type=_non_negative_int, help="validation distractors (default all)"
    )
    p.add_argument(
        "--no-augment", action="store_true", help="no random crop/flip (pad and resize only)"
    )
    p.add_argument(
        "--augment-views",
        type=_non_negative_int,
        help="N >= 1: each image is seen as itself or one of N-1 fixed augmentations, so a "
        "frozen trunk's maps repeat and are memoised; 0: a fresh augmentation every time "
        "(default per model: 0, hybrid-lite0 see docs/training.md)",
    )
    p.add_argument(
        "--same-category",
        type=_non_negative_int,
        default=0,
        help="K >= 1: batches made of runs of K products of one category (in-batch hard "
        "negatives); 0 (default): random batches",
    )
    p.add_argument(
        "--trunk-memo-gb",
        type=float,
        default=4.0,
        help="memory for a frozen trunk's feature maps, each distinct image computed once "
        "(default 4; 0: recompute every time)",
    )
    p.add_argument("--text-encoder", help="frozen sentence encoder for --conditioning text")
    p.add_argument("--cache-dir", help="where the packed training images go (OUT/cache)")
    cir = p.add_argument_group("--task cir (the Combiner; docs/cir.md)")
    cir.add_argument(
        "--hidden", type=_positive_int, help="the Combiner's hidden width H (default 128)"
    )
    cir.add_argument(
        "--temperature",
        type=_positive_float,
        help="InfoNCE temperature against every training image (default 0.02)",
    )
    cir.add_argument(
        "--dropout", type=_fraction, help="dropout on the Combiner's projections (default 0.1)"
    )
    cir.add_argument("--weight-decay", type=non_negative_float, help="AdamW's (default 0.01)")
    zoom = p.add_argument_group("--task locator (docs/training.md, Zoom)")
    zoom.add_argument(
        "--scene-size",
        type=_positive_int,
        help="the resolution the locator reads whole scenes at (default: the model's input "
        "resolution); lets a CondViT embed close-ups at a lower resolution than finding a "
        "small item in a scene needs",
    )
    zoom.add_argument(
        "--pairs",
        type=_positive_int,
        help="the (scene, item) pairs of the training split the locator learns from (default "
        "5000; each distinct scene is read once, a synthetic scene wears four items)",
    )
    zoom.add_argument(
        "--grow",
        type=non_negative_float,
        help="the close-up's margin around a located box, as a share of its longer side "
        "(default: the close-ups that retrieve best on the validation split: one margin of "
        "0.05-0.3 or two, plain or also mirrored, up to --max-views)",
    )
    zoom.add_argument(
        "--max-views",
        type=_positive_int,
        help="the most close-ups a query may be embedded as, their vectors averaged (default "
        "4: two margins, each also mirrored; 1: one close-up, the fastest query)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="require OUT/last and continue it")
    group.add_argument("--overwrite", action="store_true", help="start again, replacing OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace):  # -> TrainConfig
    """The :class:`TrainConfig` of parsed arguments (``ValueError`` names a bad value)."""
    from referred.train.config import TrainConfig

    return TrainConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        conditioning=args.conditioning,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head_only_epochs=args.head_only_epochs,
        augment=not args.no_augment,
        augment_views=args.augment_views,
        trunk_memo_gb=args.trunk_memo_gb,
        same_category=args.same_category,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        max_minutes=args.max_minutes,
        trunk_lr_scale=args.trunk_lr_scale,
        val_distractors=args.val_distractors,
        text_encoder=args.text_encoder,
        cache_dir=args.cache_dir,
    )


def run(args: argparse.Namespace) -> int:
    """``referred train``: 0 when the run finished or stopped resumably, 1 when it failed."""
    given = cir_only_flags_given(args)
    if given and args.task != "cir":
        from referred.cli import UserError

        raise UserError(f"{', '.join(given)} only apply to --task cir (a Combiner's training)")
    locator_only = [
        flag
        for attr, flag in (
            ("scene_size", "--scene-size"),
            ("pairs", "--pairs"),
            ("grow", "--grow"),
            ("max_views", "--max-views"),
        )
        if getattr(args, attr, None) is not None
    ]
    if locator_only and args.task != "locator":
        from referred.cli import UserError

        verb = "is a setting" if len(locator_only) == 1 else "are settings"
        raise UserError(f"{' and '.join(locator_only)} {verb} of --task locator only")
    if args.task == "cir":
        from referred.cli.train_cir import run_cir

        return run_cir(args)
    if args.task == "presence":
        from referred.cli.train_presence import run_presence

        return run_presence(args)
    if args.task == "floor":
        from referred.cli.train_presence import run_floor

        return run_floor(args)
    if args.task == "locator":
        from referred.cli.train_presence import run_locator

        return run_locator(args)
    from referred.train import TrainingError, train
    from referred.train.config import resolve_model_spec

    config = config_from_args(args)
    resolve_model_spec(config.model)  # a bad --model fails before anything is loaded
    mode = "must" if args.resume else "never" if args.overwrite else "auto"
    try:
        result = train(config, resume=mode, progress=not args.no_progress)
    except TrainingError as exc:
        print(f"referred train: {exc}", file=sys.stderr)
        return 1
    best = result.history and max(
        (row.get("val_R@1", float("nan")) for row in result.history), default=None
    )
    state = "finished" if result.finished else "stopped (run again to resume)"
    print(
        f"{state}: {result.epochs_done} epochs, {result.step} steps; best: {result.best} "
        f"(val R@1 {100 * best:.1f}%)"
        if isinstance(best, float)
        else f"{state}: {result.out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m referred.cli.train ...``: the ``train`` verb without the other verbs."""
    parser = argparse.ArgumentParser(prog="referred train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"referred train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (run the same command again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
