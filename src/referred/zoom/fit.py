"""Fit a locator on scenes whose items' boxes are known, and measure it.

The boxes come from :func:`referred.data.boxes.read_item_boxes` (the synthetic generator's
record, or a dataset's ``item_boxes.csv``); LRVS-F itself has no boxes: a locator for it needs
boxes from elsewhere (a detector, annotations). Training: the frozen features of each distinct
scene once (shared by the items worn in it), the head by AdamW on :meth:`Locator.loss` with a
cosine schedule, the epoch with the best validation IoU kept; then IoU on the test split, and
the close-ups (margins, mirrored or not: :class:`referred.zoom.views.Views`) that retrieve best
around the located boxes of the validation pairs
(:func:`referred.zoom.calibrate.calibrate_views`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from referred.data.boxes import read_item_boxes
from referred.presence.fit import condition_tokens
from referred.zoom.boxes import from_square, iou, to_square
from referred.zoom.calibrate import DEFAULT, GROWS, MAX_VIEWS, calibrate_views, model_encoder
from referred.zoom.head import Locator, grid_of
from referred.zoom.views import Views


@dataclass
class LocatorReport:
    """What fitting measured: pairs per split, mean IoU and the share with IoU > 0.5, and the
    close-ups chosen (``views``: :meth:`referred.zoom.views.Views.record`) with the
    validation R@1 of each candidate tried (``view_recall``, by :meth:`Views.label`)."""

    pairs: dict[str, int]
    epochs_run: int
    best_epoch: int
    valid_iou: float
    test_iou: float
    test_iou_over_half: float
    seconds: float
    boxes_from: str
    views: dict[str, Any] = field(default_factory=DEFAULT.record)
    view_recall: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BoxPair(NamedTuple):
    """A scene, the product worn in it, its category and the item's box (pixels)."""

    image: Any  # the scene's image record
    category: str
    box: tuple
    product: Any


def box_pairs(dataset, split: str, boxes: dict, limit: int | None) -> list[BoxPair]:
    """Up to ``limit`` (scene, product) pairs of ``split`` whose box is known."""
    pairs = []
    for product in dataset.products(split):
        for image in product.complex:
            box = boxes.get((image.url, str(product.product_id)))
            if box is not None and product.category:
                pairs.append(BoxPair(image, str(product.category), box, product))
        if limit is not None and len(pairs) >= limit:
            break
    return pairs[:limit]


def _encode(model, encoder, pairs, names, log, size: int, batch: int = 16):
    """Features (P, N, C) float16 of the scenes at ``size`` px, category indices (P,), boxes
    (P, 4) in square fractions. A scene wears several items (four on average in the synthetic
    data): each distinct scene goes through the model once, its pairs share its features."""
    from referred.presence.features import presence_features
    from referred.query import _find

    row_of: dict[Any, int] = {}
    scenes: list[BoxPair] = []  # the first pair of each distinct scene
    for pair in pairs:
        key = scene_key(pair)
        if key not in row_of:
            row_of[key] = len(scenes)
            scenes.append(pair)
    feats, sizes, t0 = [], [], time.perf_counter()
    for i in range(0, len(scenes), batch):
        images = [pair.image.open() for pair in scenes[i : i + batch]]
        feats.append(presence_features(model, encoder.pixels(images, size)).half())
        sizes += [im.size for im in images]
        if (i // batch) % 50 == 0:
            done, seconds = i + len(images), time.perf_counter() - t0
            log(f"  features {done}/{len(scenes)} scenes ({seconds:.0f} s)")
    rows = [row_of[scene_key(pair)] for pair in pairs]
    squares = [to_square(pair.box, sizes[r]) for pair, r in zip(pairs, rows)]
    cats = []
    for pair in pairs:
        index = _find(pair.category, names)
        if index is None:
            raise ValueError(f"category {pair.category!r} is not one of the model's {names}")
        cats.append(index)
    features = torch.cat(feats)[torch.tensor(rows, dtype=torch.long)]
    return features, torch.tensor(cats), torch.tensor(squares, dtype=torch.float32)


def scene_key(pair: BoxPair) -> Any:
    """What makes two pairs' scenes the same image: its URL (the boxes are keyed by it)."""
    return pair.image.url or id(pair.image)


def _predict(head: Locator, x, tokens, batch: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                head(x[i : i + batch].float(), tokens[i : i + batch])[1]
                for i in range(0, len(x), batch)
            ]
        )


