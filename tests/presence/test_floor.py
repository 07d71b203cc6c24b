"""The score floor: fitted as a quantile of true-match scores, saved beside the model, and
results under it marked weak by the Searcher (photo queries only)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import referred
from referred import cli
from referred.data import open_dataset
from referred.presence.floor import FILE, attach_floor, fit_score_floor, load_floor, save_floor
from referred.search import Searcher
from tests.search.test_searcher import catalog_index, photo


def true_match_scores(model, root: Path, split: str) -> np.ndarray:
    """By hand, in float64: each product's first scene through the model conditioned on its
    category, against its first gallery image unconditioned."""
    from referred.preprocess import preprocess

    cats = list(model.config.categories)
    m = copy.deepcopy(model).double()
    out = []
    for p in open_dataset(root).products(split):
        if not (p.category and p.simple and p.complex):
            continue
        cfg = model.config.preprocess
        scene = preprocess(p.complex[0].open(), cfg).double()
        item = preprocess(p.simple[0].open(), cfg).double()
        with torch.no_grad():
            q = m(scene, torch.tensor([cats.index(p.category)]))
            t = m(item)
        out.append(float(torch.nn.functional.cosine_similarity(q, t)[0]))
    return np.array(out)


def test_the_floor_is_the_quantile_of_true_match_scores(data, model):
    lines: list[str] = []
    record = fit_score_floor(model, data, quantile=0.1, log=lines.append)
    valid = true_match_scores(model, data, "valid")
    assert record["valid_pairs"] == len(valid) > 0
    assert record["floor"] == pytest.approx(np.quantile(valid, 0.1), abs=1e-5)
    test = true_match_scores(model, data, "test")
    share = float((test >= record["floor"]).mean())
    assert record["test_pairs"] == len(test)
    assert record["test_share_at_or_above"] == pytest.approx(share, abs=1 / len(test))
    assert any("valid:" in line for line in lines)
    with pytest.raises(ValueError, match=r"quantile must be in \(0, 0.5\)"):
        fit_score_floor(model, data, quantile=0.7)


def test_the_floor_travels_with_the_model_and_bad_files_are_named(model, tmp_path):
    m = copy.deepcopy(model)
    attach_floor(m, 0.25)
    m.save_pretrained(tmp_path / "m")
    assert referred.load_model(tmp_path / "m").score_floor == pytest.approx(0.25)
    (tmp_path / "m" / FILE).unlink()
    assert referred.load_model(tmp_path / "m").score_floor is None
    (tmp_path / "m" / FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="is not a score floor"):
        load_floor(tmp_path / "m")
    save_floor(tmp_path / "m", {"floor": 3.0})
    with pytest.raises(ValueError, match=r"lies in \[-1, 1\], got 3.0"):
        load_floor(tmp_path / "m")


def test_photo_results_under_the_floor_are_weak_and_others_never(model):
    tiny = referred.create_model("tiny", categories=("Bags", "Feet", "Head"), seed=0)
    plain = Searcher(tiny, catalog_index(tiny))
    hits = plain.search(photo(4), k=8)  # nothing asked: only the floor can make one weak
    assert not any(h.weak for h in hits)  # no floor: nothing is weak
    floor = (hits[2].score + hits[3].score) / 2
    attach_floor(tiny, floor)
    try:
        floored = Searcher(tiny, catalog_index(tiny))
        again = floored.search(photo(4), k=8)
        assert [h.id for h in again] == [h.id for h in hits]
        assert (
            [h.weak for h in again] == [h.score < floor for h in hits] == [False] * 3 + [True] * 5
        )
        many = floored.search_many([photo(4)], None, k=8)[0]
        assert [h.weak for h in many] == [h.weak for h in again]
        look = floored.shop_the_look(photo(4), categories=["Bags"], k=8, filter_by_category=False)
        assert [h.weak for h in look["Bags"]] == [
            h.score < floor or h.metadata["category"] != "Bags" for h in look["Bags"]
        ]
        like = floored.more_like_this(again[0].id, k=5)  # catalog-started: another scale
        assert not any(h.weak for h in like)
    finally:
        attach_floor(tiny, None)


def test_the_cli_task_measures_and_saves_the_floor(data, model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    argv = ["train", "--task", "floor", "--model", str(tmp_path / "m"), "--data", str(data)]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "results under" in printed and "are marked weak" in printed
    saved = json.loads((tmp_path / "out" / FILE).read_text())
    assert saved["made_with"]["command"] == "referred train --task floor"
    assert referred.load_model(tmp_path / "out").score_floor == pytest.approx(saved["floor"])
    referred.load_model(tmp_path / "out").save_pretrained(tmp_path / "again")  # keeps the record
    assert json.loads((tmp_path / "again" / FILE).read_text()) == saved
    assert cli.main([*argv, "--out", str(tmp_path / "x"), "--epochs", "3"]) == 2
    assert "does not take --epochs" in capsys.readouterr().err


def test_results_of_another_category_than_asked_are_weak(model):
    tiny = referred.create_model("tiny", categories=("Bags", "Feet", "Head"), seed=0)
    searcher = Searcher(tiny, catalog_index(tiny))
    hits = searcher.search(photo(5), category="feet", k=12)  # names match as for search
    kinds = [h.metadata["category"] for h in hits]
    assert "Feet" in kinds and set(kinds) - {"Feet"}  # the catalog mixes kinds
    assert [h.weak for h in hits] == [c != "Feet" for c in kinds]
    many = searcher.search_many([photo(5)], ["Feet"], k=12)[0]
    assert [h.weak for h in many] == [c != "Feet" for c in kinds]
    assert not any(h.weak for h in searcher.search(photo(5), k=12))  # nothing asked
