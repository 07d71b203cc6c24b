"""Training benchmarks: test recall of trained runs, and training-step throughput.

``evaluate``: load ``RUN/best`` of each run, compute test R@K on the dataset's test split at
several distractor counts, plot every run's validation R@1 per epoch (from ``metrics.csv``)
and print a Markdown table::

    python scripts/bench_train.py evaluate runs/tiny-cat runs/tiny-none --data synth \\
        --counts 0,2000 --plot docs/img/train-tiny-curve.png --out runs/learning.json

``throughput``: samples/s of full training steps (conditioned scene forward + product forward,
symmetric InfoNCE, backward, AdamW) for ``referred``'s CondViT and for a reference-style CLIP
ViT built on ``nn.MultiheadAttention`` (``scripts/clip_reference.py``), same weights, same
batch, CPU fp32 and bf16 autocast::

    python scripts/bench_train.py throughput --arch B-16 --batch 8 --steps 3 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_reference import ClipCondViT

import referred
from referred.data import open_dataset
from referred.model import cpu
from referred.model.cpu_linear import use_onednn_linears
from referred.train.loss import info_nce
from referred.train.validate import evaluate_split


# -- evaluate --------------------------------------------------------------------------------
def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def evaluate(
    runs: list[Path], data: Path, split: str, counts: tuple[int, ...], heldout: Path | None = None
) -> list[dict]:
    """Test metrics of each run's ``best/``; with ``heldout`` (a dataset drawn in a rendering
    style kept out of training, e.g. ``DATA/heldout_style``) the same on its test split."""
    from referred.model.trunk_memo import TrunkMemo

    dataset = open_dataset(data)
    results = []
    for run in runs:
        model = referred.load_model(run / "best")
        if model.trunk is not None:  # a hybrid: each image's trunk maps computed once here
            model.trunk_memo = TrunkMemo(8_000_000_000)
        t0 = time.perf_counter()
        metrics = evaluate_split(model, dataset, split, distractor_counts=counts)
        history = _history(run)
        train_cfg = json.loads((run / "train_config.json").read_text())
        results.append(
            {
                "run": str(run),
                "conditioning": model.config.conditioning,
                "epochs": len(history),
                "train_seconds": sum(float(r["epoch_seconds"]) for r in history),
                "wall_seconds": float(history[-1]["wall_seconds"]),
                "best_epoch": json.loads((run / "best" / "config.json").read_text())["trained"][
                    "epoch"
                ],
                "val_R@1": [float(r["val_R@1"]) for r in history],
                "test": {str(n): m for n, m in metrics["sweep"].items()},
                "n_test_queries": metrics["n_queries"],
                "eval_seconds": time.perf_counter() - t0,
                "train_config": train_cfg["train"],
            }
        )
        if model.config.cond_dim is not None:  # a text model: also by category name, and
            by_name = evaluate_split(  # the caption without the scene (a white image)
                model, dataset, split, distractor_counts=counts, texts="category"
            )
            results.append(
                {
                    **results[-1],
                    "conditioning": "text: category name",
                    "test": {str(n): m for n, m in by_name["sweep"].items()},
                }
            )
            results[-2]["conditioning"] = "text: first caption"
            results[-2]["caption_on_white_R@1"] = caption_on_white(model, dataset, split)
        if heldout is not None:
            texts = "category"  # the chip's query; a category model takes its index
            other = evaluate_split(
                model, open_dataset(heldout), "test", distractor_counts=counts, texts=texts
            )
            results.append(
                {
                    **results[-1],
                    "conditioning": f"{results[-1]['conditioning']}, held-out style",
                    "test": {str(n): m for n, m in other["sweep"].items()},
                    "n_test_queries": other["n_queries"],
                }
            )
            results[-1].pop("caption_on_white_R@1", None)
    return results


def caption_on_white(model, dataset, split: str) -> float:
    """Test R@1 (+0) of queries made of the first caption and a plain white image: how much a
    text model retrieves from the words alone."""
    from PIL import Image

    products = [p for p in dataset.products(split) if p.captions and p.simple]
    targets = model.encode_targets([p.simple[0].read_bytes() for p in products])
    white = [Image.new("RGB", (64, 64), "white")] * len(products)
    queries = model.encode_queries(white, [p.captions[0] for p in products])
    hits = (queries @ targets.T).argmax(dim=1) == torch.arange(len(products))
    return float(hits.float().mean())


def plot(results: list[dict], path: Path) -> None:
    """Validation R@1 and R@10 per epoch of every run (from its metrics.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120)
    runs = {r["run"]: r for r in reversed(results)}  # one curve per run (the first entry)
    for r in reversed(runs.values()):
        history = _history(Path(r["run"]))
        epochs = [int(h["epoch"]) for h in history]
        label = f"{Path(r['run']).name} ({r['conditioning']})"
        for ax, key in zip(axes, ("val_R@1", "val_R@10")):
            ax.plot(epochs, [100 * float(h[key]) for h in history], marker="o", ms=3, label=label)
    for ax, key in zip(axes, ("R@1", "R@10")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {key} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("CondViT runs on synthetic LRVS-F data: validation recall per epoch")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def table(results: list[dict]) -> str:
    counts = list(results[0]["test"])
    cells = [f"R@1 +{n} | R@10 +{n}" for n in counts]
    head = "| run | conditioning | epochs | wall time (steps only) | " + " | ".join(cells)
    lines = [head + " | Cat@1 |", "|" + "---|" * (5 + 2 * len(counts))]
    for r in results:
        scores = " | ".join(
            f"{100 * r['test'][n]['R@1']:.1f} | {100 * r['test'][n]['R@10']:.1f}" for n in counts
        )
        lines.append(
            f"| {Path(r['run']).name} | {r['conditioning']} | {r['epochs']} | "
            f"{r['wall_seconds'] / 60:.1f} min ({r['train_seconds'] / 60:.1f}) | {scores} | "
            f"{100 * r['test'][counts[-1]]['Cat@1']:.1f} |"
        )
    return "\n".join(lines)


# -- throughput ------------------------------------------------------------------------------
class ReferencePair(torch.nn.Module):
    """The reference-style model for a pair: conditioned scene, unconditioned product."""

    def __init__(self, ref: ClipCondViT) -> None:
        super().__init__()
        self.ref = ref

    def plain(self, x: torch.Tensor) -> torch.Tensor:
        r = self.ref  # CLIP's VisionTransformer.forward, line by line, without the cond token
        x = r.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = r.class_embedding.to(x.dtype) + torch.zeros(
            x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device
        )
        x = torch.cat([cls, x], dim=1) + r.positional_embedding.to(x.dtype)
        x = r.ln_pre(x).permute(1, 0, 2)
        x = r.transformer(x).permute(1, 0, 2)
        return r.ln_post(x[:, 0, :]) @ r.proj

    def forward(self, scenes, products, cond):
        return self.ref(scenes, cond), self.plain(products)


class OursPair(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, scenes, products, cond):
        return self.model(scenes, cond), self.model(products)


def make_step(
    pair: torch.nn.Module, batch: int, res: int, precision: str, device: torch.device | str = "cpu"
) -> Callable[[], float]:
    """A call running one full training step of ``pair`` (already on ``device``): autocast
    forward, symmetric InfoNCE, backward, AdamW; it returns the step's seconds."""
    from referred.train.setup import autocast

    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(0)
    scenes = torch.randn(batch, 3, res, res, device=device, generator=g)
    products = torch.randn(batch, 3, res, res, device=device, generator=g)
    cond = torch.randint(0, 10, (batch,), device=device, generator=g)
    opt = torch.optim.AdamW(pair.parameters(), lr=1e-5)
    logit_scale = torch.nn.Parameter(torch.tensor(4.6, device=device))

    def step() -> float:
        _sync(device)
        t0 = time.perf_counter()
        with autocast(device, precision):
            q, t = pair(scenes, products, cond)
        loss = info_nce(F.normalize(q.float(), dim=-1), F.normalize(t.float(), dim=-1), logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    return step


def time_steps(
    pair: torch.nn.Module,
    batch: int,
    res: int,
    steps: int,
    precision: str,
    device: torch.device | str = "cpu",
) -> tuple[float, list[float]]:
    """Samples/s (median over ``steps``, after one warm-up step) of full training steps of
    ``pair`` alone (see :func:`make_step`)."""
    step = make_step(pair, batch, res, precision, device)
    step()  # warms up allocators and kernels
    times = [step() for _ in range(steps)]
    return batch / statistics.median(times), times


def time_interleaved(steps_of: dict[str, Callable[[], float]], steps: int) -> dict[str, list]:
    """Seconds per step of each model, the models taking turns (one warm-up step each, then
    ``steps`` rounds in an order that rotates), so drift on a shared machine hits all alike."""
    for step in steps_of.values():
        step()
    names, times = list(steps_of), {name: [] for name in steps_of}
    for r in range(steps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(steps_of[name]())
    return times


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(arch: str, batch: int, steps: int, precisions: list[str]) -> list[dict]:
    ours = referred.create_model(arch, "category", seed=0).train()
    try:
        ref = ClipCondViT.from_condvit(ours).train()
    except ValueError as exc:  # e.g. tiny's conv stem: no reference-style counterpart
        print(f"no reference model: {exc}", flush=True)
        ref = None
    onednn = copy.deepcopy(ours)
    use_onednn_linears(onednn, enabled=True)  # referred train's float32 path where oneDNN wins
    res = ours.config.input_resolution
    print(f"cpu: {cpu.summary()}", flush=True)
    if "bf16" in precisions and cpu.bf16_problem():
        print(f"bf16 rows skipped: {cpu.bf16_problem()}", flush=True)
        precisions = [p for p in precisions if p != "bf16"]
    rows = []
    for precision in precisions:
        models = [("referred CondViT (SDPA)", OursPair(ours))]
        if ref is not None:
            models.append(("reference (nn.MultiheadAttention)", ReferencePair(ref)))
        if precision == "fp32":  # under autocast the oneDNN linears fall back to F.linear
            models.append(("referred CondViT (SDPA, oneDNN linears)", OursPair(onednn)))
        steppers = {name: make_step(pair, batch, res, precision) for name, pair in models}
        for name, times in time_interleaved(steppers, steps).items():
            rate = batch / statistics.median(times)
            rows.append(
                {
                    "model": name,
                    "precision": precision,
                    "samples_per_s": rate,
                    "step_seconds": times,
                }
            )
            print(
                f"{name:42s} {precision}: {rate:.3f} samples/s "
                f"(steps {', '.join(f'{t:.1f}' for t in times)} s)",
                flush=True,
            )
        if ref is not None:
            base = next(
                r for r in rows if r["precision"] == precision and "reference" in r["model"]
            )
            for r in rows:
                if r["precision"] == precision:
                    r["x_reference"] = r["samples_per_s"] / base["samples_per_s"]
            print(
                "  x reference: "
                + ", ".join(
                    f"{r['model']} {r['x_reference']:.2f}"
                    for r in rows
                    if r["precision"] == precision
                ),
                flush=True,
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="test recall of runs + validation curve plot")
    ev.add_argument("runs", nargs="+", type=Path)
    ev.add_argument("--data", type=Path, required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--counts", default="0", help="distractor counts, e.g. 0,2000")
    ev.add_argument("--plot", type=Path)
    ev.add_argument("--heldout", type=Path, help="a held-out-style dataset (DATA/heldout_style)")
    ev.add_argument("--out", type=Path)
    tp = sub.add_parser("throughput", help="training-step samples/s, ours vs reference")
    tp.add_argument("--arch", default="B-16")
    tp.add_argument("--batch", type=int, default=8)
    tp.add_argument("--steps", type=int, default=3)
    tp.add_argument("--threads", type=int, default=1)
    tp.add_argument("--precisions", default="fp32,bf16")
    tp.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(getattr(args, "threads", 1))
    if args.command == "evaluate":
        counts = tuple(int(c) for c in args.counts.split(","))
        result: object = evaluate(args.runs, args.data, args.split, counts, args.heldout)
        print(table(result))  # type: ignore[arg-type]
        for r in result:  # type: ignore[attr-defined]
            if "caption_on_white_R@1" in r:
                print(
                    f"{Path(r['run']).name}: R@1 (+0) of the caption on a white image "
                    f"{100 * r['caption_on_white_R@1']:.1f}%"
                )
        if args.plot:
            plot(result, args.plot)  # type: ignore[arg-type]
    else:
        result = throughput(args.arch, args.batch, args.steps, args.precisions.split(","))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
