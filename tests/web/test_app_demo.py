"""The real stack in-process: the demo's catalog, the real Searcher and a tiny CondViT; the
lifespan loading a saved index and model; the ``serve`` and ``demo`` command lines."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from referred.demo import load_demo_model
from referred.web.settings import Settings
from referred.zoom.overlay import SCALE

TOKEN = "demo-admin-token-0123456789"
#: Issue #12's targets for the demo as served: of the sample scenes' worn items, the chip
#: returns the exact product first for >= 60% and among the 12 shown for >= 90%; the overlay
#: holds >= 50% of its mass inside the item's box for >= 80%. The bundled model's figures when
#: it was made are in its config ("demo"); the models bundled before it reached 4 and 17 of 51
#: (whole-scene hybrid), 2 and 12 (hybrid on 4,000 products), 1 and 6 (tiny).
FIRST_FLOOR, SHOWN_FLOOR, OVERLAY_FLOOR = 0.60, 0.90, 0.80


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from referred.demo import build_demo_app

    cache = tmp_path_factory.mktemp("demo")
    settings = Settings(admin_token=TOKEN, upload_dir=cache / "uploads")
    app = build_demo_app(cache, settings, products=30, distractors=20, quiet=True)
    with TestClient(app) as client:
        yield client, cache


def _scene(cache: Path) -> bytes:
    return sorted((cache / "catalog" / "samples").glob("scene-*.jpg"))[0].read_bytes()


def test_demo_search_results_and_images(demo):
    client, cache = demo
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["products"] == 23
    assert isinstance(health["trained_model"], bool)
    r = client.post(
        "/search",
        files={"image": ("s.jpg", _scene(cache))},
        data={"category": "Bags", "k": "5", "attention": "1"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["results"]) == 5
    for hit in body["results"]:
        assert hit["title"] and hit["category"]
        assert "kind" not in hit  # the catalog's internal product/distractor label stays inside
        img = client.get(hit["image_url"])
        assert img.status_code == 200 and img.content[:2] == b"\xff\xd8"
    att = body["attention"]
    model = load_demo_model()[0]  # tiny: 8×8 patches; hybrid-lite0: the trunk's 14×14
    cfg, locator = model.config, getattr(model, "locator", None)
    if locator is None:
        assert att["size"] == cfg.grid * (cfg.trunk_patch if cfg.trunk else 1)
    else:  # zooming: where the locator found the item, 4 × its grid (referred.zoom.overlay)
        assert att["size"] == locator.grid * SCALE == 56
    assert abs(np.sum(att["grid"]) - 1) < 1e-3


def test_demo_filter_shop_the_look_and_samples(demo):
    client, cache = demo
    r = client.post(
        "/search",
        files={"image": ("s.jpg", _scene(cache))},
        data={"category": "Feet", "filter": '{"kind": "product"}'},
    )
    # the internal label still filters (server-side): distractors have ids "d<n>"
    assert r.status_code == 200 and r.json()["results"]
    assert not any(x["id"].startswith("d") for x in r.json()["results"])
    r = client.post(
        "/search",
        files={"image": ("s.jpg", _scene(cache))},
        data={"category": "Feet", "filter": '{"colour": "red"}'},
    )
    assert r.status_code == 422 and "colour" in r.json()["error"]["message"]
    samples = client.get("/samples").json()["samples"]
    assert samples and all(s["categories"] for s in samples)
    worn = samples[0]["categories"]
    r = client.post(
        "/shop-the-look",
        files={"image": ("s.jpg", _scene(cache))},
        data={"categories": ",".join(worn), "k": "3", "include_absent": "true"},
    )  # every category asked, found or not (the page's request for a sample scene)
    assert r.status_code == 200 and list(r.json()["results"]) == worn
    for cat, hits in r.json()["results"].items():
        assert all(h["category"] == cat for h in hits)


def test_demo_add_and_delete_a_product(demo):
    client, cache = demo
    product = next((cache / "catalog" / "images").glob("d*.jpg")).read_bytes()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.post(
        "/products",
        headers=auth,
        files={"image": ("p.jpg", product)},
        data={"id": "new-1", "category": "Bags", "title": "A new bag"},
    )
    assert r.status_code == 201 and r.json()["products"] == 24
    assert client.get("/products/new-1/image").content == product
    r = client.post(
        "/search",
        files={"image": ("s.jpg", _scene(cache))},
        data={"category": "Bags", "k": "30", "filter": '{"category": "Bags"}'},
    )
    assert "new-1" in [x["id"] for x in r.json()["results"]]
    assert client.delete("/products/new-1", headers=auth).json()["products"] == 23


def test_lifespan_loads_a_saved_index_and_model(demo, tmp_path):
    client, cache = demo
    searcher = client.app.state.searcher
    model_dir, index_dir = tmp_path / "model", tmp_path / "index"
    searcher.model.save_pretrained(model_dir)
    searcher.index.save(index_dir)
    from referred.web.app import create_app

    # no --images: product images come from the catalog folder recorded in the index
    settings = Settings(index_dir=index_dir, model_path=str(model_dir))
    with TestClient(create_app(settings)) as served:
        assert served.get("/healthz").json()["products"] == 23
        r = served.post(
            "/search",
            files={"image": ("s.jpg", _scene(cache))},
            data={"category": "Head", "k": "3"},
        )
        assert r.status_code == 200 and len(r.json()["results"]) == 3
        assert served.get(r.json()["results"][0]["image_url"]).status_code == 200
        assert served.get("/categories").json()["accepts_text"] is True  # the demo model


def _serve_args(argv: list[str]) -> argparse.Namespace:
    from referred.cli import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_serve_flags_become_settings(tmp_path, monkeypatch):
    from referred.cli import UserError
    from referred.cli.serve import settings_from_args

    monkeypatch.delenv("REFERRED_ADMIN_TOKEN", raising=False)
    (tmp_path / "idx").mkdir()
    token = tmp_path / "token"
    token.write_text("x" * 32 + "\n")
    args = _serve_args(
        [
            "--index",
            str(tmp_path / "idx"),
            "--port",
            "9001",
            "--max-upload-mb",
            "2",
            "--max-megapixels",
            "12",
            "--admin-token-file",
            str(token),
        ]
    )
    s = settings_from_args(args)
    assert s.port == 9001 and s.max_upload_bytes == 2 * 1024 * 1024
    assert s.max_pixels == 12_000_000 and s.admin_token == "x" * 32 and s.host == "127.0.0.1"
    with pytest.raises(UserError, match="--index"):
        settings_from_args(_serve_args([]))
    with pytest.raises(UserError, match="not found"):
        settings_from_args(_serve_args(["--index", str(tmp_path / "missing")]))
    token.write_text("short")
    with pytest.raises(UserError, match="shorter than 16"):
        settings_from_args(
            _serve_args(["--index", str(tmp_path / "idx"), "--admin-token-file", str(token)])
        )


def test_demo_refuses_a_busy_port(tmp_path):
    from referred.demo import run_demo

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match="--port"):
            run_demo(tmp_path, port=port, open_browser=False)


@pytest.fixture(scope="module")
def bigger_demo(tmp_path_factory):
    """The demo over 20 test products (about 5 outfits of sample scenes)."""
    from referred.demo import build_demo_app

    cache = tmp_path_factory.mktemp("demo-200")
    app = build_demo_app(cache, Settings(), products=200, distractors=20, quiet=True)
    with TestClient(app) as client:
        yield client, cache


def test_the_bundled_demo_model_is_trained_and_takes_text(bigger_demo):
    """The committed demo model finds the kind of item asked for in held-out scenes (an
    untrained one is right ~1 time in 10), by category chip and by free text."""
    from referred.data.synth.attributes import VARIANTS

    client, cache = bigger_demo
    assert client.get("/healthz").json()["trained_model"] is True
    cats = client.get("/categories").json()
    assert cats["accepts_text"] is True and cats["categories_as_text"] is True
    samples = client.get("/samples").json()["samples"]
    asked = right = 0
    for sample in samples:
        scene = (cache / "catalog" / "samples" / sample["name"]).read_bytes()
        for category in sample["categories"]:
            r = client.post(
                "/search", files={"image": ("s.jpg", scene)}, data={"category": category, "k": "1"}
            )
            assert r.status_code == 200, r.text
            asked += 1
            right += r.json()["results"][0]["category"] == category
    assert asked >= 9 and right / asked >= 0.8, ("by category", right, asked)
    asked = right = 0
    for sample in samples:  # free text naming a worn item: "the tote bag", "the sneakers"
        scene = (cache / "catalog" / "samples" / sample["name"]).read_bytes()
        for category in sample["categories"]:
            text = f"the {VARIANTS[category][0]}"
            r = client.post(
                "/search", files={"image": ("s.jpg", scene)}, data={"text": text, "k": "1"}
            )
            assert r.status_code == 200 and r.json()["condition"]["text"] == text
            asked += 1
            right += r.json()["results"][0]["category"] == category
    assert right / asked >= 0.7, ("by text", right, asked)


def test_the_demo_index_has_a_stable_path_the_cli_can_search(demo, capsys):
    from referred.cli import main
    from referred.index import load_index

    _, cache = demo
    link = cache / "catalog" / "index"
    assert link.is_symlink() and load_index(link).info["model"]
    scene = sorted((cache / "catalog" / "samples").glob("scene-*.jpg"))[0]
    assert main(["search", "--index", str(link), "--category", "bags", str(scene), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("# ")  # presence, header, 2 results
    assert "bags" in lines[0].lower() and "presence" in lines[0]


def test_the_demo_data_is_redrawn_when_the_generator_changes(tmp_path, monkeypatch):
    import referred.data.synth as synth
    from referred.demo import ensure_demo_data

    root = ensure_demo_data(tmp_path / "d", products=30, distractors=10)
    marker = (root / ".complete").read_text()
    assert ensure_demo_data(root, products=30, distractors=10) == root  # reused as it is
    assert (root / ".complete").read_text() == marker
    monkeypatch.setattr(synth, "GENERATOR_VERSION", synth.GENERATOR_VERSION + 1)
    ensure_demo_data(root, products=30, distractors=10)
    assert (root / ".complete").read_text() != marker  # an older drawing is not reused


def test_bundled_catalog_vectors_are_used_only_for_their_model_and_catalog(tmp_path, monkeypatch):
    from PIL import Image

    import referred
    from referred import demo

    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i in range(3):
        Image.new("RGB", (20, 20), (40 * i, 90, 200)).save(images / f"{i}.jpg")
        records.append((str(i), images / f"{i}.jpg", {"category": "Bags"}))
    catalog = demo.DemoCatalog(tmp_path, images, tmp_path, records)
    model = referred.create_model("tiny", categories=("Bags",), seed=0)
    vectors = demo.embed_catalog(model, catalog)
    monkeypatch.setattr(demo, "DEMO_MODEL_DIR", tmp_path)
    assert demo.shipped_vectors(model, catalog) is None  # none bundled
    demo.save_catalog_vectors(model, catalog, vectors, tmp_path)
    np.testing.assert_array_equal(demo.shipped_vectors(model, catalog), vectors)
    other = referred.create_model("tiny", categories=("Bags",), seed=1)
    assert demo.shipped_vectors(other, catalog) is None  # another model's weights
    Image.new("RGB", (20, 20), "red").save(images / "1.jpg")
    assert demo.shipped_vectors(model, catalog) is None  # a catalog image changed


@pytest.fixture(scope="module")
def demo_as_served(tmp_path_factory):
    """The bundled model over the demo's default catalog (1,000 test products + 1,000
    distractors, samples drawn from the test split), as `make demo` serves it."""
    from referred.demo import build_demo_index, ensure_demo_data, export_catalog
    from referred.search import Searcher

    model, trained = load_demo_model()
    assert trained
    root = tmp_path_factory.mktemp("demo-full")
    catalog = export_catalog(ensure_demo_data(root / "data"), root / "catalog")
    return Searcher(model, build_demo_index(model, catalog)), catalog


def test_the_demo_chips_find_the_worn_products_of_its_sample_scenes(demo_as_served, capsys):
    """How often the chip of each worn item of the sample scenes returns that exact product
    first and among the 12 shown. The floors are issue #12's targets; the bundled model's
    shares when it was made are in its config ("demo" "sample_scenes")."""
    from referred.demo import sample_shares

    searcher, catalog = demo_as_served
    shares = sample_shares(searcher, catalog)
    with capsys.disabled():
        print(
            f"\ndemo sample scenes: {shares['pairs']} worn items, exact product first "
            f"{100 * shares['first']:.0f}%, among the 12 shown {100 * shares['in_12']:.0f}%"
        )
    assert shares["pairs"] >= 40
    assert shares["first"] >= FIRST_FLOOR and shares["in_12"] >= SHOWN_FLOOR, shares


def test_the_demo_overlay_lands_on_the_asked_item(demo_as_served, capsys):
    """The overlay the page draws for each worn item's chip (at >= 14 x 14) holds at least
    half its mass inside that item's box (the generator's) for >= 80% of the pairs."""
    from PIL import Image

    from referred.zoom.boxes import mass_in_box

    searcher, catalog = demo_as_served
    meta = json.loads((catalog.samples / "samples.json").read_text())
    shares = []
    for name, m in sorted(meta.items()):
        scene = catalog.samples / name
        size = Image.open(scene).size
        for category, box in zip(m["categories"], m["boxes"]):
            amap = searcher.attention(scene.read_bytes(), category=category)
            assert amap.shape[0] >= 14 and amap.shape[0] == amap.shape[1]
            shares.append(mass_in_box(amap, box, size))
    half = float(np.mean(np.asarray(shares) >= 0.5))
    with capsys.disabled():
        print(
            f"\ndemo overlay: {len(shares)} worn items, median mass in the item's box "
            f"{100 * np.median(shares):.0f}%, pairs with >= 50% inside {100 * half:.0f}%"
        )
    assert len(shares) >= 40 and half >= OVERLAY_FLOOR, shares


def test_the_bundled_demo_model_knows_which_items_a_sample_scene_wears(bigger_demo):
    """Its presence head (docs/benchmarks.md, "Not in this photo") scores the items each sample
    scene wears above those it does not; shop-the-look leaves the absent ones out."""
    from referred.presence import roc_auc

    client, cache = bigger_demo
    samples = client.get("/samples").json()["samples"]
    labels, scores = [], []
    for sample in samples:
        scene = (cache / "catalog" / "samples" / sample["name"]).read_bytes()
        r = client.post("/presence", files={"image": ("s.jpg", scene)})
        assert r.status_code == 200, r.text
        for category, p in r.json()["presence"].items():
            labels.append(category in sample["categories"])
            scores.append(p["probability"])
    assert 0 < sum(labels) < len(labels)
    assert roc_auc(labels, scores) >= 0.85, roc_auc(labels, scores)
    scene = (cache / "catalog" / "samples" / samples[0]["name"]).read_bytes()
    look = client.post("/shop-the-look", files={"image": ("s.jpg", scene)}, data={"k": "1"})
    body = look.json()
    assert set(body["results"]) | set(body["absent"]) == set(body["presence"])
    assert all(not body["presence"][c]["present"] for c in body["absent"])
