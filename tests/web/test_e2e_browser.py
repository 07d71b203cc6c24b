"""End to end in headless Chromium: the real server on 127.0.0.1, a tiny synthetic catalog,
the real Searcher and a tiny model; a person uploads a photo, picks a category, sees results.

Skips cleanly without the ``playwright`` package or a Chromium binary (``/usr/bin/chromium``,
or the path in ``REFERRED_CHROMIUM``). ``REFERRED_SCREENSHOTS=DIR`` keeps the screenshots.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.web.conftest import serving

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("REFERRED_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A uvicorn server over a 30-product synthetic catalog, on a free loopback port."""
    from referred.demo import build_demo_app
    from referred.web.settings import Settings

    cache = tmp_path_factory.mktemp("demo")
    app = build_demo_app(cache, Settings(), products=30, distractors=20, quiet=True)
    with serving(app) as url:
        yield url, cache


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1360, "height": 900},
        )
        yield context
        context.close()


def client_accepts_text(url: str) -> bool:
    import json
    import urllib.request

    with urllib.request.urlopen(url + "/categories", timeout=10) as r:
        return bool(json.load(r)["accepts_text"])


def _wait_until(page, predicate: str, timeout: float = 20.0) -> None:
    """Poll a JS predicate with ``page.evaluate`` (``wait_for_function`` evaluates it inside
    the page with ``eval``, which the page's Content-Security-Policy refuses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        page.wait_for_timeout(50)


def _shot(page, name: str, tmp_path: Path) -> Path:
    out_dir = Path(os.environ.get("REFERRED_SCREENSHOTS") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    page.wait_for_timeout(400)  # let the cards' entrance animation finish
    page.screenshot(path=str(path), full_page=True)
    return path


def _watched_page(browser, url: str) -> tuple[Any, list[str]]:
    """A new page on the app, with its script errors and console errors collected."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(url + "/")
    page.wait_for_selector(".chip")
    return page, problems


def _an_absent_category(url: str, photo: Path) -> str | None:
    """A category the service's presence head says the photo does not wear (None: no head,
    or it finds all)."""
    import httpx

    r = httpx.post(f"{url}/presence", files={"image": ("p.jpg", photo.read_bytes())}, timeout=60)
    if r.status_code != 200:
        return None
    presence = r.json()["presence"]
    return next((c for c, p in presence.items() if not p["present"]), None)


