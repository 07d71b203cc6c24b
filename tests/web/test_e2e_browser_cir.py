"""End to end in headless Chromium on the demo's own catalog (1,100 products, the bundled demo
model and its Combiner): "this, but in red" typed on a result card brings red products back.

The catalog is the one ``referred demo`` serves (its vectors ship with the model, so it builds
in well under a minute). Skips as ``test_e2e_browser`` does without Playwright or Chromium,
and says why when the bundled model has no Combiner.
"""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import serving
from tests.web.test_e2e_browser import (  # browser: the same headless Chromium fixture
    _shot,
    _wait_until,
    _watched_page,
    browser,  # noqa: F401
)

RED = re.compile(r"\bred\b", re.IGNORECASE)
#: Colours a card's title may start with (a dress to ask "but in red" of).
OTHER_COLOURS = ("black", "blue", "navy", "grey", "white", "green", "brown", "beige", "purple")


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    from referred.demo import build_demo_app
    from referred.web.settings import Settings

    app = build_demo_app(tmp_path_factory.mktemp("demo-full"), Settings(), quiet=True)
    if app.state.searcher.composer is None:
        pytest.skip("the bundled demo model has no Combiner (combiner.safetensors)")
    with serving(app) as url:
        yield url


def _titles(page) -> list[str]:
    return page.eval_on_selector_all("#results .card .title", "els => els.map(e => e.textContent)")


def test_this_but_in_red_on_a_result_card(demo_url, browser, tmp_path):  # noqa: F811
    page, problems = _watched_page(browser, demo_url)
    page.wait_for_selector("#results .card")  # the first sample scene's results
    page.locator(".chip", has_text="Whole Body").click()
    page.locator("#results-title", has_text="Whole Body").wait_for()
    page.wait_for_selector("#results .card .but-form")
    cards = page.locator("#results .card")
    assert page.locator("#results .card .but-form").count() == cards.count() == 12  # every card
    before = _titles(page)
    pick = next(
        i for i, t in enumerate(before) if t.lower().startswith(OTHER_COLOURS) and not RED.search(t)
    )
    card = cards.nth(pick)
    chosen = card.get_attribute("title")  # the card's title attribute is its product id
    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        card.locator(".but-input").fill("but in red")
        card.locator(".but-input").press("Enter")
    assert answer.value.status == 200, answer.value.text()
    body = answer.value.json()
    assert body["like"] == chosen and body["modify"] == "but in red"
    after = [r["title"] for r in body["results"]]
    assert chosen not in [r["id"] for r in body["results"]]  # that product itself: not again
    red_before = sum(1 for t in before if RED.search(t))  # the photo's dresses
    red_after = sum(1 for t in after if RED.search(t))
    assert red_after >= 3 and red_after > red_before, (before[pick], before, after)
    page.locator("#results-title", has_text=f"“{before[pick]}”, but in red").wait_for()
    _wait_until(page, f"() => document.querySelector('#results .card').title === "
                      f"'{body['results'][0]['id']}'")  # fmt: skip
    assert _titles(page) == after  # the page shows what the service answered
    _shot(page, "search-like-red.png", tmp_path)

    # a thumb refines these results in place, still like that product
    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        page.locator("#results .card").nth(1).locator(".vote.up").click()
    refined = answer.value.json()
    assert refined["like"] == chosen and refined["modify"] == "but in red"
    page.locator("#results-title", has_text="refined by 1 mark").wait_for()

    # a chip goes back to the photo's item
    with page.expect_response(lambda r: r.url.endswith("/search")) as answer:
        page.locator(".chip", has_text="Whole Body").click()
    assert answer.value.json()["like"] is None
    _wait_until(page, "() => !document.querySelector('#results-title').textContent"
                      ".includes('but in red')")  # fmt: skip
    assert not problems, problems
