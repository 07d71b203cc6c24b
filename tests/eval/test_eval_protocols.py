"""Benchmark inputs and protocols against the authors' formats: ``--embeddings`` from the
metadata alone (every committed metadata flavour), distractors defined by their embeddings,
and the LRVSF-Benchmark folds read from ``bootstrapped_indices.pt``."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from referred.catalog.cache import CacheMismatchError, EmbedItem
from referred.data import ImageRecord, ImageType, open_dataset
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.eval import EvalConfig, run_benchmark
from referred.eval import inputs as inputs_mod
from referred.eval.bootstrap import load_lrvsf_folds, lrvsf_subsamples
from referred.eval.runner import NotEnoughDistractorsError
from tests.data.flavours import EMBEDDINGS, MANIFEST, NAMES, layout

FOLDS = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "bootstrapped_indices.pt"
URL = "https://example.com/flavour/{}.jpg"
# the flavours' catalogue: query image (COMPLEX preferred), target, category index
QUERIES = {"301": ("c301", "s301", 7), "302": ("c30x", "s302", 4), "303": ("c30x", "s303", 0)}
QUERIES["304"] = ("c304", "s304", 1)  # only a PARTIAL_COMPLEX scene
EXISTING = [("dt0", 6), ("dt1", 9), ("dt3", -1), ("dt4", 2)]  # dt2 has no embedding


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def stored_embeddings(*files: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in files:
        table = pq.read_table(path)
        for url, emb in zip(table["url"].to_pylist(), table["embeddings"].to_pylist()):
            out[url] = np.asarray(emb, np.float32)
    return out


def oracle(q, g, gcats, d, dcats) -> dict[str, float]:
    """R@1, R@5, filtered R@1, Cat@1 from the full score matrix (no ties in this data)."""
    items, cats = np.concatenate([g, d]), np.concatenate([gcats, dcats])
    s = q @ items.T
    order = np.argsort(-s, axis=1)
    ranks = np.array([1 + (s[i] > s[i, i]).sum() for i in range(len(q))])
    franks = np.array([1 + ((s[i] > s[i, i]) & (cats == gcats[i])).sum() for i in range(len(q))])
    return {
        "R@1": float(np.mean(ranks <= 1)),
        "R@5": float(np.mean(ranks <= 5)),
        "filtered_R@1": float(np.mean(franks <= 1)),
        "Cat@1": float(np.mean(cats[order[:, 0]] == gcats)),
    }


@pytest.mark.parametrize("kind", ["metadata", "hf"])
@pytest.mark.parametrize("flavour", NAMES)
def test_embeddings_from_the_metadata_alone_on_every_flavour(flavour, kind, tmp_path):
    root = layout(flavour, kind, tmp_path)
    assert not list(root.rglob("*.jpg")) and not (root / "TEST").exists()
    labels = dict(zip(("dt0", "dt1", "dt2", "dt3", "dt4"), MANIFEST[flavour]["labels"]))
    boot = {
        "test_subsets": [np.array(["301", "302", "303", "304", "301"])] * 2,
        "dist_2_subsets": [np.array([labels["dt0"], labels["dt4"]])] * 2,
        "dist_3_subsets": [np.array([labels["dt0"], labels["dt2"], labels["dt1"]])] * 2,
    }
    result = run_benchmark(
        None, root, embeddings=EMBEDDINGS, out_dir=tmp_path / "out",
        distractor_counts=(0, 2, 4), bootstrap=boot, seed=None,
    )  # fmt: skip
    report = result.report
    vec = stored_embeddings(EMBEDDINGS / "products_embs.parquet", EMBEDDINGS / "dist_0.parquet")
    scenes = [v[0] for v in QUERIES.values()]
    if MANIFEST[flavour]["types"]["products_complex_metadata.TYPE"] == "null":
        scenes[1] = "c302"  # no TYPE: every scene counts as COMPLEX, the first one is taken
    q = unit(np.stack([vec[URL.format(name)] for name in scenes]))
    g = unit(np.stack([vec[URL.format(v[1])] for v in QUERIES.values()]))
    d = unit(np.stack([vec[URL.format(n)] for n, _ in EXISTING]))
    gcats, dcats = np.array([v[2] for v in QUERIES.values()]), np.array([c for _, c in EXISTING])
    for n in (0, 2, 4):
        expected = oracle(q, g, gcats, d[:n], dcats[:n])
        got = {k: report["full"][str(n)][k] for k in expected}
        assert got == pytest.approx(expected), n
    # labels of any type reach the paper bootstrap: dt2 has no embedding, so dist_3 is skipped
    assert set(report["bootstrap"]) == {"0", "2"}
    assert any("dist_3_subsets skipped" in n for n in result.notes)
    assert any(
        "1 of the 5 distractors of the metadata have no embedding" in n for n in result.notes
    )
    with pytest.raises(NotEnoughDistractorsError, match="only 4 distractors exist"):
        run_benchmark(
            None, root, embeddings=EMBEDDINGS, out_dir=tmp_path / "o2", distractor_counts=(5,)
        )


def test_embeddings_without_metadata_name_what_is_expected(tmp_path):
    root = tmp_path / "zenodo-like"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "data" / "zenodo", root)
    with pytest.raises(ValueError, match="no test metadata; expected data/test/"):
        run_benchmark(None, root, embeddings=EMBEDDINGS, out_dir=tmp_path / "o")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic dataset (30 test products, 50 distractors) and paper-era embeddings."""
    base = tmp_path_factory.mktemp("proto")
    root = base / "ds"
    cfg = SynthConfig(products=60, distractors=50, size=32, test_fraction=0.5, valid_fraction=0.05)
    write_synthetic_dataset(root, cfg)
    ds = open_dataset(root)
    urls = [
        it.image.url for k in ("query", "target") for it in inputs_mod.product_items(ds, k, "", [])
    ]
    durls = [it.image.url for it in inputs_mod.distractor_items(ds)]
    rng = np.random.default_rng(1)
    store = base / "embs"
    store.mkdir()
    for name, group in (("products_embs", list(dict.fromkeys(urls))), ("dist_0", durls)):
        x = rng.standard_normal((len(group), 8)).astype(np.float32)
        pq.write_table(pa.table({"url": group, "embeddings": list(x)}), store / f"{name}.parquet")
    return root, store


