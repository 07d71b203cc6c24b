"""`referred index build` and `referred search`, in-process through `referred.cli.main`."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import torch
from PIL import Image

import referred
import referred.cli as cli
import referred.model.encoding as encoding

CATS = ("Bags", "Feet", "Head")


@pytest.fixture(autouse=True)
def verbs(monkeypatch):
    """Register the verbs even before `referred.cli._VERBS` lists them."""
    monkeypatch.setattr(cli, "_VERBS", tuple(dict.fromkeys((*cli._VERBS, "index", "search"))))


def photos(root, per_category: int = 3):
    """Random product photos in category folders, plus one corrupt file."""
    rng = np.random.default_rng(0)
    for cat in CATS:
        (root / cat).mkdir(parents=True)
        for i in range(per_category):
            img = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cat / f"{cat.lower()}{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def fake_text_encoder(texts):
    out = []
    for t in texts:
        v = np.random.default_rng(sum(map(ord, t))).standard_normal(384).astype(np.float32)
        out.append(v / np.linalg.norm(v))
    return torch.from_numpy(np.stack(out))


def build(root, *extra):
    argv = ["index", "build", "--model", str(root / "model"), "--images", str(root / "photos")]
    return cli.main([*argv, "--no-progress", *extra])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A category model, a photo folder and a flat index ``idx`` built from it (read-only);
    the build's exit code, stdout and stderr are kept in ``root.build``."""
    root = tmp_path_factory.mktemp("shop")
    referred.create_model("tiny", categories=CATS, seed=0).save_pretrained(root / "model")
    photos(root / "photos")
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
        mp.setattr(cli, "_VERBS", tuple(dict.fromkeys((*cli._VERBS, "index", "search"))))
        code = build(root, "--out", str(root / "idx"))
    (root / "build.txt").write_text(json.dumps([code, out.getvalue(), err.getvalue()]))
    return root


