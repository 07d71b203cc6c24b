"""The record model and the rules every reader shares."""

from __future__ import annotations

import pytest

from referred.data import ImageRecord, ImageType, ReadStats, Severity
from referred.data.assemble import build_product, canonical_category


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("simple", ImageType.SIMPLE), ("PARTIAL_COMPLEX", ImageType.PARTIAL_COMPLEX),
     ("partial-complex", ImageType.PARTIAL_COMPLEX), (" Complex ", ImageType.COMPLEX)],
)  # fmt: skip
def test_image_type_parse(raw: str, expected: ImageType) -> None:
    assert ImageType.parse(raw) is expected


def test_image_type_parse_error_lists_accepted() -> None:
    with pytest.raises(ValueError, match="SIMPLE, COMPLEX, PARTIAL_COMPLEX"):
        ImageType.parse("scene")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("lower_body", "Lower Body"), ("whole-body", "Whole Body"), ("BAGS", "Bags"),
     (None, None), (float("nan"), None), ("  ", None)],
)  # fmt: skip
def test_canonical_category(raw, expected) -> None:
    assert canonical_category(raw) == expected


def _image(kind: ImageType, category: str | None = None) -> ImageRecord:
    return ImageRecord("u", kind, None, None, {"CATEGORY": category, "blip2_caption1": "c"})


def test_build_product_rules() -> None:
    stats = ReadStats()
    ok = build_product("1", [_image(ImageType.SIMPLE, "bags"), _image(ImageType.COMPLEX)],
                       split="train", file="f", stats=stats)  # fmt: skip
    assert ok is not None and ok.category == "Bags" and ok.captions == ("c",)
    assert build_product("2", [_image(ImageType.COMPLEX)], split="train", file="f",
                         stats=stats) is None  # fmt: skip
    assert build_product("3", [_image(ImageType.SIMPLE, "Bags")], split="train", file="f",
                         stats=stats) is None  # fmt: skip
    assert build_product("4", [_image(ImageType.SIMPLE, "Socks"), _image(ImageType.COMPLEX)],
                         split="train", file="f", stats=stats) is None  # fmt: skip
    assert [(p.kind, p.item) for p in stats.problems] == [
        ("missing-simple", "2"),
        ("missing-complex", "3"),
        ("unknown-category", "4"),
    ]
    assert stats.errors == 3 and stats.counts["products"] == 1


def test_read_stats_caps_detail_but_counts_everything() -> None:
    stats = ReadStats(max_problems=2)
    for i in range(5):
        stats.report(Severity.WARNING, "odd", "f.tar", i, "detail")
    assert len(stats.problems) == 2 and stats.problem_counts["odd"] == 5 and stats.warnings == 5
    assert str(stats.problems[0]) == "WARNING f.tar [0]: odd: detail"
    assert "5 odd" in stats.summary()
