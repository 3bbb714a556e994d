"""catr.pointing: the pointing game over a hw3_2.sh folder (objects files and COCO instances), and the caption
metrics."""
import json

import numpy as np
import pytest

from helpers import assert_one_line_error, run
from hw3io import UserError


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


def world(scenes):
    from catr.pointing import from_objects
    return from_objects(json.loads((scenes / "objects.json").read_text()))


def test_planted_maps_score_one_and_random_maps_score_the_box_area(scenes, tmp_path):
    from catr.pointing import read_folder, score_items
    objects = json.loads((scenes / "objects.json").read_text())
    good = score_items(read_folder(fake_folder(scenes, tmp_path / "good", planted)), world(scenes))
    n_words = sum(2 * len(o) for o in objects.values())  # every object's colour and shape, once each
    assert good["count"] == n_words and good["maps"] == 1.0 and good["tolerance"] == 1.0 and good["absent"] == 0
    assert good["classes"] == len({w for objs in objects.values() for o in objs for w in o["words"]})
    rng = np.random.default_rng(1)
    noise = score_items(read_folder(fake_folder(scenes, tmp_path / "noise", lambda *a: rng.random(a[2]))),
                        world(scenes))
    sd = (noise["random"] * (1 - noise["random"]) / noise["count"]) ** 0.5
    assert 0.02 < noise["random"] < 0.3 and abs(noise["maps"] - noise["random"]) < 4 * sd, noise
    assert good["random"] == noise["random"] and good["centre"] == noise["centre"]  # baselines ignore the maps
    uniform = score_items(read_folder(fake_folder(scenes, tmp_path / "flat", lambda *a: np.ones(a[2]))),
                          world(scenes))
    assert uniform["mass"] == pytest.approx(uniform["uniform_mass"]) and uniform["uniform_mass"] == noise["random"]
    assert good["mass"] > noise["mass"] + 0.05  # planted peaks carry mass into their boxes


def test_maps_off_the_object_miss(scenes, tmp_path):
    """A peak on the wrong object is a miss: the box is the named object's, not any object's."""
    from catr.pointing import read_folder, score_items
    objects = json.loads((scenes / "objects.json").read_text())

    def other(tok, objs, grid, scale, size):
        named = [o for o in objs if tok in o["words"]]
        rest = [o for o in objs if tok not in o["words"]]
        return planted(rest[0]["words"][0] if named and rest else "-", objs, grid, scale, size)

    s = score_items(read_folder(fake_folder(scenes, tmp_path / "wrong", other)), world(scenes))
    single = sum(2 for o in objects.values() if len(o) == 1)  # nothing else to point at: stays random-ish
    assert s["maps"] <= single / s["count"] + 0.02


def test_words_outside_the_caption_world_are_scored(scenes, tmp_path):
    """The object words come from the objects file, whatever they are: rename some colours and shapes."""
    from catr.pointing import from_objects, read_folder, score_items
    objects = json.loads((scenes / "objects.json").read_text())
    rename = {"red": "zebra", "circle": "kite", "square": "hot dog"}  # a two-word name is named by both words
    new = {n: [dict(o, words=[rename.get(w, w) for w in o["words"]]) for o in objs] for n, objs in objects.items()}
    items = read_folder(fake_folder(scenes, tmp_path / "f", planted))
    for it in items:  # the renamed words in the captions, each piece with its word's planted map
        words = [rename.get(w, w).split() for w in it["tokens"]]
        it["tokens"] = [p for w in words for p in w]
        it["maps"] = np.concatenate([it["maps"][[i] * len(w)] for i, w in enumerate(words)])
    s = score_items(items, from_objects(new))
    assert s["count"] == sum(2 * len(o) for o in objects.values()) and s["maps"] == 1.0
    assert {"zebra", "kite", "hot dog"} <= set(s["per_class"])


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
    assert "exact match 1.000" in proc.stdout and "| attention, layer -1 (hw3_2.sh's maps) | 1.000 |" in proc.stdout


COCO_IMAGES = {1: ("000000000001.jpg", (320, 240)), 2: ("000000000002.jpg", (200, 300))}
COCO_BOXES = {"man": [10, 20, 60, 150], "dog1": [100, 120, 50, 40], "dog2": [230, 30, 60, 50],
              "bike": [150, 170, 100, 60], "woman": [20, 30, 70, 200], "hotdog": [120, 220, 60, 50]}


