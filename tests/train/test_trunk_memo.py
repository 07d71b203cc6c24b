"""The frozen-trunk memo: the trunk's maps (to float rounding: a convolution's result moves in
the last bit with the batch an image is computed in), each distinct image computed once,
bounded, refused for a trunk that still changes; a run trains to the same weights with and
without it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from referred.model.trunk_memo import TrunkMemo, memo_for
from referred.train import train


class CountingTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.bn = nn.BatchNorm2d(4)
        self.images = 0
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.bn(self.conv(x))


def test_the_memo_returns_the_trunks_maps_and_computes_each_image_once():
    torch.manual_seed(0)
    trunk, memo = CountingTrunk(), TrunkMemo(max_bytes=10**8)
    a, b = torch.randn(3, 3, 16, 16), torch.randn(2, 3, 16, 16)
    batch = torch.cat([a, a[:1]])  # one image twice in the batch
    torch.testing.assert_close(memo(trunk, batch), trunk(batch))
    assert trunk.images == 4 + 3  # 4 for the check just above, 3 distinct for the memo
    out = memo(trunk, torch.cat([b, a]))
    torch.testing.assert_close(out, trunk(torch.cat([b, a])))
    assert trunk.images == 7 + 2 + 5  # only b was new to the memo
    assert (memo.stats.hits, memo.stats.misses, memo.stats.stored) == (4, 5, 5)
    nudged = a.clone()
    nudged[0, 0, 0, 0] += 1e-6  # any change in the bytes is another image
    memo(trunk, nudged[:1])
    assert memo.stats.stored == 6


def test_a_trunk_that_still_changes_is_refused():
    memo = TrunkMemo(max_bytes=10**8)
    learning = CountingTrunk().requires_grad_(True)
    with pytest.raises(ValueError, match="requires grad"):
        memo(learning, torch.randn(1, 3, 16, 16))
    batch_stats = CountingTrunk().train()
    with pytest.raises(ValueError, match="BatchNorm is in training mode"):
        memo(batch_stats, torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="positive"):
        TrunkMemo(0)


def test_a_full_memo_stops_storing_and_still_answers(caplog):
    trunk = CountingTrunk()
    one_map = 4 * 7 * 7 * 4  # (4, 7, 7) float32
    memo = TrunkMemo(max_bytes=2 * one_map)
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(memo(trunk, x), trunk(x))
    assert memo.stats.stored == 2 and memo.stats.full
    assert "trunk memo full" in caplog.text
    torch.testing.assert_close(memo(trunk, x), trunk(x))


def test_memo_only_for_a_frozen_trunk_with_frozen_batchnorm():
    import referred
    from referred.model.config import make_config

    arch = {"name": "h", "input_resolution": 32, "trunk": "efficientnet-lite0",
            "trunk_stride": 8, "width": 32, "layers": 1, "heads": 2, "output_dim": 16}  # fmt: skip
    hybrid = referred.create_model(make_config(arch, "category"), seed=0)
    assert isinstance(memo_for(hybrid, 0.0, 1.0), TrunkMemo)
    assert memo_for(hybrid, 0.1, 1.0) is None  # a trunk still learning
    assert memo_for(hybrid, 0.0, 0.0) is None  # switched off
    live_bn = referred.create_model(make_config({**arch, "trunk_bn": "train"}, "category"))
    assert memo_for(live_bn, 0.0, 1.0) is None
    elsewhere = hybrid.to("meta")  # off the CPU (as on a GPU): a pixel digest costs more
    assert memo_for(elsewhere, 0.0, 1.0) is None  # than the trunk's pass there,
    assert isinstance(memo_for(elsewhere, 0.0, 1.0, keyed=True), TrunkMemo)  # a decode not


def frozen_hybrid(micro_config, tmp_path, **changes):
    """Three epochs of a micro hybrid with its trunk frozen."""
    arch = {"input_resolution": 32, "trunk": "efficientnet-lite0", "trunk_stride": 8,
            "width": 32, "layers": 1, "heads": 2, "output_dim": 16}  # fmt: skip
    (tmp_path / "hybrid.json").write_text(json.dumps(arch))
    model = str(tmp_path / "hybrid.json")
    return replace(micro_config, model=model, epochs=3, trunk_lr_scale=0.0, **changes)


def test_a_frozen_hybrid_trains_to_the_same_weights_with_and_without_the_memo(
    micro_config, tmp_path
):
    cfg = frozen_hybrid(micro_config, tmp_path, augment_views=2)
    memo = train(replace(cfg, out=str(tmp_path / "memo")), progress=False)
    plain = train(replace(cfg, out=str(tmp_path / "plain"), trunk_memo_gb=0), progress=False)
    a = load_file(str(memo.last / "model.safetensors"))
    b = load_file(str(plain.last / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        # the trunk's convolutions round differently with the images that share a call
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=5e-5)
    rates = [row["trunk_memo_hit_rate"] for row in memo.history]
    assert rates[-1] > 0.5 and "trunk_memo_hit_rate" not in plain.history[0]


def test_an_lru_memo_forgets_the_least_recently_used_and_serves_inference():
    trunk = CountingTrunk().requires_grad_(True)  # a served model: gradients are off instead
    one_map = 4 * 7 * 7 * 4
    memo = TrunkMemo(max_bytes=2 * one_map, policy="lru")
    a, b, c = torch.randn(3, 1, 3, 16, 16)
    with torch.inference_mode():
        memo(trunk, a)
        memo(trunk, b)
        memo(trunk, a)  # a is now the most recent
        out = memo(trunk, c)  # evicts b
        torch.testing.assert_close(out, trunk(c))
        assert memo.stats.stored == 2 and memo.stats.bytes == 2 * one_map
        before = trunk.images
        memo(trunk, torch.cat([a, c]))
        assert trunk.images == before  # both kept
        memo(trunk, b)
        assert trunk.images == before + 1  # b was forgotten
    with pytest.raises(ValueError, match="unknown memo policy"):
        TrunkMemo(10, policy="fifo")


def test_a_forgotten_maps_row_is_reused_and_every_answer_stays_its_own_images():
    torch.manual_seed(1)
    trunk = CountingTrunk().requires_grad_(True)
    one_map = 4 * 7 * 7 * 4
    memo = TrunkMemo(max_bytes=3 * one_map, policy="lru")
    images = torch.randn(8, 1, 3, 16, 16)
    with torch.inference_mode():
        for _ in range(3):  # 8 images through room for 3: rows forgotten and reused
            for x in images:
                torch.testing.assert_close(memo(trunk, x), trunk(x))
        held = memo(trunk, images[-1])
        memo(trunk, images[0])  # forgets one row and fills it again
        torch.testing.assert_close(held, trunk(images[-1]))  # an answer is a copy
    # the maps are rows of one block, not one allocation each
    (rows,) = memo._rows.values()
    assert len(rows.blocks) == 1 and rows.blocks[0].shape == (3, 4, 7, 7)
    assert memo.stats.stored == 3 and len(rows.free) == 0


def test_a_training_memo_keeps_thousands_of_maps_in_few_blocks():
    trunk, memo = CountingTrunk(), TrunkMemo(max_bytes=10**9)
    for _ in range(4):
        memo(trunk, torch.randn(256, 3, 16, 16))
    (rows,) = memo._rows.values()
    assert memo.stats.stored == 1024 and len(rows.blocks) == 1  # 1,024 × 784 B in one block


def test_a_block_begun_during_validation_takes_training_maps_afterwards():
    # validation runs in inference mode; a block it allocated once refused training's writes
    # ("Inplace update to inference tensor outside InferenceMode"), ending a run at epoch 2
    trunk, one_map = CountingTrunk(), 4 * 7 * 7 * 4
    memo = TrunkMemo(max_bytes=4 * one_map)  # four maps a block
    a, b = torch.randn(2, 1, 3, 16, 16)
    with torch.inference_mode():
        memo(trunk, a)  # the first map: a new block
    torch.testing.assert_close(memo(trunk, b), trunk(b))  # training: written into that block
    torch.testing.assert_close(memo(trunk, a), trunk(a))
    assert memo.stats.stored == 2 and len(memo._rows) == 1


def test_view_keys_name_images_whose_pixels_the_memo_then_never_needs():
    trunk, memo = CountingTrunk(), TrunkMemo(max_bytes=10**8)
    a, b = torch.randn(2, 1, 3, 16, 16)
    with memo.given([b"view-a", b""], [True, True]):  # b by a digest of its pixels
        torch.testing.assert_close(memo(trunk, torch.cat([a, b])), trunk(torch.cat([a, b])))
    assert memo.known == {b"view-a"}  # only view keys: the loader asks by those
    before = trunk.images
    blank = torch.zeros_like(a)
    with memo.given([b"view-a"], [False]):  # the loader skipped a: blank pixels stand in
        torch.testing.assert_close(memo(trunk, blank), trunk(a))
    assert trunk.images == before + 1  # only the check's own call: the memo computed nothing
    torch.testing.assert_close(memo(trunk, b), trunk(b))  # keys hold for one call only
    with memo.given([b"view-c"], [False]), pytest.raises(RuntimeError, match="forgot it"):
        memo(trunk, blank)  # a skipped image the memo lacks is an error, not a blank's map
    with memo.given([b"x", b"y"]), pytest.raises(ValueError, match="2 keys given for a batch"):
        memo(trunk, a)


def test_an_lru_memo_forgets_view_keys_with_their_maps():
    trunk = CountingTrunk().requires_grad_(True)
    memo = TrunkMemo(max_bytes=4 * 7 * 7 * 4, policy="lru")  # room for one map
    a, b = torch.randn(2, 1, 3, 16, 16)
    with torch.inference_mode():
        with memo.given([b"view-a"]):
            memo(trunk, a)
        with memo.given([b"view-b"]):
            memo(trunk, b)
    assert memo.known == {b"view-b"}


def test_a_frozen_run_decodes_an_image_only_until_its_map_is_held(
    micro_config, tmp_path, monkeypatch
):
    import referred.train.pairs as pairs

    drawn, decoded = [], []  # every image drawn (its key), the draws decoded (their position)
    real_open, real_key = pairs.open_image, pairs.view_key
    monkeypatch.setattr(pairs, "view_key", lambda *a: drawn.append(real_key(*a)) or drawn[-1])
    monkeypatch.setattr(
        pairs, "open_image", lambda data: decoded.append(len(drawn) - 1) or real_open(data)
    )
    cfg = frozen_hybrid(micro_config, tmp_path, augment_views=1)
    train(replace(cfg, out=str(tmp_path / "memo")), progress=False)
    per_batch = 2 * cfg.batch_size  # two images a pair, drawn in order (workers=0)
    first_batch = {}
    for i, key in enumerate(drawn):
        first_batch.setdefault(key, i // per_batch)
    # an image is decoded only in the batch that first drew it (twice there when two products
    # share a scene); once its map is held, later batches read its key and nothing else
    assert all(i // per_batch == first_batch[drawn[i]] for i in decoded)
    assert len(set(drawn)) <= len(decoded) < len(drawn) / 2
    decoded.clear(), drawn.clear()
    train(replace(cfg, out=str(tmp_path / "plain"), trunk_memo_gb=0), progress=False)
    assert len(decoded) == len(drawn)  # without the memo every draw decodes
