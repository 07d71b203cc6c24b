"""Presence over HTTP: /search says whether the item is worn, /shop-the-look leaves out what
is absent unless asked, /presence lists every category; a model without a head says so."""

from __future__ import annotations

PROBS = {"Bags": 0.91, "Feet": 0.12, "Head": 0.03, "Upper Body": 0.77}


def post(client, route, photo, **fields):
    return client.post(route, files={"image": ("p.png", photo, "image/png")}, data=fields)


def test_search_answers_presence_with_its_results(make_client, photo):
    client = make_client(presence=PROBS)
    worn = post(client, "/search", photo, category="Bags").json()
    assert worn["presence"] == {"present": True, "probability": 0.91} and worn["results"]
    absent = post(client, "/search", photo, category="Head").json()
    assert absent["presence"] == {"present": False, "probability": 0.03}
    assert absent["results"], "the closest products are still returned, marked by presence"


def test_without_a_head_presence_is_null_and_the_route_says_why(client, photo):
    assert post(client, "/search", photo, category="Bags").json()["presence"] is None
    r = post(client, "/presence", photo)
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_presence_head"
    assert "referred train --task presence" in r.json()["error"]["message"]
    look = post(client, "/shop-the-look", photo, categories="Bags,Head").json()
    assert set(look["results"]) == {"Bags", "Head"} and look["presence"] is None


def test_shop_the_look_shows_only_what_is_found_unless_asked_for_all(make_client, photo):
    client = make_client(presence=PROBS)
    look = post(client, "/shop-the-look", photo, categories="Bags,Feet,Head,Upper Body").json()
    assert list(look["results"]) == ["Bags", "Upper Body"]
    assert look["absent"] == ["Feet", "Head"]
    assert look["presence"]["Feet"] == {"present": False, "probability": 0.12}
    everything = post(
        client, "/shop-the-look", photo, categories="Bags,Feet,Head", include_absent="true"
    ).json()
    assert list(everything["results"]) == ["Bags", "Feet", "Head"] and everything["absent"] == []
    none = post(client, "/shop-the-look", photo, categories="Feet,Head").json()
    assert none["results"] == {} and none["absent"] == ["Feet", "Head"]


def test_presence_lists_categories_and_takes_a_box(make_client, photo):
    client = make_client(presence=PROBS)
    r = post(client, "/presence", photo, categories="Bags,Head", box="0,0,14,30")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "presence": {
            "Bags": {"present": True, "probability": 0.91},
            "Head": {"present": False, "probability": 0.03},
        },
        "box": "0,0,14,30",
    }
    assert client.app.state.fake.sizes[-1] == (14, 30)
    everything = post(client, "/presence", photo).json()["presence"]
    assert len(everything) == 10
    bad = post(client, "/presence", photo, categories="Hats")
    assert bad.status_code == 422 and "Hats" in bad.json()["error"]["message"]
    flag = post(client, "/shop-the-look", photo, include_absent="maybe")
    assert flag.status_code == 422 and "include_absent" in flag.json()["error"]["message"]


def test_results_under_the_score_floor_are_marked_weak(client, photo):
    fake = client.app.state.fake
    files = {"image": ("p.png", photo, "image/png")}
    plain = client.post("/search", files=files, data={"category": "Bags", "k": 6}).json()
    assert [r["weak"] for r in plain["results"]] == [False] * 6
    scores = [r["score"] for r in plain["results"]]
    fake.score_floor = (scores[1] + scores[2]) / 2
    try:
        r = client.post("/search", files=files, data={"category": "Bags", "k": 6})
        assert [x["weak"] for x in r.json()["results"]] == [False] * 2 + [True] * 4
    finally:
        fake.score_floor = None
    schema = client.get("/openapi.json").json()["components"]["schemas"]["Result"]
    assert schema["properties"]["weak"]["type"] == "boolean"
    assert "score floor" in schema["properties"]["weak"]["description"]
