"""The pointing game for Problem 2: does a word's cross-attention peak on the object the word names?

``python3 -m catr.pointing OUTPUT_DIR --objects objects.json`` reads a ``hw3_2.sh`` output folder (each image's
``<stem>.npy`` maps and ``<stem>.json`` tokens) and scores every generated token that names the colour or shape of
an object in the scene: a hit when the map's maximum, upsampled onto the image exactly as the PNG draws it, lies
inside that object's box (``objects.json``: per file name, each object's ``words`` and ``box`` [x, y, w, h] in
original pixels, as ``synth.captionworld`` writes it). Two baselines: the image centre and a uniformly random
point (expected). ``--checkpoint CKPT --vocab VOCAB`` adds one row per decoder layer (the model is re-run on the
folder's source images), ``--captions captions.json`` (COCO) adds caption accuracy.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from hw3io import UserError, run_cli
from synth.captionworld import COLOUR_NAMES, SHAPE_NAMES

OBJECT_WORDS = set(COLOUR_NAMES) | set(SHAPE_NAMES.values())


def word_list(text: str) -> list[str]:
    """Words and punctuation, lowercased: "A red circle, a cross" -> [a, red, circle, ",", a, cross]."""
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def read_folder(folder) -> list[dict]:
    """Every ``<stem>.json`` of a hw3_2.sh folder with its maps (T, H', W'), heads averaged."""
    folder = Path(folder)
    metas = sorted(folder.glob("*.json"))
    if not metas:
        raise UserError(f"no hw3_2.sh outputs (<stem>.json) in {folder}")
    items = []
    for path in metas:
        meta = json.loads(path.read_text())
        npy = path.with_suffix(".npy")
        if not npy.is_file() or "tokens" not in meta or not meta.get("image"):
            raise UserError(f"{path} is not a hw3_2.sh output (needs tokens, image and {npy.name})")
        maps = np.load(npy)
        items.append(dict(meta, stem=path.stem, name=Path(meta["image"]).name,
                          maps=maps.mean(1) if maps.ndim == 4 else maps))
    return items


def targets(tokens: list[str], objects: list[dict]) -> list[tuple[int, list]]:
    """(map index, box [x, y, w, h]) for every token naming an object's colour or shape (a scene's colours are
    distinct, as are its shapes, so a word names one object)."""
    out = []
    for i, tok in enumerate(tokens):
        for o in objects:
            if tok in o["words"]:
                out.append((i, o["box"]))
    return out


def place(maps: np.ndarray, size: tuple[int, int], original: tuple[int, int], boxes: list) -> tuple[list, list]:
    """Maps upsampled to the resized image ``size`` (W, H) as the PNG draws them, and the boxes moved from
    ``original`` (W, H) pixels into that frame as (x0, y0, x1, y1)."""
    import torch
    from hw3io import upsample
    (w, h), (W, H) = size, original
    heat = upsample(torch.from_numpy(np.ascontiguousarray(maps)), (h, w)).numpy()
    sx, sy = w / W, h / H
    return list(heat), [(x * sx, y * sy, (x + bw) * sx, (y + bh) * sy) for x, y, bw, bh in boxes]


def image_size(path) -> tuple[int, int]:
    from PIL import Image
    with Image.open(path) as img:
        return img.size


def score_items(items, objects: dict) -> dict:
    """Pointing-game scores over the folder's own maps. ``items``: dicts with tokens, maps, size, image, name."""
    from hw3io.pointing import score
    heats, boxes, absent = [], [], 0
    for it in items:
        objs = objects.get(it["name"])
        if objs is None:
            raise UserError(f"{it['name']} has no entry in the objects file")
        hits = targets(it["tokens"], objs)
        named = {w for o in objs for w in o["words"]}
        absent += sum(1 for t in it["tokens"] if t in OBJECT_WORDS and t not in named)
        if hits:
            h, b = place(it["maps"][[i for i, _ in hits]], tuple(it["size"]), image_size(it["image"]),
                         [box for _, box in hits])
            heats += h
            boxes += b
    return dict(score(heats, boxes), absent=absent)