def coco_instances(path):
    """A tiny COCO instances file: a man, two dogs and a bicycle; a woman and a hot dog."""
    cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 18, "name": "dog"},
            {"id": 38, "name": "kite"}, {"id": 58, "name": "hot dog"}]
    anns = [(1, "man", 1), (1, "dog1", 18), (1, "dog2", 18), (1, "bike", 2), (2, "woman", 1), (2, "hotdog", 58)]
    path.write_text(json.dumps({
        "images": [{"id": i, "file_name": n, "width": w, "height": h} for i, (n, (w, h)) in COCO_IMAGES.items()],
        "annotations": [{"id": k, "image_id": i, "bbox": COCO_BOXES[b], "category_id": c, "area": 1, "iscrowd": 0}
                        for k, (i, b, c) in enumerate(anns)],
        "categories": cats}))
    return path


# Each image's tokens, and the box each token's map peaks on (None: noise).
COCO_CAPTIONS = {1: [("a", None), ("man", "man"), ("walks", None), ("a", None), ("pooch", "dog1"), ("and", None),
                     ("a", None), ("dog", "dog2"), ("by", None), ("a", None), ("bi", "bike"), ("##ke", "bike"),
                     ("<end>", None)],
                 2: [("a", None), ("woman", "woman"), ("eats", None), ("a", None), ("hot", "hotdog"),
                     ("dog", "hotdog"), ("near", None), ("a", None), ("kite", None), ("<end>", None)]}


