"""Generated pet-like folders for the demo and the tests.

Each of the 37 classes is one coloured shape (4 shapes x 10 colours, the first 37 pairs) drawn at a random
off-centre position and scale on a cluttered grey background beside grey distractor shapes, so the class lives
only in the object: a correct attention map has to land on it, and the image centre does not. Files follow the real naming, ``{label}_{image_id}.jpg``.
"""
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from hw3io import atomic_write_text

from .shapes import COLOUR_NAMES, COLOURS, SHAPES, draw_shape

CLASSES = [(s, c) for c in COLOURS for s in SHAPES][:37]
CLASS_NAMES = [f"{n} {s}" for n in COLOUR_NAMES for s in SHAPES][:37]  # in CLASSES' order: label -> name


def draw_object(draw: ImageDraw.ImageDraw, label: int, box: tuple[int, int, int, int]) -> None:
    """Draw class ``label``'s object inside ``box`` = (x0, y0, x1, y1)."""
    draw_shape(draw, *CLASSES[label], box)


def _overlaps(a, b, gap=2) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def make_image(label: int, rng: random.Random, size=(96, 80)) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One cluttered image of class ``label``; also returns the object's box.

    The object is a pointing target that a map has to find: several sizes (a quarter to a half of the shorter
    side), never over the image centre (so the centre baseline of the pointing game scores 0 strict) and inside
    the centred square that an eval centre crop keeps, beside two grey shapes that carry no class information."""
    w, h = size
    img = Image.new("RGB", size, tuple([rng.randint(90, 160)] * 3))
    draw = ImageDraw.Draw(img)
    for _ in range(12):  # grey clutter: lines and blobs carry no class information
        g = rng.randint(40, 220)
        x, y = rng.randrange(w), rng.randrange(h)
        if rng.random() < 0.5:
            draw.line((x, y, rng.randrange(w), rng.randrange(h)), fill=(g, g, g), width=rng.randint(1, 3))
        else:
            s = rng.randint(3, 10)
            draw.ellipse((x - s, y - s, x + s, y + s), fill=(g, g, g))
    square = min(w, h)
    left, top = (w - square) // 2, (h - square) // 2  # the centred square a centre crop keeps
    while True:
        side = int(square * rng.uniform(0.25, 0.5))
        x0, y0 = left + rng.randint(0, square - side), top + rng.randint(0, square - side)
        box = (x0, y0, x0 + side, y0 + side)
        if not (x0 <= w / 2 <= x0 + side and y0 <= h / 2 <= y0 + side):
            break
    placed = [box]
    for _ in range(2):  # distractors: grey shapes the size of objects, away from the object
        for _ in range(20):
            d = int(square * rng.uniform(0.2, 0.4))
            dx, dy = rng.randint(0, w - d), rng.randint(0, h - d)
            if not any(_overlaps((dx, dy, dx + d, dy + d), b) for b in placed):
                g = rng.choice((rng.randint(30, 80), rng.randint(170, 230)))
                draw_shape(draw, rng.choice(SHAPES), (g, g, g), (dx, dy, dx + d, dy + d))
                placed.append((dx, dy, dx + d, dy + d))
                break
    draw_object(draw, label, box)
    return img, box


def make_split(directory, per_class: int, seed: int, num_classes: int = 37, sizes=((96, 80), (80, 96), (88, 88))):
    """Write ``per_class`` JPEGs per class into ``directory`` with the real naming, and ``boxes.json`` beside them
    (file name -> the object's box [x, y, w, h] in original pixels, for the pointing game); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths, boxes = [], {}
    image_id = seed * 100_000
    for label in range(num_classes):
        for _ in range(per_class):
            image_id += 1
            img, (x0, y0, x1, y1) = make_image(label, rng, rng.choice(sizes))
            path = directory / f"{label}_{image_id}.jpg"
            img.save(path, quality=92)
            paths.append(path)
            boxes[path.name] = [x0, y0, x1 - x0, y1 - y0]
    atomic_write_text(directory / "boxes.json", json.dumps(boxes, indent=0) + "\n")
    return paths


def make_dataset(root, train_per_class: int = 24, val_per_class: int = 8, num_classes: int = 37, seed: int = 0):
    """``root/train`` and ``root/val`` in the homework's layout, and ``root/classes.txt`` (one class name a line,
    in label order), which training copies into its output folder for the report."""
    root = Path(root)
    make_split(root / "train", train_per_class, seed=seed + 1, num_classes=num_classes)
    make_split(root / "val", val_per_class, seed=seed + 2, num_classes=num_classes)
    atomic_write_text(root / "classes.txt", "\n".join(CLASS_NAMES[:num_classes]) + "\n")
    return root


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description="Write a generated pet-style train/val folder pair.")
    p.add_argument("out", help="folder to create train/ and val/ in")
    p.add_argument("--train-per-class", type=int, default=40)
    p.add_argument("--val-per-class", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from hw3io import UserError, ensure_writable_dir
    if a.train_per_class < 1 or a.val_per_class < 1:
        raise UserError("--train-per-class and --val-per-class must be at least 1")
    ensure_writable_dir(a.out)
    make_dataset(a.out, a.train_per_class, a.val_per_class, seed=a.seed)
    print(f"wrote {37 * a.train_per_class} train and {37 * a.val_per_class} val images under {a.out}")


if __name__ == "__main__":
    import sys
    from hw3io import run_cli
    sys.exit(run_cli(main))