def _search_json(url: str, cache: Path, **fields) -> dict:
    """POST /search with the first sample scene, as the page sends it."""
    import httpx

    photo = sorted((cache / "catalog" / "samples").glob("scene-*.jpg"))[0]
    files = {"image": ("p.jpg", photo.read_bytes())}
    r = httpx.post(f"{url}/search", files=files, data=fields, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _search_a_sample_for_bags(page, cache: Path) -> None:
    """Upload the first sample scene as a file and pick the Bags chip; wait for the results."""
    photo = sorted((cache / "catalog" / "samples").glob("scene-*.jpg"))[0]
    page.set_input_files("#file", str(photo))
    page.locator(".chip", has_text="Bags").click()
    # "Results for Bags", or with a presence head that finds no bag there, "No Bags found in
    # this photo — the closest below"
    page.locator("#results-title", has_text="Bags").wait_for()


def test_upload_pick_category_see_results(server, browser, tmp_path):
    url, cache = server
    page, problems = _watched_page(browser, url)
    assert page.locator(".chip").count() == 10
    text_model = client_accepts_text(url)
    assert page.locator("#text-form").is_visible() == text_model  # text box for text models

    _search_a_sample_for_bags(page, cache)
    page.wait_for_selector(".card img")
    cards = page.locator("#results .card")
    assert cards.count() == 12
    if page.evaluate("() => fetch('/presence', {method: 'OPTIONS'}).then(r => r.ok)"):
        # an upload: the model's presence head marks the chips of the items it finds
        page.wait_for_selector(".chip.worn[title='found in this photo']")
    first = cards.first
    assert first.locator(".title").inner_text().strip()
    assert float(first.locator(".score").inner_text()) <= 1.0
    # product images are served and decode in the browser
    _wait_until(
        page, "() => [...document.querySelectorAll('#results .card img')].every(i => i.complete)"
    )
    widths = page.eval_on_selector_all("#results .card img", "els => els.map(e => e.naturalWidth)")
    assert all(w > 0 for w in widths)
    # the attention overlay was drawn over the photo
    drawn = page.evaluate("""() => {
        const c = document.querySelector('#heat');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
        return false;
    }""")
    assert drawn
    shot = _shot(page, "search.png", tmp_path)
    assert shot.stat().st_size > 10_000
    # results the service marks weak (under the score floor, or of another category) are dimmed
    # and labelled on the page, and no other card is
    weak = [r["weak"] for r in _search_json(url, cache, category="Bags", k=12)["results"]]
    labels = page.eval_on_selector_all(
        "#results .card", "els => els.map(e => e.classList.contains('weak'))"
    )
    assert labels == weak
    assert page.locator("#results .card.weak .weak-note").count() == sum(weak)

    # more photos of the same item: searched together (their queries averaged)
    before = page.eval_on_selector_all(
        "#results .card .score", "els => els.map(e => e.textContent)"
    )
    first_scene = sorted((cache / "catalog" / "samples").glob("scene-*.jpg"))[0]
    with Image.open(first_scene) as scene:  # the same look, seen mirrored
        scene.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "mirrored.jpg")
    page.set_input_files("#more-file", str(tmp_path / "mirrored.jpg"))
    page.locator("#results-title", has_text="2 photos").wait_for()
    page.locator("#more-note", has_text="searching with 1 more photo").wait_for()
    page.wait_for_selector("#results .card .score")
    after = page.eval_on_selector_all("#results .card .score", "els => els.map(e => e.textContent)")
    assert len(after) == 12 and after != before
    page.click("#clear-more")
    page.wait_for_function("() => !document.querySelector('#results-title').textContent"
                           ".includes('photos')")  # fmt: skip

    if text_model:  # the demo model takes free text too
        page.fill("#text", "a red striped scarf")
        page.press("#text", "Enter")
        page.locator("#results-title", has_text="a red striped scarf").wait_for()
        page.wait_for_selector("#results .card .title")
        assert page.locator("#results .card").count() == 12
        _shot(page, "search-text.png", tmp_path)

    absent = _an_absent_category(
        url, sorted((cache / "catalog" / "samples").glob("scene-*.jpg"))[0]
    )
    if absent:  # the page says the item is not there, and still shows the closest products
        page.locator(".chip", has_text=absent).first.click()
        page.locator("#results-title", has_text=f"No {absent} found in this photo").wait_for()
        page.wait_for_selector("#results.weak .card")

    page.click("#look")
    page.wait_for_selector(".look-row")
    found = page.locator(".chip.worn").count()  # an upload: what the presence head finds …
    rows = page.locator(".look-row").count()
    assert rows == (found or 10)  # … or, without a head, every category
    if rows < 10:
        assert "not in this photo:" in page.locator("#results-title").inner_text()
    _shot(page, "shop-the-look.png", tmp_path)
    assert not problems, problems


def test_bad_upload_shows_the_message_and_clears_old_results(server, browser, tmp_path):
    url, _ = server
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("#results .card")  # the first sample's results
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    page.locator(".chip", has_text="Feet").click()
    page.set_input_files("#file", str(bad))
    page.wait_for_selector(".status.error")
    message = page.locator("#status").inner_text()
    assert "not a recognised image" in message and "JPEG, PNG, WebP, GIF, BMP or TIFF" in message
    assert page.locator("#results .card").count() == 0  # no results of the previous photo
    assert page.locator("#results-title").inner_text() == "Results"


def test_the_text_box_is_on_screen_at_1366x900(server, browser):
    url, _ = server
    if not client_accepts_text(url):
        pytest.skip("the served model takes no text: no text box")
    page = browser.new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(url + "/")
    page.wait_for_selector("#results .card")
    box = page.locator("#text").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 900, box  # above the fold
    fits = page.evaluate("""() => {
        const input = document.querySelector('#text');
        const style = getComputedStyle(input);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = `${style.fontSize} ${style.fontFamily}`;
        const text = ctx.measureText(input.placeholder).width;
        const pad = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
        const room = input.clientWidth - pad;
        return [text, room];
    }""")
    assert fits[0] <= fits[1], f"placeholder {fits[0]:.0f} px in {fits[1]:.0f} px: cut"


