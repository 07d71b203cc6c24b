"""The FashionIQ-layout reader: any category names, galleries, image files, clear errors."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from referred.data import DataFileError
from referred.data.fashioniq import FashionIQ, Triplet, write_split_files


def _layout(root):
    t = [Triplet("B1", "B2", ("is red", "red, not blue"), "dress")]
    write_split_files(root, "val", "dress", t, ["B1", "B2", "B3"])
    write_split_files(root, "train", "shoes", [Triplet("S1", "S2", ("taller",), "shoes")], [])
    (root / "images").mkdir()
    Image.new("RGB", (4, 4)).save(root / "images" / "B1.png")
    return root


def test_reads_categories_splits_triplets_galleries_and_images(tmp_path):
    data = FashionIQ(_layout(tmp_path))
    assert data.categories == ("dress", "shoes")  # FashionIQ's names first, then others
    assert data.splits() == ("train", "val")
    assert data.categories_of("val") == ("dress",)
    (t,) = data.triplets("val")
    assert t == Triplet("B1", "B2", ("is red", "red, not blue"), "dress")
    assert t.text() == "is red and red, not blue"
    assert data.gallery("val", "dress") == ["B1", "B2", "B3"]
    (tmp_path / "image_splits" / "split.shoes.train.json").unlink()
    assert data.gallery("train", "shoes") == ["S1", "S2"]  # no split file: the triplets' images
    assert data.image_path("B1").name == "B1.png"
    with pytest.raises(DataFileError, match="no image 'B9'"):
        data.image_path("B9")


def test_errors_name_the_file_and_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a FashionIQ-layout folder"):
        FashionIQ(tmp_path)
    root = _layout(tmp_path)
    data = FashionIQ(root)
    with pytest.raises(
        DataFileError, match=r"no captions for split 'test'; it has \['train', 'val'\]"
    ):
        data.triplets("test")
    cap = root / "captions" / "cap.dress.val.json"
    cap.write_text("[{")
    with pytest.raises(DataFileError, match=r"cap\.dress\.val\.json: not valid JSON"):
        data.triplets("val")
    cap.write_text(json.dumps([{"candidate": "B1", "target": "B2"}]))
    with pytest.raises(DataFileError, match="entry 0 is not"):
        data.triplets("val")
    cap.write_text(json.dumps([{"candidate": "B1", "target": "B2", "captions": ["", " "]}]))
    with pytest.raises(DataFileError, match="entry 0 needs 'captions'"):
        data.triplets("val")
