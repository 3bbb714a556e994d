"""A generated caption world: scenes of 1 to 3 coloured shapes on clutter, captioned by a small grammar.

``python3 -m synth.captionworld OUT --train N --val M`` writes, per split, ``OUT/<split>/images/``,
``OUT/<split>/captions.json`` (COCO captions format: ``images`` with id, file_name, width, height; ``annotations``
with id, image_id, caption) and ``OUT/<split>/objects.json`` (per file name, each object's words and box
[x, y, w, h] in original pixels), plus ``OUT/vocab.txt``, a BERT-format vocabulary holding every caption word.
Captions name every object's colour and shape; with two objects their relation ("a red circle left of a blue
square"), with three the objects from left to right ("a red circle , a blue square and a green cross").
"""
import argparse
import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from hw3io import UserError, ensure_writable_dir, run_cli, write_vocab as _write_vocab
from .shapes import COLOURS, SHAPES, draw_shape, COLOUR_NAMES as _ALL_COLOUR_NAMES

COLOUR_NAMES = _ALL_COLOUR_NAMES[:6]  # the first six of synth.shapes' colours
SHAPE_NAMES = {"disc": "circle", "square": "square", "triangle": "triangle", "cross": "cross"}
WORDS = ("a", "left", "right", "of", "above", "below", "and", ",") + COLOUR_NAMES + tuple(SHAPE_NAMES.values())
ASPECTS = ((160, 160), (224, 128), (128, 224), (200, 200), (240, 160), (160, 240))  # square, wide, tall


def _overlaps(a, b, gap=4) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def make_scene(rng: random.Random):
    """(image, caption, objects); objects: [{"words": [colour, shape], "box": [x, y, w, h]}], left to right."""
    w, h = rng.choice(ASPECTS)
    img = Image.new("RGB", (w, h), tuple([rng.randint(90, 160)] * 3))
    draw = ImageDraw.Draw(img)
    for _ in range(10):  # grey clutter carries no caption information
        g, x, y = rng.randint(40, 220), rng.randrange(w), rng.randrange(h)
        draw.line((x, y, rng.randrange(w), rng.randrange(h)), fill=(g, g, g), width=rng.randint(1, 3))
    n = rng.choice((1, 2, 2, 3, 3))
    colours = rng.sample(range(len(COLOUR_NAMES)), n)
    shapes = rng.sample(SHAPES, n)
    boxes, tries = [], 0
    while len(boxes) < n:  # rejection sampling: objects never overlap (sizes shrink if a scene is crowded)
        tries += 1
        side = int(min(w, h) * rng.uniform(0.22, 0.38) * 0.97 ** (tries // 50))
        x0, y0 = rng.randint(0, w - side), rng.randint(0, h - side)
        box = (x0, y0, x0 + side, y0 + side)
        if not any(_overlaps(box, b) for b in boxes):
            boxes.append(box)
    objects = []
    for c, s, box in zip(colours, shapes, boxes):
        draw_shape(draw, s, COLOURS[c], box)
        objects.append({"words": [COLOUR_NAMES[c], SHAPE_NAMES[s]],
                        "box": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    objects.sort(key=lambda o: o["box"][0] + o["box"][2] / 2)
    return img, caption_for(objects), objects


def caption_for(objects) -> str:
    names = [f"a {o['words'][0]} {o['words'][1]}" for o in objects]
    if len(objects) == 1:
        return names[0]
    if len(objects) == 2:
        (ax, ay, aw, ah), (bx, by, bw, bh) = objects[0]["box"], objects[1]["box"]
        dx, dy = (bx + bw / 2) - (ax + aw / 2), (by + bh / 2) - (ay + ah / 2)
        if abs(dy) > abs(dx):  # mostly one above the other
            return f"{names[0]} {'above' if dy > 0 else 'below'} {names[1]}"
        return f"{names[0]} left of {names[1]}"
    return f"{names[0]} , {names[1]} and {names[2]}"


def write_split(directory, count: int, seed: int, first_id: int = 1) -> dict:
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    coco = {"images": [], "annotations": []}
    objects = {}
    for k in range(count):
        img, caption, objs = make_scene(rng)
        image_id = first_id + k
        name = f"scene_{image_id:06d}.png"
        img.save(directory / "images" / name)
        coco["images"].append({"id": image_id, "file_name": name, "width": img.width, "height": img.height})
        coco["annotations"].append({"id": image_id, "image_id": image_id, "caption": caption})
        objects[name] = objs
    (directory / "captions.json").write_text(json.dumps(coco) + "\n")
    (directory / "objects.json").write_text(json.dumps(objects) + "\n")
    return coco


def write_vocab(path) -> Path:
    """Every caption word, after BERT's special tokens."""
    return _write_vocab(path, WORDS)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder to write train/, val/ and vocab.txt into")
    p.add_argument("--train", type=int, default=2000, help="training scenes (default: 2000)")
    p.add_argument("--val", type=int, default=200, help="held-out scenes (default: 200)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.train < 1 or a.val < 1:
        raise UserError("--train and --val must be at least 1")
    out = ensure_writable_dir(a.out)
    write_split(out / "train", a.train, seed=a.seed * 2 + 1)
    write_split(out / "val", a.val, seed=a.seed * 2 + 2, first_id=a.train + 1)
    write_vocab(out / "vocab.txt")
    print(f"wrote {a.train} train and {a.val} val scenes and {out / 'vocab.txt'}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
