"""The benchmark runner end to end on a tiny synthetic dataset: numbers against a brute-force
oracle, reproducibility, resume after a crash, precomputed parquet embeddings, Zenodo."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import referred
from referred.catalog.cache import CacheMismatchError, read_embeddings
from referred.data import open_dataset
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.eval import EvalConfig, MissingEmbeddingsError, load_report, run_benchmark
from referred.eval import inputs as inputs_mod
from referred.eval.runner import (
    NotEnoughDistractorsError,
    filter_report,
    serve_counts,
    usable_bootstrap,
)

ZENODO = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "zenodo"
COUNTS = (0, 10, 50)
# LRVSF-Benchmark folds sized for 30 products and 50 distractors
SMALL = EvalConfig(lrvsf_counts=(10, 50), lrvsf_folds=5, lrvsf_fold_size=20)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "ds"
    cfg = SynthConfig(products=60, distractors=50, size=32, test_fraction=0.5, valid_fraction=0.05)
    write_synthetic_dataset(root, cfg)
    return root


@pytest.fixture(scope="module")
def model():
    return referred.create_model("tiny", conditioning="category", seed=0)


class PixelModel:
    """A numpy model with the LRVSF-Benchmark interface: 4x4 grey thumbnails, plus a
    condition-dependent offset for queries. Counts the images it embeds."""

    def __init__(self) -> None:
        self.embedded = 0

    def _features(self, images) -> np.ndarray:
        self.embedded += len(images)
        x = np.stack(
            [np.asarray(im.convert("L").resize((4, 4)), np.float32).ravel() for im in images]
        )
        x = x - x.mean(axis=1, keepdims=True) + 1e-3
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode_targets(self, images):
        return self._features(images)

    def encode_queries(self, images, conds):
        x = self._features(images)
        if conds is not None:
            x[:, 0] += np.array([len(str(c)) for c in conds], np.float32) / 10
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def cached(out: Path, kind: str) -> np.ndarray:
    files = sorted((out / "embeddings" / kind).glob("part-*.parquet"))
    return np.concatenate([v for v in (read_embeddings(f)[1] for f in files) if v.size])


def cached_categories(out: Path, kind: str) -> np.ndarray:
    files = sorted((out / "embeddings" / kind).glob("part-*.parquet"))
    return np.concatenate([pq.read_table(f).column("category").to_numpy() for f in files])


def brute_force(q, g, gcats, d, dcats, n) -> dict[str, float]:
    """Ranks from the full score matrix, with the documented tie rule."""
    items = np.concatenate([g, d[:n]])
    cats = np.concatenate([gcats, dcats[:n]])
    s = q @ items.T  # (n_q, n_g + n)
    out = {}
    ranks, franks = [], []
    for i in range(len(q)):
        t = s[i, i]
        before = np.arange(items.shape[0]) < i
        beats = (s[i] > t) | ((s[i] == t) & before)
        ranks.append(1 + beats.sum())
        franks.append(1 + (beats & (cats == gcats[i])).sum())
    ranks, franks = np.array(ranks), np.array(franks)
    for k in (1, 5, 10, 20, 50):
        out[f"R@{k}"] = float(np.mean(ranks <= k))
    for k in (1, 5, 10):
        out[f"filtered_R@{k}"] = float(np.mean(franks <= k))
    out["median_rank"] = float(np.median(ranks))
    return out


def test_full_numbers_equal_a_brute_force_oracle(data, model, tmp_path):
    out = tmp_path / "run"
    result = run_benchmark(model, data, out_dir=out, distractor_counts=COUNTS, shard_size=16)
    report = result.report
    assert report["n_queries"] == 30 and report["distractor_counts"] == [0, 10, 50]
    q, g, d = cached(out, "queries-category"), cached(out, "targets"), cached(out, "distractors")
    gcats, dcats = cached_categories(out, "targets"), cached_categories(out, "distractors")
    assert d.shape == (50, g.shape[1])
    for n in COUNTS:
        expected = brute_force(q, g, gcats, d, dcats, n)
        for key, value in expected.items():
            assert report["full"][str(n)][key] == pytest.approx(value), (n, key)
    assert set(report["bootstrap"]) == {"0", "50"}  # the synthetic bootstrap_IDs.pkl
    for name in ("report.json", "table.md", "model_card.yaml", "r1.png"):
        assert (out / name).is_file()


def test_bootstrap_repeats_exactly_and_fewer_distractors_only_when_allowed(data, model, tmp_path):
    with pytest.raises(NotEnoughDistractorsError, match=r"\[1000\] cannot be served: only 50"):
        run_benchmark(
            model, data, out_dir=tmp_path / "r0", distractor_counts=(0, 10, 50, 1000), config=SMALL
        )
    reports = [
        run_benchmark(
            model,
            data,
            out_dir=tmp_path / f"r{i}",
            distractor_counts=(0, 10, 50, 1000),
            allow_fewer_distractors=True,
            seed=3,
            config=SMALL,
        ).report
        for i in range(2)
    ]
    a, b = reports
    assert a["bootstrap"] == b["bootstrap"] and a["bootstrap"]
    assert a["lrvsf_benchmark"] == b["lrvsf_benchmark"] and set(a["lrvsf_benchmark"]) == {
        "10",
        "50",
    }
    assert a["distractor_counts"] == [0, 10, 50]
    assert len(a["warnings"]) == 1 and "[1000] replaced by 50" in a["warnings"][0]
    assert "[1000] replaced by 50" in (tmp_path / "r0" / "table.md").read_text()


def test_resume_after_a_crash_gives_the_same_report(data, tmp_path, monkeypatch):
    clean = run_benchmark(
        PixelModel(), data, out_dir=tmp_path / "clean", distractor_counts=COUNTS, shard_size=8
    ).report
    real = inputs_mod.distractor_items

    def crashing(ds):
        for i, item in enumerate(real(ds)):
            if i == 20:
                raise RuntimeError("killed")
            yield item

    monkeypatch.setattr(inputs_mod, "distractor_items", crashing)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="killed"):
        run_benchmark(PixelModel(), data, out_dir=out, distractor_counts=COUNTS, shard_size=8)
    assert len(list((out / "embeddings" / "distractors").glob("part-*.parquet"))) == 2
    monkeypatch.setattr(inputs_mod, "distractor_items", real)
    model = PixelModel()
    resumed = run_benchmark(model, data, out_dir=out, distractor_counts=COUNTS, shard_size=8).report
    assert model.embedded == 50 - 16  # queries, targets and 2 shards were reused
    for key in ("full", "bootstrap", "lrvsf_benchmark"):
        assert resumed[key] == clean[key]
    again = PixelModel()
    run_benchmark(again, data, out_dir=out, distractor_counts=COUNTS, shard_size=8)
    assert again.embedded == 0


def test_cache_of_another_model_is_refused(data, model, tmp_path):
    run_benchmark(PixelModel(), data, out_dir=tmp_path, distractor_counts=(0,), shard_size=8)
    with pytest.raises(CacheMismatchError, match="other settings"):
        run_benchmark(model, data, out_dir=tmp_path, distractor_counts=(0,), shard_size=8)


def test_unreadable_images_are_skipped_and_listed(data, tmp_path, monkeypatch):
    """A broken distractor does not exist for the run; a product with a broken target image
    is left out; both are listed, and the benchmark goes on."""
    real_d, real_p = inputs_mod.distractor_items, inputs_mod.product_items

    def broken(item):
        return replace(item, image=replace(item.image, data=b"not an image", path=None))

    def distractors(ds):
        return (broken(it) if i == 3 else it for i, it in enumerate(real_d(ds)))

    def products(source, kind, conditioning, notes):
        items = real_p(source, kind, conditioning, notes)
        return (broken(it) if i == 0 and kind == "target" else it for i, it in enumerate(items))

    monkeypatch.setattr(inputs_mod, "distractor_items", distractors)
    monkeypatch.setattr(inputs_mod, "product_items", products)
    kw = {"distractor_counts": (0, 49), "shard_size": 8, "seed": None}
    report = run_benchmark(PixelModel(), data, out_dir=tmp_path, **kw).report
    assert report["n_queries"] == 29 and report["distractor_counts"] == [0, 49]
    assert any("1 test products skipped: unreadable query or target" in n for n in report["notes"])
    listed = (tmp_path / "embeddings" / "distractors" / "failures.tsv").read_text().splitlines()
    assert len(listed) == 2 and "not a readable image" in listed[1]
    assert any("1 distractors skipped: unreadable image" in n for n in report["notes"])
    assert report["warnings"] == []
    with pytest.raises(NotEnoughDistractorsError, match="only 49 distractors exist"):
        run_benchmark(PixelModel(), data, out_dir=tmp_path, **{**kw, "distractor_counts": (50,)})


def test_baselines_add_unconditional_and_filter_rows(data, model, tmp_path):
    result = run_benchmark(model, data, out_dir=tmp_path, distractor_counts=COUNTS, baselines=True)
    base, filt = result.baselines
    assert base["conditioning"] == "none"
    q0 = cached(tmp_path, "queries-none")
    g, d = cached(tmp_path, "targets"), cached(tmp_path, "distractors")
    gcats, dcats = (
        cached_categories(tmp_path, "targets"),
        cached_categories(tmp_path, "distractors"),
    )
    exp = brute_force(q0, g, gcats, d, dcats, 50)
    assert base["full"]["50"]["R@1"] == pytest.approx(exp["R@1"])
    assert filt["full"]["50"]["R@1"] == pytest.approx(exp["filtered_R@1"])
    assert filt["full"]["50"]["R@20"] == base["full"]["50"]["filtered_R@20"]
    table = (tmp_path / "table.md").read_text()
    assert "(none + category filter)" in table and "(none)" in table
    assert load_report(tmp_path / "report_baseline_filter.json")["conditioning"].endswith("filter")


def write_paper_embeddings(
    data: Path, store: Path, drop: str | None = None
) -> dict[str, np.ndarray]:
    """products_embs.parquet and dist_0.parquet of random unit vectors, keyed by URL."""
    ds = open_dataset(data)
    rng = np.random.default_rng(0)
    urls = [
        it.image.url
        for kind in ("query", "target")
        for it in inputs_mod.product_items(ds, kind, "none", [])
    ]
    durls = [it.image.url for it in inputs_mod.distractor_items(ds)]
    vecs = {}
    store.mkdir()
    for name, group in (("products_embs", urls), ("dist_0", durls[::-1])):  # any row order
        group = [u for u in dict.fromkeys(group) if u != drop]  # scenes are shared
        x = rng.standard_normal((len(group), 8)).astype(np.float32)
        vecs.update(zip(group, x / np.linalg.norm(x, axis=1, keepdims=True)))
        emb = pa.array(list(x), type=pa.list_(pa.float32()))
        pq.write_table(pa.table({"url": group, "embeddings": emb}), store / f"{name}.parquet")
    return vecs


def test_precomputed_parquet_embeddings(data, tmp_path):
    vecs = write_paper_embeddings(data, tmp_path / "embs")
    report = run_benchmark(
        None, data, embeddings=tmp_path / "embs", out_dir=tmp_path / "out", distractor_counts=COUNTS
    ).report
    ds = open_dataset(data)
    qs = list(inputs_mod.product_items(ds, "query", "none", []))
    ts = list(inputs_mod.product_items(ds, "target", "none", []))
    ds_ = list(inputs_mod.distractor_items(ds))
    q = np.stack([vecs[it.image.url] for it in qs])
    g = np.stack([vecs[it.image.url] for it in ts])
    d = np.stack([vecs[it.image.url] for it in ds_])
    gcats = np.array([it.category for it in ts])
    dcats = np.array([it.category for it in ds_])
    for n in COUNTS:
        exp = brute_force(q, g, gcats, d, dcats, n)
        assert report["full"][str(n)]["R@5"] == pytest.approx(exp["R@5"])
    assert report["conditioning"] == "category" and report["embedding_dim"] == 8


def test_missing_embedding_urls_are_listed(data, tmp_path):
    ds = open_dataset(data)
    gone = next(inputs_mod.product_items(ds, "target", "none", [])).image.url
    write_paper_embeddings(data, tmp_path / "embs", drop=gone)
    with pytest.raises(MissingEmbeddingsError, match="1 of 30 URLs") as info:
        run_benchmark(
            None,
            data,
            embeddings=tmp_path / "embs",
            out_dir=tmp_path / "out",
            distractor_counts=(0,),
        )
    assert info.value.missing == [gone]


def test_zenodo_layout(model, tmp_path):
    with pytest.raises(NotEnoughDistractorsError, match="only 2 distractors exist"):
        run_benchmark(model, ZENODO, out_dir=tmp_path, distractor_counts=(0, 10))
    result = run_benchmark(
        model, ZENODO, out_dir=tmp_path, distractor_counts=(0, 10), allow_fewer_distractors=True
    )
    report = result.report
    assert report["n_queries"] == 3 and report["distractor_counts"] == [0, 2]
    assert result.warnings == report["warnings"] and "[10] replaced by 2" in result.warnings[0]
    assert report["data"]["layout"] == "zenodo"
    assert any("no bootstrap_IDs.pkl" in n for n in result.notes)
    assert (tmp_path / "r1.png").is_file()


def test_serve_counts():
    assert serve_counts([0, 10, 5], 20, exhausted=False) == ([0, 5, 10], None)
    assert serve_counts([0, 100], 50, exhausted=False) == ([0, 100], None)  # 50+ exist
    with pytest.raises(NotEnoughDistractorsError) as info:
        serve_counts([0, 10, 100, 1000], 50, exhausted=True)
    assert "[100, 1000] cannot be served: only 50 distractors exist" in str(info.value)
    assert "0,10,50" in str(info.value) and "--allow-fewer-distractors" in str(info.value)
    kept, warning = serve_counts([0, 10, 100, 1000], 50, exhausted=True, allow_fewer=True)
    assert kept == [0, 10, 50] and "[100, 1000] replaced by 50" in warning
    with pytest.raises(ValueError, match=">= 0"):
        serve_counts([-1], 5, exhausted=True)


def test_usable_bootstrap_drops_what_was_not_streamed():
    boot = {
        "test_subsets": [np.array([1, 2, 2])],
        "dist_2_subsets": [np.array([10, 11])],
        "dist_3_subsets": [np.array([10, 99, 11])],
    }
    kept, notes = usable_bootstrap(boot, np.array(["1", "2", "3"]), np.array(["10", "11", "12"]))
    assert set(kept) == {"test_subsets", "dist_2_subsets"} and "dist_3_subsets" in notes[0]
    none, notes = usable_bootstrap(boot, np.array(["1"]), np.array(["10"]))
    assert none is None and "not among" in notes[0]


def test_filter_report_renames_filtered_recall():
    report = {
        "model": "m",
        "conditioning": "none",
        "full": {"0": {"R@1": 0.1, "filtered_R@1": 0.5, "Cat@1": 0.2, "median_rank": 3.0}},
        "bootstrap": {"0": {"filtered_R@1": {"mean": 0.4, "std": 0.1, "n": 2}}},
    }
    f = filter_report(report, "none + category filter")
    assert f["full"] == {"0": {"R@1": 0.5}}
    assert f["bootstrap"]["0"]["R@1"]["mean"] == 0.4 and f["model"] == "m"