def test_sample_scenes_start_the_demo(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector(".sample.active")  # the first sample is picked on load
    page.wait_for_selector("#results .card")
    assert page.locator(".chip[aria-pressed=true]").count() == 1
    assert page.locator(".chip.worn").count() >= 3  # the scene's items are marked


def test_drag_a_box_on_the_photo_then_clear_it(server, browser, tmp_path):
    url, cache = server
    page, problems = _watched_page(browser, url)
    choosers: list[object] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    _search_a_sample_for_bags(page, cache)
    assert page.locator("#clear-box").is_hidden()

    area = page.locator("#region").bounding_box()
    x0, y0 = area["x"] + area["width"] * 0.30, area["y"] + area["height"] * 0.25
    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + area["width"] * 0.2, y0 + area["height"] * 0.2, steps=5)
        page.mouse.move(x0 + area["width"] * 0.4, y0 + area["height"] * 0.5, steps=5)
        page.mouse.up()
    box = answer.value.json()["box"]  # the service echoes the box it searched
    values = [float(v) for v in box.split(",")]
    assert len(values) == 4 and all(0 <= v <= 1 for v in values)
    assert values[0] < values[2] and values[1] < values[3]
    # "Results for Bags in the box", or "No Bags found in the box — the closest below"
    page.locator("#results-title", has_text="in the box").wait_for()
    page.wait_for_selector("#results .card")
    assert page.locator("#clear-box").is_visible()
    dimmed = page.evaluate("""() => {
        const c = document.querySelector('#region');
        return c.getContext('2d').getImageData(2, 2, 1, 1).data[3] > 0;
    }""")
    assert dimmed  # outside the box is dimmed
    _shot(page, "search-box.png", tmp_path)
    assert not choosers  # drawing the box did not open the file chooser

    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        page.click("#clear-box")
    assert answer.value.json()["box"] is None
    _wait_until(
        page,
        """() => { const t = document.querySelector('#results-title').textContent;
                   return t.includes('Bags') && !t.includes('the box'); }""",
    )
    assert page.locator("#clear-box").is_hidden()
    assert not problems, problems


def test_a_thumb_on_a_result_refines_the_results_in_place(server, browser, tmp_path):
    url, cache = server
    page, problems = _watched_page(browser, url)
    _search_a_sample_for_bags(page, cache)
    page.wait_for_selector("#results .card .vote.up")
    cards = page.locator("#results .card")
    fifth = cards.nth(4).get_attribute("title")  # the card's title attribute is its id
    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        cards.nth(4).locator(".vote.up").click()
    results = answer.value.json()["results"]
    assert results[0]["id"] == fifth  # marked good: now first
    page.locator("#results-title", has_text="refined by 1 mark").wait_for()
    _wait_until(page, f"() => document.querySelector('#results .card').title === '{fifth}'")
    first = page.locator("#results .card").first
    assert first.locator(".vote.up").get_attribute("aria-pressed") == "true"
    _shot(page, "search-feedback.png", tmp_path)
    with page.expect_response(lambda r: r.url.endswith("/search")):
        first.locator(".vote.down").click()  # changed its mind: "not this"
    page.locator("#results-title", has_text="refined by 1 mark").wait_for()
    _wait_until(page, f"() => document.querySelector('#results .card').title !== '{fifth}'")
    assert not problems, problems


def test_words_typed_under_not_these_drop_the_results_that_name_them(server, browser):
    url, cache = server
    page, problems = _watched_page(browser, url)
    _search_a_sample_for_bags(page, cache)
    page.wait_for_selector("#results .card .title")
    word = page.locator("#results .card .title").first.inner_text().split()[0].lower()
    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        page.fill("#exclude", word)
        page.press("#exclude", "Enter")
    results = answer.value.json()["results"]
    assert results and all(word not in (r["title"] or "").lower().split() for r in results)
    page.locator("#results-title", has_text=f"not {word}").wait_for()
    assert not problems, problems


def test_this_but_changed_composes_the_query(server, browser):
    url, cache = server
    page, problems = _watched_page(browser, url)
    _search_a_sample_for_bags(page, cache)
    page.wait_for_selector("#results .card .title")
    if page.locator("#modify-form").is_hidden():
        pytest.skip("the served model has no Combiner (GET /categories: composes false)")
    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        page.fill("#modify", "in red")
        page.press("#modify", "Enter")
    assert answer.value.status == 200 and answer.value.json()["modify"] == "in red"
    page.locator("#results-title", has_text="but in red").wait_for()
    assert not problems, problems
