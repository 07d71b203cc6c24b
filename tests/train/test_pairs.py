"""Pair sampling: the packed index, the augmentation, the data order and its sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from referred.data import open_dataset
from referred.train.index import DataError, build_pair_index, load_or_build
from referred.train.pairs import (
    AugmentConfig,
    EpochBatches,
    PairDataset,
    augment,
    crop_box,
    grouped_order,
    view_key,
)
from tests.train.conftest import FIXTURES


def test_crop_box_respects_scale_ratio_and_bounds():
    cfg = AugmentConfig(size=64)
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = crop_box(100, 100, cfg, rng)
        w, h = right - left, bottom - top
        assert 0 <= left < right <= 100 and 0 <= top < bottom <= 100
        assert 0.78 <= w * h / 100**2 <= 1.0
        assert 0.7 <= w / h <= 1.4


def test_augment_pads_white_crops_flips_and_is_seeded():
    img = Image.new("RGB", (40, 20), (255, 0, 0))  # wide: padded with white above and below
    cfg = AugmentConfig(size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    a = augment(img, cfg, np.random.default_rng(3))
    assert a.shape == (3, 16, 16) and a.dtype == np.uint8
    assert (a[:, 0, :] == 255).all() and (a[0, 8, :] == 255).all() and (a[1, 8, :] < 30).all()
    np.testing.assert_array_equal(a, augment(img, cfg, np.random.default_rng(3)))
    half = Image.new("RGB", (16, 16), (0, 0, 0))
    half.paste((255, 255, 255), (0, 0, 8, 16))  # left half white
    flips = {int(augment(half, cfg, np.random.default_rng(s))[0, 8, 0]) for s in range(20)}
    assert flips == {0, 255}  # some draws flipped, some did not


def test_epoch_batches_shard_disjointly_and_resume_mid_epoch():
    full = list(EpochBatches(50, 4, seed=1, epoch=2))
    assert len(full) == 12 and all(len(b) == 4 for b in full)
    assert list(EpochBatches(50, 4, seed=1, epoch=2)) == full  # same order every time
    assert list(EpochBatches(50, 4, seed=1, epoch=3)) != full
    assert list(EpochBatches(50, 4, seed=1, epoch=2, start=5)) == full[5:]
    ranks = [list(EpochBatches(50, 4, 1, 2, rank=r, world_size=3)) for r in range(3)]
    assert {len(r) for r in ranks} == {4}  # 50 // 12 batches each, equal
    seen = [i for r in ranks for b in r for i in b]
    assert len(seen) == len(set(seen)) == 48


def test_grouped_order_is_a_permutation_in_runs_of_one_label():
    labels = np.repeat([0, 1, 2, -1], [13, 8, 3, 6])
    order = grouped_order(labels, 4, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(30))
    runs = [labels[order[i : i + 4]] for i in range(0, 28, 4)]
    pure = [r for r in runs if len(set(r.tolist())) == 1]
    assert len(pure) >= 3 + 2 + 1  # 13 → 3 runs of 4, 8 → 2, 6 (unknown) → 1
    uneven = np.repeat([0, 1], [5, 8])  # one position left over: it goes last, so the
    for seed in range(20):  # three runs of 4 before it stay aligned to multiples of 4
        o = grouped_order(uneven, 4, np.random.default_rng(seed))
        assert all(len(set(uneven[o[i : i + 4]].tolist())) == 1 for i in (0, 4, 8))
    with pytest.raises(ValueError, match="run length"):
        grouped_order(labels, 0, np.random.default_rng(0))


def test_grouped_batches_hold_runs_of_one_category_on_every_rank():
    labels = np.repeat(np.arange(5), 40)  # 200 positions, 5 categories
    plain = list(EpochBatches(200, 16, seed=1, epoch=0, labels=labels))
    grouped = list(EpochBatches(200, 16, seed=1, epoch=0, labels=labels, group=8))
    distinct = [len(set(labels[b].tolist())) for b in grouped]
    assert max(distinct) <= 2  # two runs of 8
    assert min(len(set(labels[b].tolist())) for b in plain) >= 3  # random: most categories
    ranks = [list(EpochBatches(200, 8, 1, 0, r, 2, labels=labels, group=4)) for r in range(2)]
    seen = [i for r in ranks for b in r for i in b]
    assert len(seen) == len(set(seen)) == 192  # disjoint shares, 200 // 16 batches each
    assert all(len(set(labels[b].tolist())) <= 2 for r in ranks for b in r)
    with pytest.raises(ValueError, match="one label per position"):
        EpochBatches(200, 16, 1, 0, group=8)


def test_index_packs_pairs_and_counts_what_it_skips(tmp_path):
    ds = open_dataset(FIXTURES / "training_corrupt")
    index = build_pair_index(ds, "train", tmp_path / "idx")
    assert index.product_ids == ["101", "102", "104"]
    assert index.skipped["missing-simple"] == 1 and index.skipped["truncated-tar"] == 1
    assert len(index.complex_rows(1)) == 2 and len(index.simple_rows(1)) == 1
    product = next(p for p in ds.products("train") if p.product_id == "102")
    assert index.read(index.simple_rows(1)[0]) == product.simple[0].read_bytes()
    again = load_or_build(ds, "train", tmp_path / "cache", build=True)
    assert load_or_build(ds, "train", tmp_path / "cache", build=False).folder == again.folder


def test_no_pairs_and_metadata_only_layouts_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no product of the 'catalog' split has both"):
        build_pair_index(open_dataset(FIXTURES / "catalog"), "catalog", tmp_path / "a")
    with pytest.raises(DataError, match="metadata-only layout"):
        build_pair_index(open_dataset(FIXTURES / "hf"), "train", tmp_path / "b")


def test_pairs_are_deterministic_and_corrupt_images_are_skipped(tmp_path):
    ds = open_dataset(FIXTURES / "training_corrupt")  # product 102: one of 2 scenes truncated
    index = build_pair_index(ds, "train", tmp_path / "idx")
    data = PairDataset(index, np.arange(3), np.array([0, 1, 2]), AugmentConfig(size=32), seed=0)
    seen_bad = 0
    for epoch in range(8):
        data.set_epoch(epoch)
        items = [data[i] for i in range(3)]
        for a, b in zip(items, [data[i] for i in range(3)]):
            assert a.keys() == b.keys()
            same = (torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
            assert all(same)
        assert [int(it["product"]) for it in items] == [0, 1, 2]  # 102's other scene is used
        assert [int(it["replaced"]) for it in items] == [0, 0, 0]
        seen_bad += int(items[1]["bad_images"])
    assert seen_bad > 0  # the truncated scene was drawn, counted, and skipped


def test_a_product_without_any_decodable_image_is_replaced(tmp_path, monkeypatch):
    index = build_pair_index(open_dataset(FIXTURES / "training"), "train", tmp_path / "idx")
    read = index.read
    monkeypatch.setattr(index, "read", lambda row: b"junk" if row == 0 else read(row))
    data = PairDataset(index, np.arange(3), None, AugmentConfig(size=32), seed=0)
    item = data[0]  # product 0's only SIMPLE image is junk: product 1 stands in
    assert int(item["product"]) == 1 and int(item["replaced"]) == 1
    assert int(item["bad_images"]) == 1 and int(item["cond"]) == -1


def test_text_conditions_are_the_category_name_and_the_captions(synth_data, tmp_path):
    from referred.categories import LRVSF_CATEGORIES
    from referred.train.captions import product_texts

    ds = open_dataset(synth_data)
    index = build_pair_index(ds, "train", tmp_path / "idx")
    texts, cond = product_texts(index)
    assert len(texts) == len(set(texts))  # a bank row per distinct text
    for i in range(len(index)):
        mine = [texts[r] for r in cond.rows[cond.start[i] : cond.start[i + 1]]]
        category = LRVSF_CATEGORIES[int(index.categories[i])]
        assert mine[0] == category  # the bare category name, as the service sends it
        assert mine[1:] == [c for c in index.product_captions(i) if c != category]
        assert len(mine) >= 2  # synthetic products have captions


def test_fixed_views_repeat_across_epochs_and_view_0_is_the_plain_image(synth_data, tmp_path):
    index = build_pair_index(open_dataset(synth_data), "train", tmp_path / "idx")
    cfg = AugmentConfig(size=32)
    fixed = PairDataset(index, np.arange(3), None, cfg, seed=0, views=3)
    fresh = PairDataset(index, np.arange(3), None, cfg, seed=0)
    plain = PairDataset(index, np.arange(3), None, AugmentConfig(size=32, enabled=False), seed=0)
    seen_fixed, seen_fresh = set(), set()
    for epoch in range(12):
        for data in (fixed, fresh):
            data.set_epoch(epoch)
        seen_fixed.add(fixed[0]["simple"].numpy().tobytes())
        seen_fresh.add(fresh[0]["simple"].numpy().tobytes())
    assert len(seen_fixed) <= 3 < len(seen_fresh)  # a synthetic product has one SIMPLE image
    assert plain[0]["simple"].numpy().tobytes() in seen_fixed  # view 0: the image itself
    with pytest.raises(ValueError, match="views must be >= 0"):
        PairDataset(index, np.arange(3), None, cfg, seed=0, views=-1)


def test_a_fixed_view_is_named_by_its_key_and_not_decoded_once_known(synth_data, tmp_path):
    index = build_pair_index(open_dataset(synth_data), "train", tmp_path / "idx")
    cfg = AugmentConfig(size=32)
    fixed = PairDataset(index, np.arange(3), None, cfg, seed=0, views=2)
    fresh = PairDataset(index, np.arange(3), None, cfg, seed=0)
    assert fresh[0]["simple_key"] == b"" and fresh[0]["simple_decoded"]  # drawn afresh
    item = fixed[0]
    assert len(item["simple_key"]) == 16 and item["simple_decoded"]
    fixed.known = {item["simple_key"]}
    again = fixed[0]  # the same draw: its SIMPLE image known, its COMPLEX one not
    assert again["simple_key"] == item["simple_key"] and not again["simple_decoded"]
    assert not again["simple"].any()  # a blank stands in; the memo holds the map
    assert again["complex_decoded"] and torch.equal(again["complex"], item["complex"])
    assert again["complex_key"] == item["complex_key"]


def test_view_keys_follow_the_bytes_and_for_augmented_views_the_row():
    png = b"the same encoded image"
    assert view_key(png, 3, 0) == view_key(png, 9, 0)  # the image itself, wherever stored
    assert view_key(png, 3, 1) != view_key(png, 9, 1)  # an augmentation drawn from the row
    assert len({view_key(png, 3, 0), view_key(png, 3, 1), view_key(png + b"!", 3, 0)}) == 3
