"""Fit a presence head on scenes whose worn categories are known, calibrate, measure.

The labels come from ``synth_outfits.parquet`` (``referred data synth`` records every item
drawn in each scene); a dataset without it is grouped by scene URL instead: every product
whose scene it is counts as worn there (on LRVS-F, items worn but not sold are then missed,
so such labels are noisy: say so when reporting). Each scene is asked every category the
model offers (:attr:`referred.query.QueryEncoder.category_choices`); a category is worn when
an item of it is in the scene. Training: the features of every scene once (frozen), the head
by AdamW on binary cross-entropy, the epoch with the best validation AUC kept; then Platt
scaling on the validation split and AUC / ECE on the test split.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from referred.presence.calibration import expected_calibration_error, fit_platt, roc_auc
from referred.presence.features import feature_kind, presence_features
from referred.presence.head import PresenceHead


@dataclass
class FitReport:
    """What fitting measured (fractions in [0, 1]); ``test_auc_by_category`` per name."""

    scenes: dict[str, int]
    categories: list[str]
    epochs_run: int
    best_epoch: int
    valid_auc: float
    test_auc: float
    test_ece_raw: float
    test_ece: float
    valid_ece: float
    platt: tuple[float, float]
    worn_rate: float
    seconds: float
    labels_from: str
    test_auc_by_category: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def worn_by_scene(root: Path) -> tuple[dict[str, set[str]], str]:
    """({scene URL: worn category names}, where the labels came from)."""
    from referred.data.synth import OUTFITS_FILE

    path = Path(root) / OUTFITS_FILE
    if path.is_file():
        import pyarrow.parquet as pq

        t = pq.read_table(path, columns=["URL", "TYPE", "CATEGORIES"]).to_pydict()
        worn = {
            u: {str(c) for c in cats}
            for u, kind, cats in zip(t["URL"], t["TYPE"], t["CATEGORIES"])
            if kind == "COMPLEX"
        }
        return worn, OUTFITS_FILE
    return {}, "scene URLs (products sharing a scene)"


def _scene_records(dataset, split: str, worn: dict[str, set[str]], limit: int | None):
    """(URL, image record, worn categories) of up to ``limit`` distinct scenes of ``split``."""
    grouped = not worn
    found: dict[str, tuple[Any, set[str]]] = {}
    for product in dataset.products(split):
        for image in product.complex:
            if grouped:
                entry = found.setdefault(image.url, (image, set()))
                if product.category:
                    entry[1].add(str(product.category))
            elif image.url in worn and image.url not in found:
                found[image.url] = (image, worn[image.url])
        if limit is not None and len(found) >= limit and not grouped:
            break
    items = list(found.items())[: limit if limit is not None else None]
    return [(url, record, cats) for url, (record, cats) in items]


def _labels(cats: set[str], names: list[str]) -> list[float]:
    from referred.query import _find

    idx = {i for c in cats if (i := _find(c, names)) is not None}
    return [1.0 if i in idx else 0.0 for i in range(len(names))]


def featurize(model, encoder, records, batch: int = 16, log: Callable[[str], None] = print):
    """Features (S, N, C) float16 and labels (S, K) of ``records`` for the condition names."""
    feats, t0 = [], time.perf_counter()
    for i in range(0, len(records), batch):
        chunk = records[i : i + batch]
        pixels = encoder.pixels([r.open() for _, r, _ in chunk])
        feats.append(presence_features(model, pixels).half())
        if (i // batch) % 25 == 0:
            log(f"  features {i + len(chunk)}/{len(records)} ({time.perf_counter() - t0:.0f} s)")
    return torch.cat(feats) if feats else torch.empty(0)


def condition_tokens(model, encoder, names: list[str]) -> torch.Tensor:
    """The model's condition tokens (K, W) for category names (texts for a text model)."""
    conds = encoder.condition_tensor([encoder.parse(category=n) for n in names])
    with torch.no_grad():
        return model.condition_token(conds).float()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _logits(head: PresenceHead, x: torch.Tensor, cond: torch.Tensor, batch: int = 64):
    with torch.no_grad():
        return torch.cat([head(x[i : i + batch].float(), cond) for i in range(0, len(x), batch)])