def per_layer(items, objects: dict, checkpoint, vocab, device="cpu") -> dict:
    """Scores of every decoder layer's cross-attention, from the model re-run on the folder's source images."""
    from hw3io import load_rgb
    from .caption import create_model
    from .decode import cross_attention, greedy_decode
    from .pipeline import tile_labels
    from .preprocess import preprocess
    from .tokenizer import load_tokenizer
    model, tok = create_model(checkpoint=checkpoint).to(device), load_tokenizer(vocab)
    n_layers = len(model.transformer.decoder.layers)
    runs = {k: [] for k in range(n_layers)}
    max_len = model.transformer.embeddings.position_embeddings.num_embeddings
    for it in items:
        small, x, mask = preprocess(load_rgb(it["image"]), model.config.max_dim)
        ids, ended, encoded = greedy_decode(model, x.to(device), mask.to(device), tok.start_id, tok.end_id, max_len)
        tokens = tile_labels(tok, ids, ended)
        for k in range(n_layers):
            maps = cross_attention(model, encoded, tok.start_id, ids, ended, layer=k).cpu().numpy()
            runs[k].append(dict(it, tokens=tokens, maps=maps, size=[small.width, small.height]))
    return {k: score_items(v, objects) for k, v in runs.items()}


def caption_scores(items, references: dict, objects: dict) -> dict:
    """Exact match, per-word accuracy and the share of captions naming exactly the scene's objects."""
    from .metrics import exact_match, names_objects, word_accuracy
    exact, words, named = [], [], []
    for it in items:
        refs = [word_list(r) for r in references.get(it["name"], [])]
        if not refs:
            raise UserError(f"{it['name']} has no reference caption")
        gen = word_list(it["caption"])
        exact.append(exact_match(gen, refs))
        words.append(word_accuracy(gen, refs))
        if it["name"] in objects:
            named.append(names_objects(it["caption"], objects[it["name"]], COLOUR_NAMES, SHAPE_NAMES.values()))
    n = max(len(exact), 1)
    return {"exact": sum(exact) / n, "word_acc": sum(words) / n, "names_objects": sum(named) / max(len(named), 1),
            "count": len(exact)}


def read_references(path) -> dict:
    """COCO captions -> {file name: [captions]}."""
    coco = json.loads(Path(path).read_text())
    names = {im["id"]: im["file_name"] for im in coco["images"]}
    refs = {}
    for a in coco["annotations"]:
        refs.setdefault(names[a["image_id"]], []).append(a["caption"])
    return refs


def format_table(rows: dict, baseline: dict) -> str:
    from hw3io import markdown_table
    body = [(name, f"{s['maps']:.3f}", s["count"]) for name, s in rows.items()]
    body += [("image centre (baseline)", f"{baseline['centre']:.3f}", baseline["count"]),
             ("random point (baseline, expected)", f"{baseline['random']:.3f}", baseline["count"])]
    return markdown_table(("map", "hit rate", "object words"), body, "lrr")


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except ValueError as e:
        raise UserError(f"{what} {path} is not JSON ({e})") from None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a hw3_2.sh output folder")
    p.add_argument("--objects", required=True, help="objects.json of the captioned images (synth.captionworld)")
    p.add_argument("--captions", default=None, help="COCO captions JSON with the reference captions (optional)")
    p.add_argument("--checkpoint", default=None, help="the caption model, to score every decoder layer (optional)")
    p.add_argument("--vocab", default=None, help="its vocab.txt (with --checkpoint)")
    p.add_argument("--device", default="cpu", help="device for --checkpoint (default: cpu)")
    a = p.parse_args(argv)
    objects = _read_json(a.objects, "objects file")
    items = read_folder(a.folder)
    if a.captions:
        c = caption_scores(items, read_references(a.captions), objects)
        print(f"captions of {c['count']} images: exact match {c['exact']:.3f}, per-word accuracy {c['word_acc']:.3f}, "
              f"naming every object's colour and shape {c['names_objects']:.3f}")
    folder = score_items(items, objects)
    rows = {f"hw3_2.sh maps (layer {items[0].get('layer', -1)})": folder}
    if a.checkpoint:
        layers = per_layer(items, objects, a.checkpoint, a.vocab, a.device)
        rows.update({f"decoder layer {k}": s for k, s in layers.items()})
    print(format_table(rows, folder))
    if folder["absent"]:
        print(f"({folder['absent']} generated colour or shape word(s) named no object of their scene; not scored)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
