"""The demo: a synthetic catalog, the demo model, an exact index and the web page.

``referred demo`` (what ``make demo`` runs) builds or reuses, under ``.cache/demo``:

1. a synthetic LRVS-F-style dataset (``referred.data.synth``), written once;
2. the catalog: the test products and test distractors exported as image files, with
   metadata (category, title = first caption, image), and a few test scenes as samples;
3. a flat index of the catalog embedded unconditioned by the demo model (cached per model
   fingerprint, so a restart re-embeds nothing). The bundled model ships the vectors of this
   catalog (``catalog_vectors.npz``, written by ``scripts/train_demo_model.py``); they are
   used only when both the model's fingerprint and the digest of every catalog image match,
   so a first start does not spend a minute in the trunk, and any other catalog is embedded;

then serves the page at http://127.0.0.1:8000. The model is the bundled trained demo model
(``referred/assets/demo-model``) when present, else an untrained tiny CondViT, said loudly:
its results are near chance.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: The stable name of the demo's current index under ``.cache/demo/catalog/``.
DEMO_INDEX_LINK = "index"
log = logging.getLogger(__name__)

DEMO_MODEL_DIR = Path(__file__).parent / "assets" / "demo-model"
#: Version of the exported catalog's files (2: samples.json lists the worn products' ids).
CATALOG_FORMAT = 2
#: The demo catalog's vectors under the bundled model (see the module docstring).
CATALOG_VECTORS = "catalog_vectors.npz"
#: Synthetic dataset size: 1000 products → 100 test products (the queries' targets) and 1000
#: test distractors, so the catalog holds 1,100 products; writing it takes ~5 s on 2 cores.
DEMO_PRODUCTS, DEMO_DISTRACTORS, DEMO_SAMPLES = 1000, 1000, 12
UNTRAINED_NOTE = (
    "no trained demo model is bundled (referred/assets/demo-model); using an untrained tiny "
    "CondViT, so results are near chance. Train one with `referred train`."
)


@dataclass(frozen=True)
class DemoCatalog:
    """Everything the demo serves. ``records``: (id, image path, metadata) per product."""

    root: Path
    images: Path
    samples: Path
    records: list[tuple[str, Path, dict[str, Any]]]


def ensure_demo_data(
    root: Path, products: int = DEMO_PRODUCTS, distractors: int = DEMO_DISTRACTORS
) -> Path:
    """The cached synthetic dataset under ``root``, written on first use and again whenever
    its config or the generator changes (the marker records both)."""
    from dataclasses import asdict

    from referred.data.synth import GENERATOR_VERSION, SynthConfig, write_synthetic_dataset

    config = SynthConfig(products=products, distractors=distractors)
    marker = root / ".complete"
    wanted = json.dumps({"generator": GENERATOR_VERSION, **asdict(config)}, sort_keys=True)
    if not marker.is_file() or marker.read_text().strip() != wanted:
        log.info("writing a synthetic catalog to %s", root)
        write_synthetic_dataset(root, config, overwrite=True)
        marker.write_text(wanted + "\n")
    return root


def load_demo_model() -> tuple[torch.nn.Module, bool]:
    """The bundled demo model, or a random tiny one (``trained`` says which)."""
    from referred.model import create_model, load_model

    if (DEMO_MODEL_DIR / "config.json").is_file():
        return load_model(DEMO_MODEL_DIR), True
    return create_model("tiny", conditioning="category", seed=0), False


def _title(caption: str | None, fallback: str) -> str:
    if not caption:
        return fallback
    text = caption.removeprefix("a ").removeprefix("an ")
    return text[:1].upper() + text[1:]


def export_catalog(data: Path, out: Path, samples: int = DEMO_SAMPLES) -> DemoCatalog:
    """Write the test products + test distractors as image files, and sample scenes."""
    import pyarrow.parquet as pq

    from referred.data import open_dataset

    images, sample_dir = out / "images", out / "samples"
    manifest = out / "catalog.json"
    marker = data / ".complete"
    source = marker.read_text().strip() if marker.is_file() else str(data)
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        if saved.get("source") == source and saved.get("format") == CATALOG_FORMAT:
            return DemoCatalog(
                out,
                images,
                sample_dir,
                [(r["id"], images / r["file"], r["metadata"]) for r in saved["rows"]],
            )
    for d in (images, sample_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    ds = open_dataset(data)
    rows, scenes = [], {}
    for p in ds.products("test"):
        name = f"{p.product_id}.jpg"
        (images / name).write_bytes(p.simple[0].read_bytes())
        title = _title(p.captions[0] if p.captions else None, f"{p.category or 'Catalog'} item")
        rows.append(
            {
                "id": p.product_id,
                "file": name,
                "metadata": {
                    "category": p.category,
                    "title": title,
                    "image": name,
                    "kind": "product",
                },
            }
        )
        for scene in p.complex:  # one full scene per outfit: ".../scene/<outfit>-<n>.jpg"
            outfit = (scene.url or "").rsplit("/", 1)[-1].split("-")[0]
            if scene.url and scene.type.value == "COMPLEX" and outfit not in scenes:
                scenes[outfit] = scene
    captions = _distractor_captions(data, pq)
    for d in ds.distractors("test"):
        pid, name = f"d{d.distractor_id}", f"d{d.distractor_id}.jpg"
        (images / name).write_bytes(d.image.read_bytes())
        # shoppers see a catalog item, not the benchmark's word for it
        title = _title(captions.get(d.image.url or ""), f"{d.category or 'Catalog'} item")
        rows.append(
            {
                "id": pid,
                "file": name,
                "metadata": {
                    "category": d.category,
                    "title": title,
                    "image": name,
                    "kind": "distractor",
                },
            }
        )
    _write_samples(data, list(scenes.values())[:samples], sample_dir, pq)
    manifest.write_text(json.dumps({"source": source, "format": CATALOG_FORMAT, "rows": rows}))
    return DemoCatalog(
        out, images, sample_dir, [(r["id"], images / r["file"], r["metadata"]) for r in rows]
    )


def _distractor_captions(data: Path, pq: Any) -> dict[str, str]:
    path = data / "distractors_test_metadata.parquet"
    if not path.is_file():
        return {}
    table = pq.read_table(path, columns=["URL", "blip2_caption1"]).to_pydict()
    return dict(zip(table["URL"], table["blip2_caption1"]))


def _write_samples(data: Path, scenes: list[Any], out: Path, pq: Any) -> None:
    """Scenes as ``scene-NN.jpg`` plus ``samples.json``: caption and worn categories."""
    from referred.data.synth import OUTFITS_FILE

    worn: dict[str, list[str]] = {}
    ids: dict[str, list[str]] = {}
    boxes: dict[str, list[list[float]]] = {}
    if (data / OUTFITS_FILE).is_file():
        cols = ["URL", "CATEGORIES", "PRODUCT_IDS", "BOXES"]
        t = pq.read_table(data / OUTFITS_FILE, columns=cols).to_pydict()
        worn = dict(zip(t["URL"], t["CATEGORIES"]))
        ids = {u: [str(i) for i in p] for u, p in zip(t["URL"], t["PRODUCT_IDS"])}
        boxes = {u: [list(map(float, b)) for b in bs] for u, bs in zip(t["URL"], t["BOXES"])}
    meta = {}
    for i, scene in enumerate(scenes, 1):
        name = f"scene-{i:02d}.jpg"
        (out / name).write_bytes(scene.read_bytes())
        caption = str(scene.meta.get("blip2_caption1") or f"scene {i}")
        meta[name] = {
            "caption": caption,
            "categories": list(worn.get(scene.url, [])),
            "products": ids.get(scene.url, []),  # the worn products' ids, same order
            "boxes": boxes.get(scene.url, []),  # and their boxes (x0, y0, x1, y1 pixels)
        }
    (out / "samples.json").write_text(json.dumps(meta, indent=1))


def sample_pairs(catalog: DemoCatalog) -> list[tuple[Path, str, str]]:
    """(scene image, category, id of the product worn there) for every item of every sample
    scene that is in the catalog: what a shopper clicking the chips would ask."""
    meta = json.loads((catalog.samples / "samples.json").read_text())
    in_catalog = {r[0] for r in catalog.records}
    return [
        (catalog.samples / name, cat, pid)
        for name, m in sorted(meta.items())
        for cat, pid in zip(m.get("categories", []), m.get("products", []))
        if pid in in_catalog
    ]


def sample_shares(searcher: Any, catalog: DemoCatalog, k: int = 12) -> dict[str, Any]:
    """How often each sample scene's chip (the category name, as the page sends it) returns
    the exact product worn: first, and among the ``k`` shown."""
    pairs = sample_pairs(catalog)
    first = shown = 0
    for scene, cat, pid in pairs:
        ids = [h.id for h in searcher.search(scene.read_bytes(), k=k, category=cat)]
        first += bool(ids) and ids[0] == pid
        shown += pid in ids
    n = max(len(pairs), 1)
    return {"pairs": len(pairs), "first": first / n, f"in_{k}": shown / n}


def build_demo_index(model: torch.nn.Module, catalog: DemoCatalog, batch_size: int = 64) -> Any:
    """A flat index of the catalog embedded unconditioned, cached per model fingerprint."""
    from referred.index import create_index, load_index
    from referred.search.provenance import fingerprint, model_record

    cache = catalog.root / f"index-{fingerprint(model)}"
    if (cache / "manifest.json").is_file():
        try:
            index = load_index(cache, mmap=False)
            if len(index) == len(catalog.records):
                _point_current(catalog.root, cache)
                return index
        except (ValueError, OSError) as exc:
            log.warning("rebuilding the demo index (%s)", exc)
    ids = [r[0] for r in catalog.records]
    vectors = shipped_vectors(model, catalog)
    if vectors is None:
        vectors = embed_catalog(model, catalog, batch_size)
    index = create_index("flat", dim=vectors.shape[1])
    index.add(ids, vectors, [r[2] for r in catalog.records])  # (N, D)
    ref = str(DEMO_MODEL_DIR) if (DEMO_MODEL_DIR / "config.json").is_file() else None
    index.info = {"model": model_record(model, ref), "source": str(catalog.images)}
    for old in catalog.root.glob("index-*"):
        shutil.rmtree(old, ignore_errors=True)
    index.save(cache)
    _point_current(catalog.root, cache)
    return index


def embed_catalog(model: torch.nn.Module, catalog: DemoCatalog, batch_size: int = 64) -> Any:
    """The catalog's products embedded unconditioned, (N, D) float32 (all CPU threads)."""
    import os

    from referred.query import QueryEncoder

    previous = torch.get_num_threads()
    torch.set_num_threads(max(previous, os.cpu_count() or 1))  # offline work: every core
    try:
        encoder = QueryEncoder(model, batch_size=batch_size)
        return encoder.encode_targets([r[1] for r in catalog.records]).numpy()
    finally:
        torch.set_num_threads(previous)