def fit_presence(
    model,
    data: str | Path,
    *,
    scenes: dict[str, int | None] | None = None,
    epochs: int = 30,
    lr: float = 1e-3,
    batch: int = 32,
    hidden: int = 128,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[PresenceHead, FitReport]:
    """Fit, calibrate and measure a presence head for ``model`` on dataset ``data``.

    ``scenes``: at most this many scenes per split (``train``, ``valid``, ``test``; None: all).
    Raises ValueError when a split has no scenes or a split's labels are all one value."""
    from referred.data import open_dataset
    from referred.query import QueryEncoder

    t_start = time.perf_counter()
    limits = {"train": None, "valid": None, "test": None, **(scenes or {})}
    torch.manual_seed(seed)
    model = model.eval()
    encoder = QueryEncoder(model)
    names = list(encoder.category_choices)
    if not model.config.conditional or not names:
        raise ValueError("a presence head needs a conditioned model with category choices")
    worn, labels_from = worn_by_scene(Path(data))
    dataset = open_dataset(data)
    xs: dict[str, torch.Tensor] = {}
    ys: dict[str, torch.Tensor] = {}
    for split, limit in limits.items():
        records = _scene_records(dataset, split, worn, limit)
        if not records:
            raise ValueError(f"{data}: no scenes in the {split!r} split to fit presence on")
        log(f"{split}: {len(records)} scenes")
        xs[split] = featurize(model, encoder, records, log=log)
        ys[split] = torch.tensor([_labels(c, names) for _, _, c in records])
        if ys[split].min() == ys[split].max():
            raise ValueError(f"{data}: every {split} label is {ys[split].max():.0f}")
    cond = condition_tokens(model, encoder, names)
    head = PresenceHead(
        xs["train"].shape[-1], cond.shape[-1], hidden, feature_kind=feature_kind(model)
    )
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-2)
    best, best_auc, best_epoch = copy.deepcopy(head.state_dict()), -1.0, 0
    x_train, y_train = xs["train"], ys["train"]
    for epoch in range(1, epochs + 1):
        head.train()
        order = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = head.loss(x_train[idx].float(), cond, y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        head.eval()
        auc = roc_auc(ys["valid"].numpy(), _logits(head, xs["valid"], cond).numpy())
        log(f"epoch {epoch}: loss {total / len(x_train):.4f}, validation AUC {auc:.4f}")
        if auc > best_auc:
            best, best_auc, best_epoch = copy.deepcopy(head.state_dict()), auc, epoch
    head.load_state_dict(best)
    head.eval()
    valid_logits = _logits(head, xs["valid"], cond).numpy()
    a, b = fit_platt(valid_logits, ys["valid"].numpy())
    head.a.fill_(a)
    head.b.fill_(b)
    test_logits = _logits(head, xs["test"], cond).numpy()
    y_test = ys["test"].numpy()
    raw, calibrated = _sigmoid(test_logits), _sigmoid(a * test_logits + b)
    valid_cal = _sigmoid(a * valid_logits + b)
    by_category = {
        n: roc_auc(y_test[:, j], test_logits[:, j])
        for j, n in enumerate(names)
        if 0 < y_test[:, j].mean() < 1
    }
    report = FitReport(
        scenes={s: len(x) for s, x in xs.items()},
        categories=names,
        epochs_run=epochs,
        best_epoch=best_epoch,
        valid_auc=best_auc,
        test_auc=roc_auc(y_test, test_logits),
        test_ece_raw=expected_calibration_error(y_test, raw),
        test_ece=expected_calibration_error(y_test, calibrated),
        valid_ece=expected_calibration_error(ys["valid"].numpy(), valid_cal),
        platt=(a, b),
        worn_rate=float(y_train.mean()),
        seconds=time.perf_counter() - t_start,
        labels_from=labels_from,
        test_auc_by_category=by_category,
    )
    return head, report