def box_ious(pred: torch.Tensor, true: torch.Tensor) -> np.ndarray:
    """IoU of each predicted and true ``(cx, cy, w, h)`` box (same frame)."""
    unit = (1, 1)
    return np.array([iou(from_square(p, unit), from_square(t, unit)) for p, t in zip(pred, true)])


def fit_locator(
    model,
    data: str | Path,
    *,
    pairs: dict[str, int | None] | None = None,
    epochs: int = 8,
    lr: float = 1e-3,
    batch: int = 64,
    hidden: int = 128,
    seed: int = 0,
    scene_size: int | None = None,
    grows: Sequence[float] | None = GROWS,
    max_views: int = MAX_VIEWS,
    log: Callable[[str], None] = print,
) -> tuple[Locator, LocatorReport]:
    """Fit and measure a locator for ``model`` on dataset ``data``.

    ``pairs``: at most this many (scene, product) pairs per split (``train``, ``valid``,
    ``test``); defaults 5,000 / 500 / 500. ``scene_size``: the resolution the locator reads
    scenes at (default: the model's input resolution; a model embedding close-ups at a low
    resolution may find items better at a higher one). ``grows``: the close-up margins tried
    around the located validation boxes, alone and in pairs, plain and mirrored, with at most
    ``max_views`` close-ups per query; the best by R@1 kept in the report (``None``: no search,
    one close-up at the training margin; a single one: one close-up at that one). Raises
    ValueError when the dataset has no boxes or a split has no pair with a box."""
    from referred.data import open_dataset
    from referred.query import QueryEncoder

    t_start = time.perf_counter()
    limits = {"train": 5000, "valid": 500, "test": 500, **(pairs or {})}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = model.eval()
    encoder = QueryEncoder(model)
    names = list(encoder.category_choices)
    if not model.config.conditional or not names:
        raise ValueError("a locator needs a conditioned model with category choices")
    own = model.config.preprocess.size
    if scene_size is not None and (int(scene_size) != scene_size or scene_size < 1):
        raise ValueError(f"scene_size must be a positive integer, got {scene_size!r}")
    size = own if scene_size is None else int(scene_size)
    if size != own and getattr(model, "trunk", None) is None:
        raise ValueError(
            f"scene_size {size} needs a hybrid CondViT (a convolutional trunk reads scenes of "
            f"any size); this model's patch tokens are tied to its {own} px"
        )
    boxes, boxes_from = read_item_boxes(data)
    dataset = open_dataset(data)
    tokens = condition_tokens(model, encoder, names)  # (K, W)
    xs, cs, ys, found_pairs = {}, {}, {}, {}
    for split, limit in limits.items():
        found = box_pairs(dataset, split, boxes, limit)
        if not found:
            raise ValueError(f"{data}: no scene of the {split!r} split has a known item box")
        log(f"{split}: {len(found)} (scene, item) pairs with boxes")
        found_pairs[split] = found
        xs[split], cs[split], ys[split] = _encode(model, encoder, found, names, log, size)
    grid = grid_of(xs["train"])
    head = Locator(
        xs["train"].shape[-1], tokens.shape[-1], grid, hidden, None if size == own else size
    )
    best_epoch, best_iou = train_head(
        head,
        (xs["train"], cs["train"], ys["train"]),
        (xs["valid"], cs["valid"], ys["valid"]),
        tokens,
        epochs=epochs,
        lr=lr,
        batch=batch,
        rng=rng,
        log=log,
    )
    test = box_ious(_predict(head, xs["test"], tokens[cs["test"]]), ys["test"])
    views, recalls = DEFAULT if not grows else Views((float(grows[0]),)), None
    if grows is not None and len(grows) > 1:
        located = _predict(head, xs["valid"], tokens[cs["valid"]])
        views, recalls = _calibrate(model, found_pairs["valid"], located, grows, max_views, log)
    report = LocatorReport(
        pairs={s: len(x) for s, x in xs.items()},
        epochs_run=epochs,
        best_epoch=best_epoch,
        valid_iou=best_iou,
        test_iou=float(test.mean()),
        test_iou_over_half=float((test > 0.5).mean()),
        seconds=time.perf_counter() - t_start,
        boxes_from=boxes_from,
        views=views.record(),
        view_recall=None if recalls is None else {v.label(): r for v, r in recalls.items()},
    )
    return head, report