def coco_folder(root, plant=lambda box: box):
    """Images, a hw3_2.sh-like folder whose maps peak on the boxes COCO_CAPTIONS names (``plant`` may move them)."""
    from catr.preprocess import resized_shape
    (root / "images").mkdir(parents=True)
    out = root / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    for i, (name, (W, H)) in COCO_IMAGES.items():
        from PIL import Image
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "images" / name)
        w, h = resized_shape((W, H), 128)
        grid = (-(-h // 8), -(-w // 8))
        maps = rng.random((len(COCO_CAPTIONS[i]), *grid)) * 0.1
        for t, (_, box) in enumerate(COCO_CAPTIONS[i]):
            if box:
                x, y, bw, bh = COCO_BOXES[plant(box)]
                maps[t, int((y + bh / 2) * h / H * grid[0] / h), int((x + bw / 2) * w / W * grid[1] / w)] = 1.0
        stem = name.rsplit(".", 1)[0]
        np.save(out / f"{stem}.npy", maps.astype(np.float32))
        tokens = [t for t, _ in COCO_CAPTIONS[i]]
        (out / f"{stem}.json").write_text(json.dumps({"caption": " ".join(tokens), "tokens": tokens, "size": [w, h],
                                                      "layer": -1, "image": str(root / "images" / name)}))
    return out


def test_coco_instances_with_synonyms_score_a_planted_map(tmp_path):
    """man, woman -> person; bike (two word pieces) -> bicycle; "hot dog" is a hot dog, not a dog; the user's
    "pooch" -> dog scores against either dog; "kite" names no object of its image."""
    from catr.pointing import add_synonyms, from_instances, read_folder, score_items
    items = read_folder(coco_folder(tmp_path))
    coco = json.loads(coco_instances(tmp_path / "instances.json").read_text())
    s = score_items(items, add_synonyms(from_instances(coco), {"pooch": "dog"}, "synonyms.json"))
    assert (s["count"], s["absent"], s["maps"], s["tolerance"]) == (6, 1, 1.0, 1.0)
    assert set(s["per_class"]) == {"person", "dog", "bicycle", "hot dog"}
    assert score_items(items, from_instances(coco))["count"] == 5  # "pooch" is no built-in word
    wrong = read_folder(coco_folder(tmp_path / "wrong", lambda box: "man" if box.startswith("dog") else box))
    s = score_items(wrong, from_instances(coco))
    assert s["maps"] == 4 / 5 and s["per_class"]["dog"] == 0.0  # a dog's map on the man: a miss
    syn = tmp_path / "synonyms.json"
    syn.write_text(json.dumps({"pooch": "dog"}))
    proc = run(["python3", "-m", "catr.pointing", str(tmp_path / "out"), "--instances",
                str(tmp_path / "instances.json"), "--synonyms", str(syn)])
    assert proc.returncode == 0, proc.stderr
    assert "| attention, layer -1 (hw3_2.sh's maps) | 1.000 | 1.000 |" in proc.stdout and "| 6 |" in proc.stdout
    assert "averaged over 4 class(es)" in proc.stdout and "1 generated object word(s)" in proc.stdout


def test_names_are_read_longest_first_and_two_word_names_need_both_words():
    from catr.pointing import coco_names, find_names
    names = coco_names({"teddy bear", "bear", "traffic light", "person", "bicycle"})
    tokens = "a teddy bear , a bear , a teddy and a light by the traffic light".split()
    assert find_names(tokens, names) == [([1, 2], "teddy bear"), ([5], "bear"), ([8], "teddy bear"),
                                         ([14, 15], "traffic light")]  # "light" alone names nothing
    assert find_names("two bears and men on bi ##kes".split(), names) == [([1], "bear"), ([3], "person"),
                                                                             ([5, 6], "bicycle")]


@pytest.mark.parametrize("flag, content, fragment", [
    ("--instances", None, "instances file not found"),
    ("--instances", "[1, 2", "is not JSON"),
    ("--instances", '{"images": []}', "is not COCO instances"),
    ("--instances", '{"images": [{"id": 1}], "annotations": [], "categories": []}', "is not COCO instances"),
    ("--objects", '{"a.jpg": [{"words": ["red"]}]}', "is not {file name"),
    ("--objects", '["a.jpg"]', "is not {file name"),
    ("--synonyms", '{"pooch": "wolf"}', "does not have"),
    ("--synonyms", '["pooch"]', "is not {word: class}"),
])
def test_bad_annotation_files_are_one_error_line(tmp_path, flag, content, fragment):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    base = ["--instances", str(coco_instances(tmp_path / "i.json"))] if flag == "--synonyms" else []
    proc = run(["python3", "-m", "catr.pointing", str(tmp_path), *base, flag, str(bad)], timeout=120)
    assert_one_line_error(proc, fragment)


def test_objects_and_instances_are_exclusive(tmp_path):
    f = coco_instances(tmp_path / "i.json")
    assert_one_line_error(run(["python3", "-m", "catr.pointing", str(tmp_path), "--objects", str(f), "--instances",
                               str(f)], timeout=120), "one of --objects")


def blob(shape, x, y, sigma=2.0):
    """An (H, W) map peaking on pixel (x, y): a hw3_2.sh map at the original's own resolution, so that its peak
    in the original frame is known to the pixel."""
    v, u = np.mgrid[:shape[0], :shape[1]]
    return np.exp(-((u - x) ** 2 + (v - y) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def item(path, tokens, maps):
    """A hw3_2.sh output as read_folder gives it (``size``: the resized image the PNG draws, as hw3_2.sh writes)."""
    from PIL import Image
    from catr.preprocess import resized_shape
    with Image.open(path) as img:
        shown = img.size if img.getexif().get(0x0112, 1) < 5 else img.size[::-1]
    return {"tokens": tokens, "maps": np.stack(maps), "image": str(path), "name": path.name,
            "size": list(resized_shape(shown))}


@pytest.mark.parametrize("size, gap, hit", [((64, 48), 10, True), ((64, 48), 20, False), ((640, 480), 10, True),
                                            ((640, 480), 20, False)])
def test_tolerance_is_measured_in_original_pixels(tmp_path, size, gap, hit):
    """A peak ``gap`` original pixels right of the box: within TorchRay's 15 px or not, whatever the 299 px resize
    does. In the resized image's pixels (x 4.67 for 64x48, x 0.47 for 640x480) the 10 px case on the small image
    would miss (47 px) and the 20 px case on the large one hit (9.3 px)."""
    from PIL import Image
    from catr.pointing import from_objects, score_items
    Image.new("RGB", size, (90, 90, 90)).save(tmp_path / "a.jpg")
    box = [8, 10, 12, 16] if size[0] < 100 else [300, 200, 40, 40]  # x, y, w, h
    x, y = box[0] + box[2] - 1 + gap, box[1] + box[3] // 2  # gap px right of the box's last pixel
    it = item(tmp_path / "a.jpg", ["a", "square"], [np.ones(size[::-1], np.float32), blob(size[::-1], x, y)])
    s = score_items([it], from_objects({"a.jpg": [{"words": ["square"], "box": box}]}))
    assert (s["count"], s["maps"], s["tolerance"]) == (1, 0.0, float(hit))


@pytest.mark.parametrize("orientation", [6, 8])
def test_boxes_of_a_rotated_jpeg_turn_with_its_pixels(tmp_path, orientation):
    """A JPEG stored 64x40 with EXIF orientation 6 or 8: hw3_2.sh maps the image as load_rgb shows it (40x64); the
    objects file's box, in stored pixels, is hit only once turned like the pixels."""
    from PIL import Image
    from hw3io import load_rgb
    from catr.pointing import from_objects, score_items
    stored = Image.new("RGB", (64, 40), (0, 0, 0))
    stored.paste((255, 255, 255), (6, 4, 18, 14))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "r.jpg", exif=exif, quality=95)
    ys, xs = np.nonzero(np.asarray(load_rgb(tmp_path / "r.jpg"))[..., 0] > 128)
    it = item(tmp_path / "r.jpg", ["a", "square"], [np.ones((64, 40), np.float32),
                                                      blob((64, 40), int(xs.mean()), int(ys.mean()))])
    s = score_items([it], from_objects({"r.jpg": [{"words": ["square"], "box": [6, 4, 12, 10]}]}))
    assert (s["maps"], s["tolerance"]) == (1.0, 1.0) and s["mass"] > 0.5


def uncompressed_rle(mask):
    """COCO's iscrowd form: run lengths of 0s and 1s, column-major, starting with 0s."""
    flat = mask.flatten(order="F").astype(int)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"counts": ([0] if flat[0] else []) + runs, "size": list(mask.shape)}


def test_coco_objects_are_segmentation_masks(tmp_path):
    """A polygon (a triangle), an uncompressed RLE (a ring, iscrowd) and a compressed RLE (an L): a peak inside the
    bbox but off the mask misses strict, on the mask hits, and a uniform map's mass in box is the mask's area share,
    not the bbox's."""
    from PIL import Image
    from pycocotools import mask as coco_mask
    from catr.pointing import from_instances, score_items
    W, H = 64, 48
    Image.new("RGB", (W, H), (90, 90, 90)).save(tmp_path / "c.jpg")
    ring = np.zeros((H, W), bool)
    ring[5:25, 30:50] = True
    ring[10:20, 35:45] = False
    ell = np.zeros((H, W), bool)
    ell[28:46, 4:10] = True
    ell[40:46, 4:30] = True
    compressed = coco_mask.encode(np.asfortranarray(ell.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()  # as it is stored in a JSON file
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 24, 24], "iscrowd": 0,
             "segmentation": [[2, 2, 26, 2, 2, 26]]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [30, 5, 20, 20], "iscrowd": 1,
             "segmentation": uncompressed_rle(ring)},
            {"id": 3, "image_id": 1, "category_id": 3, "bbox": [4, 28, 26, 18], "iscrowd": 1,
             "segmentation": compressed}]
    coco = {"images": [{"id": 1, "file_name": "c.jpg", "width": W, "height": H}], "annotations": anns,
            "categories": [{"id": 1, "name": "kite"}, {"id": 2, "name": "donut"}, {"id": 3, "name": "bench"}]}
    ann = from_instances(coco)
    shape = (H, W)
    off = [blob(shape, 22, 22), blob(shape, 40, 15), blob(shape, 24, 32)]  # in each bbox, off each mask
    on = [blob(shape, 6, 6), blob(shape, 32, 15), blob(shape, 6, 32)]
    tokens = ["kite", "donut", "bench"]
    assert score_items([item(tmp_path / "c.jpg", tokens, off)], ann)["maps"] == 0.0
    assert score_items([item(tmp_path / "c.jpg", tokens, on)], ann)["maps"] == 1.0
    flat = score_items([item(tmp_path / "c.jpg", tokens, [np.ones(shape)] * 3)], ann)
    areas = [0.5 * 24 * 24, ring.sum(), ell.sum()]  # the triangle about half its bbox
    assert flat["mass"] == pytest.approx(np.mean(areas) / (W * H), rel=0.05)
    assert flat["mass"] < 0.8 * np.mean([24 * 24, 20 * 20, 26 * 18]) / (W * H)
    coco["images"][0].update(width=H, height=W)  # made on another (or the turned) image: refused
    with pytest.raises(UserError, match="annotations must refer to the stored pixels"):
        score_items([item(tmp_path / "c.jpg", tokens, on)], from_instances(coco))


TINY = dict(backbone="convnet", max_dim=96, max_position_embeddings=12)  # a CATR that captions in milliseconds


def save_tiny(path, seed):
    import torch
    from catr_tiny import tiny_config, tiny_model
    torch.save({"model": tiny_model(seed=seed, **TINY).state_dict(), "catr_config": tiny_config(**TINY).to_dict()},
               path)
    return path


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    """A hw3_2.sh folder of five images captioned by a tiny random CATR ("sheep bike sheep ..."), its checkpoint
    and vocabulary, and objects files: a sheep in each image's top-left quarter and a bike in its bottom-right one
    (``objects.json``), the bike alone (``bike.json``)."""
    from catr.caption import create_model
    from catr.pipeline import caption_folder
    from catr_tiny import IMAGES, write_images, write_vocab
    root = tmp_path_factory.mktemp("captioned")
    checkpoint, vocab = save_tiny(root / "c.pth", seed=3), write_vocab(root / "vocab.txt")
    caption_folder(write_images(root / "images"), root / "out", model=create_model(checkpoint=checkpoint),
                   vocab=vocab)
    objects = {n: [{"words": ["sheep"], "box": [0, 0, w // 2, h // 2]},
                   {"words": ["bike"], "box": [w // 2, h // 2, w // 2, h // 2]}] for n, (w, h) in IMAGES.items()}
    (root / "objects.json").write_text(json.dumps(objects))
    (root / "bike.json").write_text(json.dumps({n: o[1:] for n, o in objects.items()}))
    return root


def table_rows(text: str) -> dict:
    """A printed Markdown table's rows: label -> its cells."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    return {r[0]: r[1:] for r in rows if r[0] not in ("map", "---")}


def pointing(argv, capsys) -> str:
    from catr.pointing import main
    main([str(a) for a in argv])
    return capsys.readouterr().out


def test_a_row_per_method_on_a_tiny_catr(captioned, capsys):
    """Every decoder layer, the folder's maps in its layer's row, the layers' mean and relevance, all on the same
    words of the images --limit picks; --device auto and --per-head still work; bench_catr_train.py reads the rows
    back; maps of another checkpoint are noted."""
    import importlib.util
    from helpers import ROOT
    base = [captioned / "out", "--objects", captioned / "objects.json"]
    alone = table_rows(pointing([*base, "--limit", "2"], capsys))
    assert list(alone)[0] == "attention, layer -1 (hw3_2.sh's maps)"  # no model: the folder's layer as written
    out = pointing([*base, "--checkpoint", captioned / "c.pth", "--vocab", captioned / "vocab.txt", "--device", "auto",
                    "--per-head", "--limit", "2"], capsys)
    rows = table_rows(out.split("\n\n")[0])
    assert list(rows) == ["attention, layer 0", "attention, layer 1 (hw3_2.sh's maps)",
                          "attention, mean of the layers", "relevance (Chefer et al. 2021)",
                          "image centre (baseline)", "random point (baseline, expected)"]
    assert rows["attention, layer 1 (hw3_2.sh's maps)"] == alone["attention, layer -1 (hw3_2.sh's maps)"]
    assert len({r[-1] for r in rows.values()}) == 1 and int(rows["attention, layer 0"][-1]) == 14  # 7 x 2
    assert "| layer 1 head 3 |" in out and "note:" not in out
    spec = importlib.util.spec_from_file_location("bench_catr_train", ROOT / "bench" / "bench_catr_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    parsed = bench.parse_scores(out)
    assert parsed["pointing"] == tuple(float(v) for v in rows["attention, layer 1 (hw3_2.sh's maps)"][:3])
    assert sorted(parsed["layers"]) == [0, 1] and parsed["layers"][1] == parsed["pointing"]
    other = pointing([*base, "--checkpoint", save_tiny(captioned / "other.pth", seed=0), "--vocab",
                      captioned / "vocab.txt", "--limit", "1"], capsys)
    assert "note: on 1 of 1 images" in other and "another model" in other


def test_faithfulness_columns_are_there_and_finite(captioned, capsys, tmp_path):
    out = pointing([captioned / "out", "--objects", captioned / "bike.json", "--checkpoint", captioned / "c.pth",
                    "--vocab", captioned / "vocab.txt", "--faithfulness", "--limit", "2", "--masks", "16",
                    "--cells", "2", "--json", tmp_path / "trust.json"], capsys)
    from report.build import section_trust  # the report reads the saved numbers back into the same rows
    tables = [b for b in section_trust({"Problem 2": str(tmp_path / "trust.json")}) if b[0] == "table"]
    assert len(tables[0][2]) == 8 and tables[0][1][-1] == "object words"
    assert ("| deletion (lower: better) | insertion (higher: better) | randomisation (rank corr.) | object words |"
            in out)
    rows = table_rows(out)
    assert [r.split(",")[0].split(" (")[0] for r in rows] == ["attention"] * 3 + [
        "relevance", "rise", "occlusion", "image centre", "random point"]
    assert "rise (16 masks, 2x2 cells, seed 0)" in rows and "attention, layer 1 (hw3_2.sh's maps)" in rows
    for name, cells in list(rows.items())[:6]:
        values = [float(v) for v in cells]
        assert np.isfinite(values).all() and values[-1] == 2, (name, values)  # one bike in each of 2 images
        assert all(0 <= v <= 1 for v in values[3:5]) and -1 <= values[5] <= 1, (name, values)
    random_row = rows["random point (baseline, expected)"]
    assert np.isfinite([float(v) for v in random_row[3:5]]).all() and random_row[5] == "-"


def test_faithfulness_and_per_head_without_the_model_are_one_error_line(tmp_path):
    from catr.pointing import main
    assert_one_line_error(run(["python3", "-m", "catr.pointing", str(tmp_path), "--objects", "o.json",
                               "--faithfulness"], timeout=120), "--faithfulness needs", "--checkpoint")
    with pytest.raises(UserError, match="--per-head needs"):
        main([str(tmp_path), "--objects", "o.json", "--per-head"])


def test_the_folder_caption_is_teacher_forced_and_must_be_in_the_vocabulary(captioned, tmp_path):
    from catr.pointing import main
    folder = coco_folder(tmp_path)  # "pooch", "walks": not words of the tiny vocabulary
    with pytest.raises(UserError, match="'walks' is not in the vocabulary"):
        main([str(folder), "--instances", str(coco_instances(tmp_path / "i.json")), "--checkpoint",
              str(captioned / "c.pth"), "--vocab", str(captioned / "vocab.txt")])


def test_the_folder_says_how_its_maps_were_made():
    from catr.pointing import FOLDER, folder_spec, method_rows, method_specs, row_label
    assert folder_spec([{}, {"layer": -1}], n_layers=2) == {"method": "attention", "layer": 1}  # older folders
    with pytest.raises(UserError, match="mixes maps"):
        folder_spec([{"layer": -1}, {"layer": 0}])
    with pytest.raises(UserError, match="layer -3; the checkpoint has 2"):
        folder_spec([{"layer": -3}], n_layers=2)
    rise = folder_spec([{"method": "rise", "layer": None, "masks": 50, "cells": 4, "seed": 1}])
    rows, label = method_rows(method_specs(2, True, 1000, 8, 0), rise)
    assert label == "rise (50 masks, 4x4 cells, seed 1)" + FOLDER and list(rows)[0] == label  # settings of its own
    rows, label = method_rows(method_specs(2, False, 1000, 8, 0), {"method": "relevance"})
    assert list(rows)[3] == label == row_label({"method": "relevance"}) + FOLDER


def test_a_planted_word_map_deletes_its_word_faster_than_a_random_ranking():
    """A planted model: the word "bike" (pieces bi, ##ke) is as probable as the object's pixels are kept; only
    ##ke's map covers the object. Deletion in the word's map's order (its pieces' mean) removes the word first;
    a random order does not, nor would bi's map alone or the probability of another token."""
    import torch
    from explanations.faithfulness import deletion_insertion, random_baseline_areas
    from catr.pointing import name_maps, name_probs
    image = torch.zeros(3, 32, 32)
    image[:, 8:16, 16:24] = 1.0  # the bike

    def score_fn(images):  # log-probabilities of "a", "bi", "##ke"
        kept = images[:, :, 8:16, 16:24].mean((1, 2, 3)).clamp(1e-6, 1).double()
        return torch.stack([torch.full_like(kept, 0.5), kept, kept ** 2], 1).log()

    maps = torch.from_numpy(np.random.default_rng(0).random((3, 32, 32)))
    maps[1] = 0
    maps[2] = 0
    maps[2, 8:16, 16:24] = 1.0
    names = [[1, 2]]
    planted = deletion_insertion(name_probs(score_fn, names), image, name_maps(maps, names))
    chance = random_baseline_areas(name_probs(score_fn, names), image, seed=0)
    assert planted["deletion_auc"][0] < 0.1 < chance["deletion_auc"][0] - 0.2
    assert planted["insertion_auc"][0] > chance["insertion_auc"][0] + 0.2