def catalog_digest(catalog: DemoCatalog) -> str:
    """sha256 (16 hex digits) of the catalog's ids and image bytes, in order."""
    import hashlib

    h = hashlib.sha256()
    for pid, path, _ in catalog.records:
        h.update(f"{pid}:{path.stat().st_size};".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def save_catalog_vectors(
    model: torch.nn.Module, catalog: DemoCatalog, vectors: Any, folder: Path
) -> Path:
    """Write ``folder/catalog_vectors.npz``: the catalog's ``vectors`` (:func:`embed_catalog`)
    under ``model``, keyed by the model's fingerprint and :func:`catalog_digest`."""
    import numpy as np

    from referred.search.provenance import fingerprint

    path = folder / CATALOG_VECTORS
    np.savez_compressed(
        path,
        ids=np.array([r[0] for r in catalog.records]),
        vectors=np.asarray(vectors, np.float32),
        model=np.array(fingerprint(model)),
        catalog=np.array(catalog_digest(catalog)),
    )
    return path


def shipped_vectors(model: torch.nn.Module, catalog: DemoCatalog) -> Any:
    """The bundled vectors of this catalog under this model, or None (absent or not theirs)."""
    import numpy as np

    from referred.search.provenance import fingerprint

    path = DEMO_MODEL_DIR / CATALOG_VECTORS
    if not path.is_file():
        return None
    with np.load(path) as saved:
        ids = [r[0] for r in catalog.records]
        if (
            str(saved["model"]) != fingerprint(model)
            or saved["ids"].tolist() != ids
            or str(saved["catalog"]) != catalog_digest(catalog)
        ):
            log.info("the bundled catalog vectors are not this model's or catalog's: embedding")
            return None
        return saved["vectors"]


def _point_current(root: Path, cache: Path) -> None:
    """``root/index`` → the current model's index folder (a relative symlink, swapped
    atomically), so users find the demo index under one stable path."""
    link, tmp = root / DEMO_INDEX_LINK, root / f".{DEMO_INDEX_LINK}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(cache.name, target_is_directory=True)
        tmp.replace(link)
    except OSError as exc:  # e.g. no symlinks on this file system: the folder itself works
        log.info("no %s link (%s); the index is %s", link, exc, cache)


def build_demo_app(
    cache: Path,
    settings: Any = None,
    *,
    products: int = DEMO_PRODUCTS,
    distractors: int = DEMO_DISTRACTORS,
    quiet: bool = False,
) -> Any:
    """The FastAPI app serving the demo catalog (built or reused under ``cache``)."""
    from referred.search.searcher import Searcher
    from referred.web.app import create_app
    from referred.web.settings import Settings

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = ensure_demo_data(cache / "data", products, distractors)
    catalog = export_catalog(data, cache / "catalog")
    model, trained = load_demo_model()
    if not trained and not quiet:
        print(f"note: {UNTRAINED_NOTE}", flush=True)
    index = build_demo_index(model, catalog)
    settings = (settings or Settings.from_env()).with_(
        image_root=catalog.images, samples_dir=catalog.samples
    )
    searcher = Searcher(model, index, max_k=settings.max_k, threads=settings.threads)
    searcher.warm_up()
    info = {
        "model": "demo-model" if trained else "untrained tiny CondViT",
        "trained": trained,
        "note": None if trained else UNTRAINED_NOTE,
    }
    log.info("demo catalog of %d products ready in %.1f s", len(index), time.perf_counter() - t0)
    return create_app(settings, searcher=searcher, model=model, index=index, info=info)


def run_demo(
    cache: Path, host: str = "127.0.0.1", port: int = 8000, open_browser: bool = True
) -> None:
    """Build the demo and serve it until interrupted; prints the URL once it answers."""
    import os
    import socket
    import sys
    import threading
    import webbrowser

    import uvicorn

    from referred.web.settings import Settings

    start = time.perf_counter()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading bars
    with socket.socket() as probe:  # fail early, before minutes of work, on a busy port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port "
                "(make demo PORT=8001)"
            ) from None
    print("preparing the demo (a first run builds a synthetic catalog: ~10 s) …", flush=True)
    app = build_demo_app(Path(cache), Settings.from_env(host=host, port=port))
    index = Path(cache) / "catalog" / DEMO_INDEX_LINK
    print(f"demo index: {index} (referred search --index {index} --category Bags IMAGE)")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        print(
            f"referred demo ready in {time.perf_counter() - start:.1f} s: {url}  (Ctrl+C to stop)",
            flush=True,
        )
        gui = (
            sys.platform in ("darwin", "win32")
            or os.environ.get("DISPLAY")
            or os.environ.get("WAYLAND_DISPLAY")
        )
        if open_browser and gui:
            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