def test_metadata_only_folder_gives_the_report_of_the_full_one(synth, tmp_path):
    root, store = synth
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in root.glob("*.parquet"):
        shutil.copy(path, bare / path.name)
    shutil.copy(root / "bootstrap_IDs.pkl", bare / "bootstrap_IDs.pkl")
    kw = {"embeddings": store, "distractor_counts": (0, 10, 50), "config": EvalConfig()}
    full = run_benchmark(None, root, out_dir=tmp_path / "a", **kw).report
    alone = run_benchmark(None, bare, out_dir=tmp_path / "b", **kw).report
    assert alone["full"] == full["full"] and alone["bootstrap"] == full["bootstrap"]
    assert alone["n_queries"] == 30 and alone["bootstrap"]


def test_official_fold_file_is_read_as_published():
    torch = pytest.importorskip("torch")
    folds = load_lrvsf_folds(FOLDS)
    raw = torch.load(FOLDS, weights_only=True)
    assert raw.dtype == torch.int32 and tuple(raw.shape) == (20, 1000)
    assert folds.dtype == np.int64 and np.array_equal(folds, raw.numpy())


class Evil:
    def __reduce__(self):
        return (print, ("pickles run code",))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("dict", "holds a dict; expected an integer tensor"),
        ("float", "expected integers"),
        ("1d", r"shape \(5,\); expected \(folds, size\)"),
        (Evil(), "not a readable bootstrapped_indices.pt"),
    ],
)
def test_bad_fold_files_are_named(content, match, tmp_path):
    torch = pytest.importorskip("torch")
    made = {"dict": {"folds": [1, 2]}, "float": torch.zeros(2, 3), "1d": torch.arange(5)}
    content = made.get(content, content) if isinstance(content, str) else content
    path = tmp_path / "bootstrapped_indices.pt"
    torch.save(content, path)
    with pytest.raises(ValueError, match=match) as info:
        load_lrvsf_folds(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=r"range over 0..29 but the benchmark has 10 test"):
        lrvsf_subsamples(10, np.arange(10), 5, folds=load_lrvsf_folds(FOLDS))


