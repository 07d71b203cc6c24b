"""``modify`` on POST /search ("this, but in red"): composed by the Searcher's Combiner, echoed;
a model without one, an empty or over-long modification → 422 naming what is accepted."""

from __future__ import annotations


def post(client, photo, **fields):
    return client.post("/search", files={"image": ("p.png", photo, "image/png")}, data=fields)


def test_modify_reaches_the_searcher_and_changes_the_results(client, photo):
    assert client.get("/categories").json()["composes"] is False
    client.app.state.fake.composes = True
    assert client.get("/categories").json()["composes"] is True
    plain = post(client, photo, category="Bags", k=20).json()
    r = post(client, photo, category="Bags", k=20, modify="but in red")
    assert r.status_code == 200, r.text
    assert r.json()["modify"] == "but in red" and plain["modify"] is None
    assert [x["id"] for x in r.json()["results"]] != [x["id"] for x in plain["results"]]


def test_modify_without_a_combiner_or_with_bad_text_is_a_422(client, photo):
    r = post(client, photo, category="Bags", modify="in red")
    assert r.status_code == 422 and "has no Combiner" in r.json()["error"]["message"]
    client.app.state.fake.composes = True
    r = post(client, photo, category="Bags", modify="   ")
    assert r.status_code == 422 and "modify is empty" in r.json()["error"]["message"]
    r = post(client, photo, category="Bags", modify="")  # an empty form field: not given
    assert r.status_code == 200 and r.json()["modify"] is None
    r = post(client, photo, category="Bags", modify="x" * 301)
    assert r.status_code == 422 and "at most 300" in r.json()["error"]["message"]
