"""``referred data closeups``: a training copy whose scenes are the close-ups of the items."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from referred.data import open_dataset
from referred.data.boxes import read_item_boxes
from referred.data.closeups import write_closeups
from referred.zoom.boxes import close_up_window


def _images(root: Path, split: str) -> dict[tuple[str, str, str], tuple[str, bytes]]:
    """(product id, kind, url) → (its encoded bytes) of a split's products."""
    out = {}
    for product in open_dataset(root).products(split):
        for kind, images in (("SIMPLE", product.simple), ("COMPLEX", product.complex)):
            for image in images:
                out[(str(product.product_id), kind, image.url)] = image.open()
    return out


def test_scenes_become_the_close_ups_of_their_boxes_and_the_rest_is_kept(synth_root, tmp_path):
    out = tmp_path / "close"
    lines: list[str] = []
    report = write_closeups(synth_root, out, log=lines.append)
    boxes, _ = read_item_boxes(synth_root)
    before, after = _images(synth_root, "train"), _images(out, "train")
    assert before.keys() == after.keys() and report.closeups > 0 and report.kept_whole == 0
    right, shifted = [], []  # pixel error against the true window and one 3 px off
    for (pid, kind, url), image in before.items():
        got = after[(pid, kind, url)]
        if kind == "SIMPLE":
            assert np.array_equal(np.asarray(got), np.asarray(image))
            continue
        x0, y0, x1, y1 = window = close_up_window(boxes[(url, pid)], image.size)
        assert got.size == (x1 - x0, y1 - y0)
        pixels = np.asarray(got, np.float32)
        right.append(np.abs(pixels - np.asarray(image.crop(window), np.float32)).mean())
        off = image.crop((x0 + 3, y0 + 3, x1 + 3, y1 + 3))
        shifted.append(np.abs(pixels - np.asarray(off, np.float32)).mean())
    assert np.mean(right) < 8 and np.mean(right) < np.mean(shifted) / 2  # JPEG re-encoding
    assert len(_images(out, "valid")) == len(_images(synth_root, "valid"))
    assert (out / "TEST").resolve() == (synth_root / "TEST").resolve()  # queries stay whole
    assert not (out / "synth_outfits.parquet").exists()  # its boxes are the whole scenes'
    assert any("TRAIN/" in line for line in lines)


def test_boxes_from_a_csv_and_scenes_without_a_box_kept_whole(synth_root, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(synth_root, src)
    boxes, _ = read_item_boxes(src)
    (src / "synth_outfits.parquet").unlink()
    some = sorted(boxes.items())[::2]
    with open(src / "item_boxes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["URL", "PRODUCT_ID", "X0", "Y0", "X1", "Y1"])
        w.writerows([url, pid, *box] for (url, pid), box in some)
    report = write_closeups(src, tmp_path / "out", log=lambda _: None)
    assert report.boxes_from == "item_boxes.csv"
    assert report.closeups > 0 and report.kept_whole > 0
    whole = [k for k, _ in _images(tmp_path / "out", "train").items() if k[1] == "COMPLEX"]
    assert report.closeups + report.kept_whole >= len(whole)


@pytest.mark.parametrize(
    "rows, message",
    [
        ("URL,PRODUCT_ID,X0,Y0,X1\n", r"lacks the columns \['Y1'\]"),
        ("URL,PRODUCT_ID,X0,Y0,X1,Y1\nu,1,0,0,ten,4\n", "line 2: a box value is not a number"),
        ("URL,PRODUCT_ID,X0,Y0,X1,Y1\nu,1,5,0,4,4\n", "line 2: a box needs 0 <= X0 < X1"),
    ],
)
def test_bad_box_files_are_named(tmp_path, rows, message):
    (tmp_path / "item_boxes.csv").write_text(rows)
    with pytest.raises(ValueError, match=message):
        read_item_boxes(tmp_path)


def test_shards_rewritten_in_worker_processes_are_the_same_bytes(synth_root, tmp_path):
    one = write_closeups(synth_root, tmp_path / "one", log=lambda _: None)
    lines: list[str] = []
    two = write_closeups(synth_root, tmp_path / "two", workers=2, log=lines.append)
    shards = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.tar"))
    assert len(shards) >= 2 and two.shards == one.shards == len(shards)
    for rel in shards:
        assert (tmp_path / "two" / rel).read_bytes() == (tmp_path / "one" / rel).read_bytes()
    assert (two.closeups, two.kept_whole, two.undecodable) == (
        one.closeups,
        one.kept_whole,
        one.undecodable,
    )
    assert [line.split(":")[0] for line in lines] == [str(r) for r in shards]
    with pytest.raises(ValueError, match="workers must be >= 1"):
        write_closeups(synth_root, tmp_path / "three", workers=0)


def test_jittered_training_close_ups_move_around_the_box_and_validation_stays_exact(
    synth_root, tmp_path
):
    exact = write_closeups(synth_root, tmp_path / "exact", log=lambda _: None)
    moved = write_closeups(synth_root, tmp_path / "moved", jitter=0.3, log=lambda _: None)
    write_closeups(synth_root, tmp_path / "again", jitter=0.3, workers=2, log=len)
    assert moved.closeups == exact.closeups
    for rel in (p.relative_to(tmp_path / "moved") for p in (tmp_path / "moved").rglob("*.tar")):
        assert (tmp_path / "again" / rel).read_bytes() == (tmp_path / "moved" / rel).read_bytes()
    boxes, _ = read_item_boxes(synth_root)
    scenes = _images(synth_root, "train")
    sizes = []
    for (pid, kind, url), image in _images(tmp_path / "moved", "train").items():
        if kind == "COMPLEX":
            x0, _, x1, _ = close_up_window(boxes[(url, pid)], scenes[(pid, kind, url)].size)
            sizes.append(image.size[0] / (x1 - x0))
    sizes = np.array(sizes)
    assert len(sizes) > 10 and np.all(np.abs(np.log(sizes)) < 0.3 + 0.1)  # + rounding, clamps
    assert (sizes > 1.05).any() and (sizes < 0.95).any()
    valid = (tmp_path / "moved" / "VALID", tmp_path / "exact" / "VALID")
    for shard in sorted(valid[1].glob("*.tar")):
        assert (valid[0] / shard.name).read_bytes() == shard.read_bytes()
    with pytest.raises(ValueError, match="jitter must be between 0 and 1"):
        write_closeups(synth_root, tmp_path / "bad", jitter=1.5)


def test_what_cannot_be_done_is_refused_before_writing(synth_root, tmp_path):
    with pytest.raises(ValueError, match="no TRAIN/ folder"):
        write_closeups(tmp_path, tmp_path / "out")
    (tmp_path / "bare" / "TRAIN").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no item boxes: expected synth_outfits\.parquet"):
        write_closeups(tmp_path / "bare", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty; pass overwrite=True"):
        write_closeups(synth_root, tmp_path / "full")
    with pytest.raises(ValueError, match="its own folder"):
        write_closeups(synth_root, synth_root)


def test_the_cli_verb(synth_root, tmp_path, run_cli):
    code, stdout, _ = run_cli("data", "closeups", synth_root, tmp_path / "c", "--grow", "0.5")
    assert code == 0 and "close-ups from synth_outfits.parquet" in stdout
    code, _, err = run_cli("data", "closeups", tmp_path / "c", tmp_path / "d")
    assert code == 2 and "no item boxes" in err
    with pytest.raises(SystemExit) as exc:
        run_cli("data", "closeups", synth_root, tmp_path / "e", "--grow", "-1")
    assert exc.value.code == 2