def test_build_skips_the_corrupt_image_then_every_kind_of_search(built, capsys):
    code, out, err = json.loads((built / "build.txt").read_text())
    assert code == 0
    assert "embedded 9 images (9 new, 0 already done)" in out and "1 skipped" in out
    assert "broken: " in err and "not a readable image" in err
    assert "index flat: 9 products, 64-d" in out and "recall@10" not in out
    assert (built / "idx.work" / "embeddings.parquet").is_file()

    query = str(built / "photos" / "Feet" / "feet1.png")
    base = ["search", query, "--index", str(built / "idx")]  # model found in the index
    assert cli.main([*base, "--category", "feet", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "id", "score", "category", "title"]
    assert lines[1].split()[:2] == ["1", "Feet/feet1"] and len(lines) == 4

    assert cli.main([*base, "-k", "2", "--json", "--filter", '{"category": "Head"}']) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in hits] == [1, 2]
    assert all(h["metadata"]["category"] == "Head" for h in hits)
    assert hits[0]["metadata"]["image"].endswith(".png")

    assert cli.main([*base, "--shop-the-look", "--categories", "Bags,Head", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Bags\n") and "\n## Head\n" in out and "Feet/" not in out

    assert cli.main(["search", "--like", "Bags/bags0", "--index", str(built / "idx")]) == 0
    out = capsys.readouterr().out
    assert "Bags/bags0" not in out and len(out.strip().splitlines()) == 1 + 8


def test_search_with_a_box_is_the_search_of_the_crop(built, tmp_path, capsys):
    query = built / "photos" / "Feet" / "feet1.png"
    with Image.open(query) as image:
        w, h = image.size
        image.crop((0, 0, w // 2, h)).save(tmp_path / "left.png")
    base = ["search", "--index", str(built / "idx"), "--category", "feet", "--json"]
    assert cli.main([*base, str(query), "--box", "0,0,0.5,1"]) == 0
    boxed = json.loads(capsys.readouterr().out)
    assert cli.main([*base, str(tmp_path / "left.png")]) == 0
    assert boxed == json.loads(capsys.readouterr().out)
    assert cli.main([*base, str(query), "--box", "1,2"]) != 0
    assert "--box: box '1,2' is not x0,y0,x1,y1" in capsys.readouterr().err
    like = ["search", "--like", "Bags/bags0", "--index", str(built / "idx"), "--box", "0,0,1,1"]
    assert cli.main(like) != 0
    assert "--like takes no IMAGE, --category, --text, --box" in capsys.readouterr().err
    assert cli.main([*base, str(query), "--box", f"0,0,{w + 1},{h}"]) != 0
    assert "outside the" in capsys.readouterr().err


def test_search_with_feedback_and_exclusions(built, capsys):
    query = str(built / "photos" / "Feet" / "feet1.png")
    base = ["search", query, "--index", str(built / "idx"), "--json", "-k", "4"]
    assert cli.main([*base, "--category", "feet"]) == 0
    first = [h["id"] for h in json.loads(capsys.readouterr().out)]
    marked = [*base, "--category", "feet", "--positive", first[3], "--negative", first[0]]
    assert cli.main(marked) == 0
    refined = [h["id"] for h in json.loads(capsys.readouterr().out)]
    assert first[3] in refined and refined.index(first[3]) < 3  # moved up
    assert cli.main([*base, "--exclude", f"{first[0]},{first[1]}"]) == 0
    assert not {first[0], first[1]} & {h["id"] for h in json.loads(capsys.readouterr().out)}
    assert cli.main([*base, "--exclude-categories", "feet,bags"]) == 0
    cats = {h["metadata"]["category"] for h in json.loads(capsys.readouterr().out)}
    assert cats == {"Head"}
    assert cli.main([*base, "--positive", "nope"]) != 0
    assert "unknown product id 'nope'" in capsys.readouterr().err
    assert cli.main([*base, "--shop-the-look", "--exclude", first[0]]) != 0
    assert "refine one search" in capsys.readouterr().err


def test_approximate_spec_prints_its_recall_and_info(built, capsys):
    pytest.importorskip("faiss")
    assert (
        build(
            built,
            "--out",
            str(built / "hnsw"),
            "--spec",
            "faiss:HNSW32",
            "--work-dir",
            str(built / "idx.work"),
            "--option",
            "ef_search=16",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(0 new, 9 already done)" in out  # the shared work dir: nothing re-embedded
    assert "recall@10 of faiss:HNSW32 against exact search: 1.000 (9 catalog products" in out
    assert cli.main(["index", "info", str(built / "hnsw")]) == 0
    out = capsys.readouterr().out
    assert "faiss:HNSW32 (9 products, 64-d)" in out and "recall@10: 1.000" in out
    assert str(built / "model") in out


def test_target_recall_tunes_and_prints_the_curve(built, capsys):
    pytest.importorskip("faiss")
    out = str(built / "tuned")
    args = ["--out", out, "--spec", "faiss:HNSW32", "--work-dir", str(built / "idx.work")]
    assert build(built, *args, "--target-recall", "0.9") == 0
    printed = capsys.readouterr().out
    assert "tuning ef_search to recall@10 >= 0.9" in printed
    assert "chosen: ef_search=8 (saved with the index)" in printed  # 9 products: found at once
    assert cli.main(["index", "info", out, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    text = json.dumps(info)
    assert '"knob": "ef_search"' in text and '"ef_search": 8' in text
    assert build(built, "--out", str(built / "bad"), "--target-recall", "0.9") != 0  # flat
    assert "--target-recall tunes faiss specs" in capsys.readouterr().err
    assert not (built / "bad").exists()


def test_text_model_search(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(encoding, "load_text_encoder", lambda name: fake_text_encoder)
    referred.create_model("tiny", conditioning="text", seed=0).save_pretrained(tmp_path / "model")
    photos(tmp_path / "photos", per_category=2)
    assert build(tmp_path, "--out", str(tmp_path / "idx")) == 0
    assert "index flat: 6 products" in capsys.readouterr().out
    query = str(tmp_path / "photos" / "Bags" / "bags0.png")
    base = ["search", query, "--index", str(tmp_path / "idx"), "--model", str(tmp_path / "model")]
    assert cli.main([*base, "--text", "a small red bag", "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert cli.main([*base, "--shop-the-look", "-k", "1", "--json"]) == 0
    looks = json.loads(capsys.readouterr().out)
    assert list(looks) == list(referred.LRVSF_CATEGORIES) and looks["Feet"][0]["id"].startswith(
        "Feet/"
    )


def test_text_model_category_query_uses_the_saved_vectors(tmp_path, monkeypatch, capsys):
    """A text model saved with its category choices' vectors answers a category query without
    loading a sentence encoder; stdout carries only the results; a category outside the
    choices is an error (exit 2), not a silent text search."""
    model = referred.create_model("tiny", conditioning="text", seed=0)
    model.known_texts = dict(zip(referred.LRVSF_CATEGORIES, fake_text_encoder(CATS * 4)))
    model.save_pretrained(tmp_path / "model")
    monkeypatch.setattr(encoding, "load_text_encoder", lambda name: fake_text_encoder)
    photos(tmp_path / "photos", per_category=2)
    assert build(tmp_path, "--out", str(tmp_path / "idx")) == 0
    capsys.readouterr()

    def no_encoder(name):
        raise AssertionError("a category query loaded the sentence encoder")

    monkeypatch.setattr(encoding, "load_text_encoder", no_encoder)
    query = str(tmp_path / "photos" / "Bags" / "bags0.png")
    base = ["search", query, "--index", str(tmp_path / "idx")]
    assert cli.main([*base, "--category", "lower_body", "-k", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["rank", "id", "score", "category", "title"]
    assert len(out.splitlines()) == 3 and err == ""
    assert cli.main([*base, "--category", "Socks"]) == 2
    assert "unknown category 'Socks'; this model accepts: Bags" in capsys.readouterr().err


def test_several_photos_of_the_item_are_searched_together(built, capsys):
    one = str(built / "photos" / "Feet" / "feet1.png")
    two = str(built / "photos" / "Bags" / "bags0.png")
    base = ["search", "--index", str(built / "idx"), "--category", "feet", "--json", "-k", "5"]
    assert cli.main([*base, one]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert cli.main([*base, one, one]) == 0  # the same photo twice: the same query
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == [h["id"] for h in alone]
    assert cli.main([*base, one, two]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [h["score"] for h in both] != [h["score"] for h in alone]
    assert cli.main([*base, *[one] * 9]) == 2
    assert "at most 8 photos of the item, got 9" in capsys.readouterr().err
    look = ["search", "--index", str(built / "idx"), "--shop-the-look", one, two]
    assert cli.main(look) == 2 and "takes one photo" in capsys.readouterr().err


def test_weak_results_are_marked_in_the_table_and_the_json(built, capsys):
    query = str(built / "photos" / "Feet" / "feet1.png")
    base = ["search", query, "--index", str(built / "idx"), "--category", "feet", "-k", "9"]
    assert cli.main([*base, "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    weak = [h["weak"] for h in hits]  # no score floor: the products of another category
    assert weak == [h["metadata"]["category"] != "Feet" for h in hits] and any(weak)
    assert cli.main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(hits)  # the header and one line a result, nothing else
    assert [line.endswith("(weak match)") for line in lines[1:]] == weak


def test_user_errors_exit_2_with_a_message(built, capsys):
    query = str(built / "photos" / "Bags" / "bags0.png")
    base = ["search", query, "--index", str(built / "idx")]
    cases = [
        ([*base, "--text", "red bag"], "conditioned on categories only"),
        ([*base, "--category", "Shoes"], "unknown category 'Shoes'; this model accepts: Bags"),
        ([*base, "-k", "0"], "k must be an int from 1 to 1000"),
        ([*base, "--filter", "{oops"], "--filter is not valid JSON"),
        ([*base, "--filter", '{"colour": "red"}'], "filter on unknown field 'colour'"),
        ([*base, "--categories", "Bags"], "--categories goes with --shop-the-look"),
        (["search", "--like", "nope", "--index", str(built / "idx")], "unknown product id 'nope'"),
        (["search", "--index", str(built / "idx")], "give a query IMAGE"),
        (
            ["search", str(built / "photos" / "broken.jpg"), "--index", str(built / "idx")],
            "not a readable image",
        ),
        (["search", query, "--index", str(built / "nowhere")], "no saved index"),
        (["index", "build", "--model", str(built / "model"), "--out", "x"], "give the catalog"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


@pytest.mark.slow
def test_ray_engine_embeds_like_the_local_one(built, tmp_path, capsys):
    """A local Ray (2 CPUs) runs the embedding job; ~25 s, mostly Ray's start-up."""
    pytest.importorskip("ray")
    from referred.catalog.cache import read_embeddings

    assert build(built, "--out", str(tmp_path / "ray"), "--engine", "ray") == 0
    assert "embedded 9 images (9 new" in capsys.readouterr().out
    ids, vectors = read_embeddings(tmp_path / "ray.work" / "embeddings.parquet")
    want_ids, want = read_embeddings(built / "idx.work" / "embeddings.parquet")
    order = [ids.index(i) for i in want_ids]
    np.testing.assert_allclose(vectors[order], want, atol=1e-5)


def test_a_model_with_a_presence_head_says_when_the_item_is_not_in_the_photo(built, capsys):
    """The head is saved beside a copy of the model; it answers "absent" whatever it sees."""
    import shutil

    import torch

    from referred.presence import PresenceHead, save_head

    model_dir = built.parent / "with-presence"
    shutil.copytree(built / "model", model_dir, dirs_exist_ok=True)
    width = referred.load_model(model_dir).config.width
    head = PresenceHead(width, width, hidden=8, heads=2, feature_kind="tokens")
    with torch.no_grad():
        head.mlp[2].weight.zero_()
        head.mlp[2].bias.fill_(-5.0)
    save_head(model_dir, head)
    query = str(built / "photos" / "Bags" / "bags0.png")
    base = ["search", query, "--index", str(built / "idx"), "--model", str(model_dir)]
    assert cli.main([*base, "--category", "Bags", "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# no Bags found in this photo (presence 0.01): the closest products below"
    assert out[1].split()[:3] == ["rank", "id", "score"] and len(out) == 4
    assert cli.main([*base, "--shop-the-look", "-k", "1"]) == 0
    assert "## Feet (not found in the photo, presence 0.01)" in capsys.readouterr().out
