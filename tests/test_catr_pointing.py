"""catr.pointing: the pointing game over a hw3_2.sh folder, and the caption metrics."""
import json

import numpy as np
import pytest

from helpers import assert_one_line_error, run


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from synth.captionworld import write_split
    root = tmp_path_factory.mktemp("scenes")
    write_split(root, 60, seed=5)
    return root


def fake_folder(scenes, out, make_map, stride=8, max_dim=128):
    """A hw3_2.sh output folder whose tokens are the reference captions' words and whose maps ``make_map`` draws
    on each image's real (ceil(h/8), ceil(w/8)) grid."""
    from catr.preprocess import resized_shape
    objects = json.loads((scenes / "objects.json").read_text())
    coco = json.loads((scenes / "captions.json").read_text())
    caption = {a["image_id"]: a["caption"] for a in coco["annotations"]}
    out.mkdir()
    for im in coco["images"]:
        w, h = resized_shape((im["width"], im["height"]), max_dim)
        grid = (-(-h // stride), -(-w // stride))
        tokens = caption[im["id"]].split() + ["<end>"]
        maps = np.stack([make_map(tok, objects[im["file_name"]], grid, (w / im["width"], h / im["height"]), (w, h))
                         for tok in tokens]).astype(np.float32)
        stem = im["file_name"].rsplit(".", 1)[0]
        np.save(out / f"{stem}.npy", maps)
        (out / f"{stem}.json").write_text(json.dumps({
            "caption": caption[im["id"]], "tokens": tokens, "grid": list(grid), "size": [w, h], "layer": -1,
            "image": str(scenes / "images" / im["file_name"])}))
    return out


def planted(tok, objs, grid, scale, size):
    """A peak in the cell that the figures draw over the named object's centre (the grid stretched over the
    resized image)."""
    m = np.random.default_rng(0).random(grid) * 0.1
    for o in objs:
        if tok in o["words"]:
            x, y, bw, bh = o["box"]
            cy, cx = (y + bh / 2) * scale[1], (x + bw / 2) * scale[0]
            m[int(cy * grid[0] / size[1]), int(cx * grid[1] / size[0])] = 1.0
    return m


def test_planted_maps_score_one_and_random_maps_score_the_box_area(scenes, tmp_path):
    from catr.pointing import read_folder, score_items
    objects = json.loads((scenes / "objects.json").read_text())
    good = score_items(read_folder(fake_folder(scenes, tmp_path / "good", planted)), objects)
    n_words = sum(2 * len(o) for o in objects.values())  # every object's colour and shape, once each
    assert good["count"] == n_words and good["maps"] == 1.0 and good["absent"] == 0
    rng = np.random.default_rng(1)
    noise = score_items(read_folder(fake_folder(scenes, tmp_path / "noise", lambda *a: rng.random(a[2]))), objects)
    sd = (noise["random"] * (1 - noise["random"]) / noise["count"]) ** 0.5
    assert 0.02 < noise["random"] < 0.3 and abs(noise["maps"] - noise["random"]) < 4 * sd, noise
    assert good["random"] == noise["random"] and good["centre"] == noise["centre"]  # baselines ignore the maps


def test_maps_off_the_object_miss(scenes, tmp_path):
    """A peak on the wrong object is a miss: the box is the named object's, not any object's."""
    from catr.pointing import read_folder, score_items
    objects = json.loads((scenes / "objects.json").read_text())

    def other(tok, objs, grid, scale, size):
        named = [o for o in objs if tok in o["words"]]
        rest = [o for o in objs if tok not in o["words"]]
        return planted(rest[0]["words"][0] if named and rest else "-", objs, grid, scale, size)

    s = score_items(read_folder(fake_folder(scenes, tmp_path / "wrong", other)), objects)
    single = sum(2 for o in objects.values() if len(o) == 1)  # nothing else to point at: stays random-ish
    assert s["maps"] <= single / s["count"] + 0.02


def test_caption_metrics():
    from synth.captionworld import COLOUR_NAMES, SHAPE_NAMES
    from catr.metrics import exact_match, names_objects, word_accuracy
    from catr.pointing import word_list
    ref = word_list("a red circle , a blue square and a green cross")
    assert word_list("A red circle, a blue square and a green cross") == ref
    assert exact_match(ref, [ref]) and not exact_match(ref[:-1], [ref])
    assert word_accuracy(word_list("a red square , a blue square and a green cross"), [ref]) == 10 / 11
    objs = [{"words": ["red", "circle"]}, {"words": ["blue", "square"]}]
    shapes = set(SHAPE_NAMES.values())
    assert names_objects("a blue square left of a red circle", objs, COLOUR_NAMES, shapes)  # order is free
    assert not names_objects("a red circle left of a blue cross", objs, COLOUR_NAMES, shapes)
    assert not names_objects("a red circle , a blue square and a red circle", objs, COLOUR_NAMES, shapes)


def test_cli_errors_are_one_line(scenes, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run(["python3", "-m", "catr.pointing", str(empty), "--objects",
                               str(scenes / "objects.json")]), "no hw3_2.sh outputs")
    folder = fake_folder(scenes, tmp_path / "f", planted)
    assert_one_line_error(run(["python3", "-m", "catr.pointing", str(folder), "--objects", str(tmp_path / "no.json")]),
                          "objects file not found")
    proc = run(["python3", "-m", "catr.pointing", str(folder), "--objects", str(scenes / "objects.json"),
                "--captions", str(scenes / "captions.json")])
    assert proc.returncode == 0, proc.stderr
    assert "exact match 1.000" in proc.stdout and "| hw3_2.sh maps (layer -1) | 1.000 |" in proc.stdout
