"""The synthetic dataset as a fair miniature of LRVS-F: visible sizes, generic captions,
unique products, styles with one held out, and the boxes of worn items."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from referred.data import check_dataset, open_dataset
from referred.data.synth import (
    HELDOUT_DIR,
    HELDOUT_STYLE,
    OUTFITS_FILE,
    PRODUCTS_FILE,
    STYLES,
    SynthConfig,
    write_synthetic_dataset,
)
from referred.data.synth.outfits import plan_outfits
from referred.data.synth.scene import render_scene
from referred.data.synth.styles import training_styles

#: LRVS-F's generic BLIP-2 captions are shared by several products; so must ours be.
MIN_PRODUCTS_PER_CAPTION = 5.0


def test_defaults_are_visible_sizes() -> None:
    config = SynthConfig()
    assert config.size >= 224 and config.scene_side >= 256
    assert SynthConfig(size=32).scene_side == 37  # small for tests, same 8/7 ratio
    assert SynthConfig(size=32, scene_size=40).scene_side == 40


def test_images_have_the_configured_sizes(tmp_path: Path) -> None:
    config = SynthConfig(products=12, distractors=2, size=224, seed=2)
    write_synthetic_dataset(tmp_path / "ds", config)
    ds = open_dataset(tmp_path / "ds")
    for product in ds.products("train"):
        assert product.simple[0].open().size == (224, 224)
        assert all(c.open().size == (256, 256) for c in product.complex)
        assert product.simple[0].meta["WIDTH"] == 224 and product.complex[0].meta["WIDTH"] == 256
    assert all(d.image.open().size == (224, 224) for d in ds.distractors("test"))


def _captions(n: int) -> tuple[list[str], list[str], list]:
    items = [item for o in plan_outfits(SynthConfig(products=n)) for item in o.items]
    return [i.caption() for i in items], [i.caption2() for i in items], items


def test_captions_are_shared_by_several_products_on_10000() -> None:
    """Measured on the plan of 10,000 products (no rendering): products per distinct caption
    (6.5 for each caption at seed 0), and each product is still unique."""
    first, second, items = _captions(10_000)
    for captions in (first, second):
        per_caption = len(captions) / len(set(captions))
        print(f"products per caption: {per_caption:.2f}")
        assert per_caption >= MIN_PRODUCTS_PER_CAPTION
    assert len({(i.colour, i.colour2, i.pattern, i.phase, i.angle) for i in items}) == len(items)


def test_captions_are_shared_on_1000_too() -> None:
    """Fewer products share less (1.56 per caption at 1,000, seed 0): a 1,000-product split
    still has few captions that name one product only."""
    first, _, _ = _captions(1000)
    counts = Counter(first)
    assert len(first) / len(counts) >= 1.4
    assert sum(1 for n in counts.values() if n == 1) / len(first) < 0.5


def test_captions_vary_in_wording_and_name_no_exact_colour() -> None:
    first, second, items = _captions(2000)
    wordings: dict[tuple[str, str], set[str]] = defaultdict(set)
    for caption, item in zip(first, items):
        wordings[(item.colour_name, item.variant)].add(caption)
        assert "#" not in caption and not any(ch.isdigit() for ch in caption)
    assert max(len(w) for w in wordings.values()) >= 3
    starts = Counter(c.split()[0] for c in first + second)
    assert {"a", "an"} <= set(starts) and len(set(second) - set(first)) > len(set(second)) // 2
    assert any(" in " in c for c in second) and any("with" in c for c in first)


def test_styles_and_the_held_out_one() -> None:
    assert HELDOUT_STYLE in STYLES and len(STYLES) >= 5
    assert HELDOUT_STYLE not in training_styles(HELDOUT_STYLE)
    assert set(training_styles(None)) == set(STYLES)
    with pytest.raises(ValueError, match="unknown style 'oil'; expected one of: flat"):
        SynthConfig(heldout_style="oil")


def test_the_held_out_style_never_reaches_training(synth_root: Path) -> None:
    scenes = pq.read_table(synth_root / OUTFITS_FILE).to_pylist()
    photos = pq.read_table(synth_root / PRODUCTS_FILE).to_pylist()
    used = {r["STYLE"] for r in scenes} | {r["STYLE"] for r in photos}
    assert HELDOUT_STYLE not in used
    assert len({r["STYLE"] for r in scenes if r["SPLIT"] == "train"}) >= 3
    held = pq.read_table(synth_root / HELDOUT_DIR / OUTFITS_FILE).to_pylist()
    assert held and {r["STYLE"] for r in held} == {HELDOUT_STYLE}
    assert {r["SPLIT"] for r in held} == {"test"}


def test_the_held_out_set_is_the_test_split_in_another_style(synth_root: Path) -> None:
    report = check_dataset(synth_root / HELDOUT_DIR)
    assert report.ok, [str(p) for p in report.stats.problems]
    main = {p.product_id: p for p in open_dataset(synth_root).products("test")}
    held = {p.product_id: p for p in open_dataset(synth_root / HELDOUT_DIR).products("test")}
    assert held.keys() == main.keys()
    for pid, product in held.items():
        assert product.simple[0].read_bytes() == main[pid].simple[0].read_bytes()
        assert {c.url for c in product.complex}.isdisjoint(c.url for c in main[pid].complex)
    for name in ("TEST/dist_0.parquet", "distractors_test_metadata.parquet", "bootstrap_IDs.pkl"):
        assert (synth_root / HELDOUT_DIR / name).read_bytes() == (synth_root / name).read_bytes()


def test_no_held_out_style(tmp_path: Path) -> None:
    config = SynthConfig(products=12, distractors=2, size=24, heldout_style=None, seed=4)
    report = write_synthetic_dataset(tmp_path / "ds", config)
    assert not (tmp_path / "ds" / HELDOUT_DIR).exists() and report.heldout_scenes == 0


def test_boxes_are_recorded_and_inside_the_scene(synth_root: Path) -> None:
    for row in pq.read_table(synth_root / OUTFITS_FILE).to_pylist():
        side = row["WIDTH"]
        assert row["HEIGHT"] == side
        n = len(row["PRODUCT_IDS"])
        assert len(row["BOXES"]) == len(row["UNIT_BOXES"]) == len(row["VISIBLE"]) == n
        for category, box, units, seen in zip(
            row["CATEGORIES"], row["BOXES"], row["UNIT_BOXES"], row["VISIBLE"]
        ):
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= side and 0 <= y0 < y1 <= side, (row["URL"], box)
            assert len(units) == (2 if category in ("Feet", "Hands") else 1) or row["TYPE"] != (
                "COMPLEX"
            )
            for u in units:
                assert x0 <= u[0] and y0 <= u[1] and u[2] <= x1 and u[3] <= y1
            assert 0.0 < seen <= 1.0


def test_boxes_cover_the_items_pixels() -> None:
    """Drawing one outfit twice, with and without an item, changes pixels only inside the
    item's recorded box (same generator, flat style, no JPEG loss that matters)."""
    outfit = next(o for o in plan_outfits(SynthConfig(products=40)) if len(o.items) >= 4)

    def draw(items):
        rng = np.random.default_rng(11)
        scene = render_scene(items, 128, rng, quality=100, partial=False, style="flat")[0]
        return scene, np.asarray(Image.open(io.BytesIO(scene.jpeg))).astype(int)

    full, with_all = draw(outfit.items)
    last = len(outfit.items) - 1
    _, without = draw(outfit.items[:last])
    changed = np.abs(with_all - without).max(axis=2) > 40  # (H, W)
    x0, y0, x1, y1 = full.boxes[last]
    inside = changed[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2].sum()
    assert changed.sum() > 0 and inside / changed.sum() > 0.97