def train_head(
    head: Locator,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    tokens: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch: int,
    rng: np.random.Generator,
    log: Callable[[str], None] = print,
    overlap: float = 2.0,
) -> tuple[int, float]:
    """Train ``head`` on (features, category indices, boxes) with AdamW and a cosine schedule,
    ``overlap`` the weight of its loss's overlap term; keep the epoch with the best validation
    IoU (loaded, the head left in eval mode) → (that epoch, its IoU). Raises ValueError when the
    loss goes non-finite (the lr is named)."""
    x, cats, boxes = train
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.05)
    n = len(x)
    per_epoch = max(n // batch, 1)
    total, step = epochs * per_epoch, 0
    best, best_iou, best_epoch = copy.deepcopy(head.state_dict()), -1.0, 0
    for epoch in range(1, epochs + 1):
        head.train()
        order = torch.from_numpy(rng.permutation(n))
        for i in range(per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = head.loss(x[idx].float(), tokens[cats[idx]], boxes[idx], overlap)
            if not torch.isfinite(loss):  # else every later IoU is NaN and nothing is learnt
                raise ValueError(
                    f"the locator's loss is {loss.item()} at step {step} of epoch {epoch}: "
                    f"training diverged at lr {lr:g}; fit it again with a lower lr"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        head.eval()
        v = float(box_ious(_predict(head, valid[0], tokens[valid[1]]), valid[2]).mean())
        log(f"epoch {epoch}: loss {loss.item():.4f}, validation IoU {v:.4f}")
        if v > best_iou:
            best, best_iou, best_epoch = copy.deepcopy(head.state_dict()), v, epoch
    head.load_state_dict(best)
    head.eval()
    return best_epoch, best_iou


def _calibrate(model, pairs: list[BoxPair], located: torch.Tensor, grows, max_views, log):
    """:func:`calibrate_views` on validation pairs whose product has a photo (each product's
    first photo in the gallery)."""
    keep = [i for i, pair in enumerate(pairs) if pair.product.simple]
    if not keep:
        log("no validation product has a photo: the close-ups stay the default")
        return DEFAULT, None
    rows: dict[str, int] = {}
    products, truth = [], []
    for i in keep:
        product = pairs[i].product
        if str(product.product_id) not in rows:
            rows[str(product.product_id)] = len(products)
            products.append(product.simple[0].open())
        truth.append(rows[str(product.product_id)])
    opened: dict[Any, Any] = {}  # a scene wears several items: decoded once
    for i in keep:
        if scene_key(pairs[i]) not in opened:
            opened[scene_key(pairs[i])] = pairs[i].image.open()
    scenes = [opened[scene_key(pairs[i])] for i in keep]
    cats = [pairs[i].category for i in keep]
    views, recalls = calibrate_views(
        model_encoder(model), scenes, cats, located[keep], products, truth, grows, max_views
    )
    shown = ", ".join(f"{v.label()}: {100 * r:.1f}%" for v, r in recalls.items())
    log(f"close-ups by validation R@1 ({len(keep)} pairs): {shown}; kept {views.label()}")
    return views, recalls
