"""Synthetic composed-retrieval triplets: edits change what they say and nothing else, texts
read both ways, the files are FashionIQ's and the same config gives the same bytes."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import numpy as np
import pytest

from referred.data.fashioniq import FashionIQ
from referred.data.synth.attributes import sample_item
from referred.data.synth.cir import CIRSynthConfig, draw_group, write_cir_dataset
from referred.data.synth.edit_texts import describe, phrases, two_captions
from referred.data.synth.edits import ATTRIBUTE_WEIGHTS, Edit, attributes_of, edit_item

#: ItemSpec fields each attribute's edit may touch (besides the captions)
TOUCHES = {
    "colour": {"colour", "colour_name", "colour2", "colour2_name"},
    "pattern": {"pattern", "period"},
    "variant": {"variant"},
    "buttons": {"buttons"},
    "motif": {"motif", "motif_size"},
    "texture": {"texture", "texture_strength"},
    "trim": {"trim", "trim_colour", "trim_width"},
}


#: the ItemSpec field holding each attribute's named value (buttons: a count)
NAMED = {"colour": "colour_name", "pattern": "pattern", "variant": "variant", "motif": "motif",
         "texture": "texture", "trim": "trim"}  # fmt: skip


@pytest.mark.parametrize("category", ["Whole Body", "Upper Body", "Outwear", "Bags"])
def test_an_edit_changes_its_attribute_and_keeps_every_other_detail(category):
    rng = np.random.default_rng(0)
    for _ in range(60):
        base = sample_item(category, rng)
        target, (edit,) = edit_item(base, rng, 1)
        a, b = asdict(base), asdict(target)
        changed = {k for k in a if a[k] != b[k]} - {"captions"}
        assert changed and changed <= TOUCHES[edit.attribute], (edit, changed)
        assert edit.before != edit.after and edit.attribute in attributes_of(base)
        field = NAMED.get(edit.attribute)
        if field is not None:
            assert (a[field], b[field]) == (edit.before, edit.after)


def test_two_edits_touch_two_attributes_and_buttons_only_where_they_exist():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(100):
        _, edits = edit_item(sample_item("Whole Body", rng), rng, 2)
        assert len({e.attribute for e in edits}) == 2
        seen |= {e.attribute for e in edits}
    assert seen == set(ATTRIBUTE_WEIGHTS)
    assert "buttons" not in attributes_of(sample_item("Bags", rng))
    with pytest.raises(ValueError, match="n_edits must be 1 or 2"):
        edit_item(sample_item("Bags", rng), rng, 3)


def test_texts_name_the_change_in_either_direction():
    red = Edit("colour", "blue", "red")
    assert "in red" in phrases(red) and "in blue" in phrases(red.reversed())
    striped = Edit("pattern", "plain", "stripes")
    assert "same but striped" in phrases(striped)
    assert "less busy" in phrases(striped.reversed())
    longer = Edit("variant", "dress", "gown")
    assert "longer" in phrases(longer) and "shorter" in phrases(longer.reversed())
    rng = np.random.default_rng(0)
    both = describe([red, striped], rng)
    assert any(p in both for p in phrases(red)) and any(p in both for p in phrases(striped))
    first, second = two_captions([red], rng)
    assert first != second and first in phrases(red) and second in phrases(red)
    with pytest.raises(ValueError, match="unknown attribute"):
        phrases(Edit("size", "s", "m"))


def test_a_group_is_a_reference_two_versions_and_four_triplets():
    config = CIRSynthConfig(train=10)
    g = draw_group(config, "train", "dress", 3)
    a, b, c = g.images
    assert [(t.candidate, t.target) for t in g.triplets] == [(a, b), (b, a), (a, c), (c, a)]
    assert all(len(t.captions) == 2 and all(t.captions) for t in g.triplets)
    assert draw_group(config, "train", "dress", 3) == g  # pure in its arguments
    assert g.specs[0].category == "Whole Body"


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_more_training_references_leave_the_others_as_they_were():
    small, large = CIRSynthConfig(train=5), CIRSynthConfig(train=50)
    assert draw_group(small, "train", "shirt", 4) == draw_group(large, "train", "shirt", 4)
    assert draw_group(small, "test", "toptee", 0) == draw_group(large, "test", "toptee", 0)


def test_the_set_is_fashioniq_layout_and_deterministic(tmp_path):
    config = CIRSynthConfig(
        train=3, val=1, test=1, size=32, categories={"dress": "Whole Body", "bags": "Bags"}
    )
    report = write_cir_dataset(tmp_path / "a", config)
    assert report.triplets == {"train": 24, "val": 8, "test": 8}
    assert report.images == {"train": 18, "val": 6, "test": 6}
    write_cir_dataset(tmp_path / "b", config)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    data = FashionIQ(tmp_path / "a")
    assert data.categories == ("dress", "bags") and data.splits() == ("train", "val", "test")
    triplets = data.triplets("test", ["bags"])
    gallery = data.gallery("test", "bags")
    assert len(triplets) == 4 and len(gallery) == 3
    assert all(t.candidate in gallery and t.target in gallery for t in triplets)
    assert data.image_path(gallery[0]).suffix == ".jpg"
    with pytest.raises(FileExistsError, match="overwrite"):
        write_cir_dataset(tmp_path / "a", config)
    write_cir_dataset(tmp_path / "a", config, overwrite=True)


def test_bad_configs_name_the_problem():
    with pytest.raises(ValueError, match="train references must be an integer >= 1, got 0"):
        CIRSynthConfig(train=0)
    with pytest.raises(ValueError, match="unknown"):
        CIRSynthConfig(categories={"dress": "Gowns"})
    with pytest.raises(ValueError, match=r"two_edit_fraction must be in \[0, 1\]"):
        CIRSynthConfig(two_edit_fraction=2.0)