def test_lrvsf_protocol_with_the_fold_file_equals_an_oracle(synth, tmp_path):
    pytest.importorskip("torch")
    root, store = synth
    cfg = EvalConfig(lrvsf_counts=(10, 50))
    report = run_benchmark(
        None, root, embeddings=store, out_dir=tmp_path, distractor_counts=(0, 50),
        lrvsf_indices=FOLDS, seed=5, config=cfg, bootstrap=None,
    ).report  # fmt: skip
    lrvsf = report["protocol"]["lrvsf"]
    assert lrvsf["products"] == "given" and (lrvsf["folds"], lrvsf["fold_size"]) == (20, 1000)
    inputs = inputs_mod.parquet_inputs(store, open_dataset(root), 50, [])
    q, g = inputs.queries, inputs.targets
    d = np.concatenate([e for e, _ in inputs.distractors(50)])
    folds, rng = load_lrvsf_folds(FOLDS), np.random.default_rng(5)
    per_count: dict[int, list[float]] = {10: [], 50: []}
    for rows in folds:  # the documented draw order: fold by fold, counts in order
        products, weights = np.unique(rows, return_counts=True)
        for n in (10, 50):
            drawn = rng.integers(0, 50, n)
            hits = 0
            for p, w in zip(products, weights):
                target = q[p] @ g[p]
                better = (g[products] @ q[p] > target).sum() + (d[drawn] @ q[p] > target).sum()
                hits += w * (better == 0)
            per_count[n].append(hits / weights.sum())
    for n, values in per_count.items():
        cell = report["lrvsf_benchmark"][str(n)]["R@1"]
        assert cell["mean"] == pytest.approx(np.mean(values))
        assert cell["std"] == pytest.approx(np.std(values, ddof=1))
    assert '"recall_at_1|50"' in (tmp_path / "model_card.yaml").read_text()


class Recorder:
    """Benchmark interface; keeps the images it was given and embeds them as grey pixels."""

    def __init__(self) -> None:
        self.images: list = []

    def encode_targets(self, images):
        self.images += images
        grey = [np.asarray(im.convert("L").resize((4, 4)), np.float32).ravel() for im in images]
        return unit(np.stack(grey) + 1)

    def encode_queries(self, images, conds):
        return self.encode_targets(images)


def received(decode: str, data: bytes):
    """The image a model gets from the benchmark for an item with these bytes."""
    model = Recorder()
    item = EmbedItem("1", ImageRecord("u", ImageType.SIMPLE, data))
    inputs_mod._encoder(model, False, 4, decode)([item])
    return model.images[0]


def test_benchmark_decodes_as_asked(tmp_path, synth):
    rng = np.random.default_rng(4)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate to display
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (6, 12, 3), dtype=np.uint8)).save(
        buf, "JPEG", exif=exif.tobytes()
    )
    data = buf.getvalue()
    plain = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(received("reference", data)), plain)
    assert received("default", data).size == (6, 12)  # turned upright
    # the cache remembers the decode mode: reference embeddings never mix with default ones
    root, _ = synth
    kw = {"distractor_counts": (0,), "bootstrap": None, "seed": None}
    run_benchmark(Recorder(), root, out_dir=tmp_path, **kw)
    with pytest.raises(CacheMismatchError, match="differs in: decode"):
        run_benchmark(Recorder(), root, out_dir=tmp_path, decode="reference", **kw)
    report = run_benchmark(Recorder(), root, out_dir=tmp_path / "r", decode="reference", **kw)
    assert report.report["decode"] == "reference"


def test_fold_rows_are_refused_when_products_were_skipped(tmp_path):
    root = layout("pyarrow-int64", "hf", tmp_path)
    simple = root / "data" / "test" / "products_simple_metadata.parquet"
    table = pq.read_table(simple)
    pq.write_table(table.filter(pc.not_equal(table["PRODUCT_ID"], 304)), simple)
    kw = {"embeddings": EMBEDDINGS, "distractor_counts": (0, 4), "bootstrap": None}
    result = run_benchmark(None, root, out_dir=tmp_path / "a", **kw)
    assert result.report["n_queries"] == 3
    assert any("1 test products skipped by the metadata reader" in n for n in result.notes)
    with pytest.raises(ValueError, match="some test products were skipped"):
        run_benchmark(None, root, out_dir=tmp_path / "b", lrvsf_indices=np.zeros((2, 3)), **kw)
