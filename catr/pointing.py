"""The pointing game for Problem 2: does a word's cross-attention peak on the object the word names?

``python3 -m catr.pointing OUTPUT_DIR (--objects objects.json | --instances instances_val2017.json)`` reads a
``hw3_2.sh`` output folder (each image's ``<stem>.npy`` maps and ``<stem>.json`` tokens) and scores every generated
word that names an object of its image, as TorchRay plays the pointing game: on the original image (as displayed,
after its EXIF orientation, as ``hw3io.load_rgb`` gives it), the word's map upsampled onto it (the model sees the
whole image, resized, unpadded: ``catr.preprocess``), so the 15 px are original-image pixels. Three ways
(``explanations.pointing``): strict (the peak on the object), TorchRay's tolerance (the peak within 15 px of it, hit rate
per class, then averaged over the classes) and mass in box (the share of the map on the object; Liu et al. 2017).
Two baselines: the image centre and a uniformly random point (expected; for mass in box a uniform map, the
object's area share).

What names what:

- ``--objects``: per file name, each object's ``words`` and ``box`` [x, y, w, h] in stored pixels (as
  ``synth.captionworld`` writes it, or your own); a word names every object of the image that lists it, and is its
  own class. The vocabulary is the file's words, whatever they are.
- ``--instances``: COCO instance annotations (``images``, ``annotations`` with ``bbox``, ``segmentation`` and
  ``category_id``, ``categories`` with ``name``). An object is its segmentation mask (polygons, RLE or compressed
  RLE, decoded by pycocotools), as TorchRay takes COCO's objects; its bbox where it has none. A category is named
  by its name, its plural, and a short table of synonyms (``COCO_SYNONYMS``: man, woman, people... -> person;
  bike -> bicycle; ...). A two-word name ("hot dog", "traffic light") is named by both words in a row, never by
  its last word alone ("dog" is a dog, "light" is often not a traffic light); the table adds the unambiguous single
  words (hydrant, teddy, ...). A word scores against the union of every instance of its category in the image.
- ``--synonyms FILE``: your own JSON ``{word or two words: class}`` (a category name, or a word of the objects
  file), over the built-in table.

Boxes and segmentations refer to each image's stored pixels, as COCO's do, and are turned by its EXIF orientation
like its pixels (``explanations.targets``).

A word split into word pieces, or a two-word name, is scored on the mean of its pieces' maps. ``--checkpoint CKPT
--vocab VOCAB`` adds one row per decoder layer (the model is re-run on the folder's source images), ``--per-head``
a second table with one row per layer and head; ``--captions captions.json`` (COCO) adds caption accuracy.
"""
import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw3io import UserError, brief, read_json, run_cli
from explanations.targets import coco_shape

# A short table of the words captions use for COCO's categories, beyond each name and its plural. Two-word
# categories get the single words that name nothing else.
COCO_SYNONYMS = {
    "person": "man men woman women people person persons boy boys girl girls child children kid kids guy guys "
              "lady ladies player players",
    "bicycle": "bike bikes", "motorcycle": "motorbike motorbikes", "airplane": "plane planes jet jets aeroplane",
    "tv": "television televisions", "couch": "sofa sofas", "cell phone": "phone phones cellphone cellphones",
    "dining table": "table tables", "potted plant": "plant plants", "teddy bear": "teddy teddies",
    "fire hydrant": "hydrant hydrants", "tennis racket": "racket rackets racquet racquets",
    "sports ball": "ball balls", "baseball bat": "bat bats", "baseball glove": "glove gloves mitt",
    "parking meter": "meter meters", "hair drier": "hairdryer dryer drier", "donut": "doughnut doughnuts",
    "skis": "ski", "mouse": "mice", "knife": "knives", "cow": "cattle", "wine glass": "glass",
}


@dataclass
class Annotations:
    """``scenes``: file name -> {class: [shape, ...]} (a box [x, y, w, h] or a checked COCO annotation, on the
    image's stored pixels: ``explanations.targets``); ``names``: words (a tuple) -> the class they name."""
    scenes: dict
    names: dict
    source: str  # "objects file" or "instances file", for error messages


def word_list(text: str) -> list[str]:
    """Words and punctuation, lowercased: "A red circle, a cross" -> [a, red, circle, ",", a, cross]."""
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def _malformed(path, what, shape, e=None):
    return UserError(f"{what} {path} is not {shape}" + (f" ({brief(e, 80)})" if e else ""))


def from_objects(objects, path="objects file") -> Annotations:
    """An objects file (``synth.captionworld``'s format) -> every object word names the objects listing it."""
    try:
        scenes = {}
        for name, objs in objects.items():
            scene = scenes[name] = {}
            for o in objs:
                box = [float(v) for v in o["box"]]
                if len(box) != 4 or not all(isinstance(w, str) for w in o["words"]):
                    raise ValueError(f"{name}: {str(o)[:60]}")
                for w in o["words"]:
                    scene.setdefault(w.lower(), []).append(box)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise _malformed(path, "objects file", "{file name: [{words: [...], box: [x, y, w, h]}, ...]}", e) from None
    words = {w for scene in scenes.values() for w in scene}
    return Annotations(scenes, {tuple(w.split()): w for w in words if w.split()}, "objects file")


def plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def coco_names(categories) -> dict:
    """COCO category names -> {words: category}: each name, its plural (the last word's) and ``COCO_SYNONYMS``."""
    names = {}
    for cat in categories:
        words = tuple(cat.split())
        names[words] = names[words[:-1] + (plural(words[-1]),)] = cat
    for cat, synonyms in COCO_SYNONYMS.items():
        if cat in categories:
            for w in synonyms.split():
                names.setdefault((w,), cat)  # a category's own name wins ("glass" stays a wine glass only here)
    return names


def from_instances(coco, path="instances file") -> Annotations:
    """COCO instance annotations -> each image's annotations (``coco_shape``: segmentation, bbox and the image's
    stated size) by category name, and ``coco_names``."""
    try:
        cats = {c["id"]: str(c["name"]).lower() for c in coco["categories"]}
        files = {im["id"]: Path(im["file_name"]).name for im in coco["images"]}
        sizes = {im["id"]: (int(im["width"]), int(im["height"])) if "width" in im and "height" in im else None
                 for im in coco["images"]}
        scenes = {name: {} for name in files.values()}
        for a in coco["annotations"]:
            scenes[files[a["image_id"]]].setdefault(cats[a["category_id"]], []).append(
                coco_shape(a, sizes[a["image_id"]]))
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise _malformed(path, "instances file", "COCO instances (images, annotations with bbox, segmentation and "
                         "category_id, categories with name)", e) from None
    return Annotations(scenes, coco_names(set(cats.values())), "instances file")


def add_synonyms(ann: Annotations, synonyms, path) -> Annotations:
    """The user's ``{word or words: class}`` over the built-in names; a class the annotations lack is an error."""
    if not isinstance(synonyms, dict) or not all(isinstance(v, str) for v in synonyms.values()):
        raise UserError(f"synonyms file {path} is not {{word: class}}")
    known = set(ann.names.values())
    for word, cls in synonyms.items():
        if cls.lower() not in known:
            raise UserError(f"synonyms file {path}: {word!r} -> {cls!r}, a class the {ann.source} does not have")
    names = dict(ann.names)
    names.update({tuple(w.lower().split()): c.lower() for w, c in synonyms.items() if w.split()})
    return Annotations(ann.scenes, names, ann.source)


def words_of(tokens: list[str]) -> list[tuple[str, list[int]]]:
    """Word pieces joined into words: [bi, ##ke, red] -> [(bike, [0, 1]), (red, [2])]."""
    words = []
    for i, t in enumerate(tokens):
        if t.startswith("##") and words:
            words[-1] = (words[-1][0] + t[2:], words[-1][1] + [i])
        else:
            words.append((t.lower(), [i]))
    return words


def find_names(tokens: list[str], names: dict) -> list[tuple[list[int], str]]:
    """(token indices, class) of every name in the tokens, the longest name first at each word ("hot dog" before
    "dog")."""
    words, out, i = words_of(tokens), [], 0
    longest = max((len(k) for k in names), default=1)
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            cls = names.get(tuple(w for w, _ in words[i:i + n]))
            if cls is not None:
                out.append(([k for _, idx in words[i:i + n] for k in idx], cls))
                i += n
                break
        else:
            i += 1
    return out


def targets(tokens: list[str], scene: dict, names: dict) -> tuple[list, int]:
    """([(token indices, class, shapes)] of the names whose class is in the image, the number of names whose class
    is not)."""
    found = find_names(tokens, names)
    hits = [(idx, cls, scene[cls]) for idx, cls in found if cls in scene]
    return hits, len(found) - len(hits)


def read_folder(folder) -> list[dict]:
    """Every ``<stem>.json`` of a hw3_2.sh folder with its maps (T, H', W'), heads averaged."""
    folder = Path(folder)
    metas = sorted(folder.glob("*.json"))
    if not metas:
        raise UserError(f"no hw3_2.sh outputs (<stem>.json) in {folder}")
    items = []
    for path in metas:
        meta = read_json(path, "hw3_2.sh output")
        npy = path.with_suffix(".npy")
        if not isinstance(meta, dict) or not npy.is_file() or "tokens" not in meta or not meta.get("image"):
            raise UserError(f"{path} is not a hw3_2.sh output (needs tokens, image and {npy.name})")
        maps = np.load(npy)
        items.append(dict(meta, stem=path.stem, name=Path(meta["image"]).name,
                          maps=maps.mean(1) if maps.ndim == 4 else maps))
    return items


def place(maps: np.ndarray, shape: tuple[int, int]) -> list:
    """(T, H', W') maps -> (T, H, W): upsampled onto the original image as displayed, (H, W) = ``shape``. The
    model saw that image whole, resized and unpadded (``catr.preprocess``), so its grid covers exactly that image."""
    import torch
    from hw3io import upsample
    return list(upsample(torch.from_numpy(np.ascontiguousarray(maps)), shape).numpy())


def score_items(items, ann: Annotations, masks: dict | None = None) -> dict:
    """Pointing-game scores over the folder's own maps, on each original image. ``items``: dicts with tokens, maps,
    image, name. ``masks``: a cache of target masks by (image, class), shared by the callers that score the same
    images again (every decoder layer)."""
    from explanations.pointing import score
    from explanations.targets import target_mask
    masks = {} if masks is None else masks
    heats, objects, classes, absent = [], [], [], 0
    for it in items:
        scene = ann.scenes.get(it["name"])
        if scene is None:
            raise UserError(f"{it['name']} has no entry in the {ann.source}")
        found, missing = targets(it["tokens"], scene, ann.names)
        absent += missing
        if found:
            for _, cls, shapes in found:
                if (it["image"], cls) not in masks:
                    masks[it["image"], cls] = target_mask(shapes, it["image"])
            found_masks = [masks[it["image"], cls] for _, cls, _ in found]
            maps = np.stack([it["maps"][idx].mean(0) for idx, _, _ in found])  # pieces of one name: their mean
            heats += place(maps, found_masks[0].shape)
            objects += found_masks
            classes += [cls for _, cls, _ in found]
    return dict(score(heats, objects, classes), absent=absent)


def per_layer(items, ann: Annotations, checkpoint, vocab, device="cpu", per_head=False) -> tuple[dict, dict]:
    """Scores of every decoder layer's cross-attention (and with ``per_head`` of every (layer, head)), from the
    model re-run on the folder's source images."""
    from hw3io import load_rgb
    from .caption import create_model
    from .decode import cross_attention, greedy_decode
    from .pipeline import tile_labels
    from .preprocess import preprocess
    from .tokenizer import load_tokenizer
    model, tok = create_model(checkpoint=checkpoint).to(device), load_tokenizer(vocab)
    n_layers = len(model.transformer.decoder.layers)
    runs, head_runs, masks = {k: [] for k in range(n_layers)}, {}, {}
    max_len = model.transformer.embeddings.position_embeddings.num_embeddings
    for it in items:
        small, x, mask = preprocess(load_rgb(it["image"]), model.config.max_dim)
        ids, ended, encoded = greedy_decode(model, x.to(device), mask.to(device), tok.start_id, tok.end_id, max_len)
        run = dict(it, tokens=tile_labels(tok, ids, ended), size=[small.width, small.height])
        for k in range(n_layers):
            maps = cross_attention(model, encoded, tok.start_id, ids, ended, layer=k, heads=per_head).cpu().numpy()
            if per_head:  # (T, heads, H', W'): the head mean is the layer's map, as attn_mode "mean" averages
                for h in range(maps.shape[1]):
                    head_runs.setdefault((k, h), []).append(dict(run, maps=maps[:, h]))
                maps = maps.mean(1)
            runs[k].append(dict(run, maps=maps))
    return ({k: score_items(v, ann, masks) for k, v in runs.items()},
            {k: score_items(v, ann, masks) for k, v in head_runs.items()})


def caption_world(objects: dict):
    """(colour words, shape words) when every object of the objects file has two words, colour then shape, as
    in the caption world; else None (the "names every object" metric means nothing there)."""
    objs = [o for v in objects.values() for o in v]
    if not objs or any(len(o.get("words", ())) != 2 for o in objs):
        return None
    return {o["words"][0] for o in objs}, {o["words"][1] for o in objs}


def caption_scores(items, references: dict, objects: dict | None = None) -> dict:
    """Exact match, per-word accuracy and, for caption-world objects, the share of captions naming exactly the
    scene's objects (``names_objects``: None otherwise)."""
    from .metrics import exact_match, names_objects, word_accuracy
    exact, words, named = [], [], []
    pairs = caption_world(objects) if objects else None
    for it in items:
        refs = [word_list(r) for r in references.get(it["name"], [])]
        if not refs:
            raise UserError(f"{it['name']} has no reference caption")
        gen = word_list(it["caption"])
        exact.append(exact_match(gen, refs))
        words.append(word_accuracy(gen, refs))
        if pairs and it["name"] in objects:
            named.append(names_objects(it["caption"], objects[it["name"]], *pairs))
    n = max(len(exact), 1)
    return {"exact": sum(exact) / n, "word_acc": sum(words) / n,
            "names_objects": sum(named) / max(len(named), 1) if pairs else None, "count": len(exact)}


def format_table(rows: dict, baseline: dict) -> str:
    from explanations.pointing import table
    return table(rows, baseline, "object words")


def read_annotations(a) -> Annotations:
    """``--objects`` or ``--instances``, then ``--synonyms``."""
    if bool(a.objects) == bool(a.instances):
        raise UserError("give one of --objects (objects.json) or --instances (COCO instances JSON)")
    if a.objects:
        ann = from_objects(read_json(a.objects, "objects file"), a.objects)
    else:
        ann = from_instances(read_json(a.instances, "instances file"), a.instances)
    return add_synonyms(ann, read_json(a.synonyms, "synonyms file"), a.synonyms) if a.synonyms else ann


def print_captions(items, a) -> None:
    from .metrics import references_by_name
    objects = read_json(a.objects, "objects file") if a.objects else None
    c = caption_scores(items, references_by_name(a.captions), objects)
    named = "" if c["names_objects"] is None else f", naming every object's colour and shape {c['names_objects']:.3f}"
    print(f"captions of {c['count']} images: exact match {c['exact']:.3f}, per-word accuracy {c['word_acc']:.3f}"
          + named)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a hw3_2.sh output folder")
    # What the images hold: one of
    p.add_argument("--objects", default=None, help="objects.json of the captioned images (synth.captionworld's form)")
    p.add_argument("--instances", default=None, help="COCO instance annotations, e.g. instances_val2017.json (objects "
                   "are their segmentation masks)")
    p.add_argument("--synonyms", default=None, help="JSON {word: class} naming classes in your words (optional)")
    # Optional extras
    p.add_argument("--captions", default=None, help="reference captions: COCO captions JSON or caption.txt (optional)")
    p.add_argument("--checkpoint", default=None, help="the caption model, to score every decoder layer (optional)")
    p.add_argument("--vocab", default=None, help="its vocab.txt (with --checkpoint)")
    p.add_argument("--per-head", action="store_true", help="with --checkpoint: also a table of every layer's heads")
    p.add_argument("--device", default="auto", help="device for --checkpoint: auto (cuda if available), cuda or cpu")
    a = p.parse_args(argv)
    from hw3io import pick_device
    from explanations.pointing import legend
    ann = read_annotations(a)
    device = pick_device(a.device) if a.checkpoint else None
    items = read_folder(a.folder)
    if a.captions:
        print_captions(items, a)
    folder = score_items(items, ann)
    rows, heads = {f"hw3_2.sh maps (layer {items[0].get('layer', -1)})": folder}, {}
    if a.checkpoint:
        layers, heads = per_layer(items, ann, a.checkpoint, a.vocab, device, a.per_head)
        rows.update({f"decoder layer {k}": s for k, s in layers.items()})
    print(format_table(rows, folder))
    if heads:
        print()
        print(format_table({f"layer {k} head {h}": s for (k, h), s in heads.items()}, folder))
    print(legend(folder))
    if folder["absent"]:
        print(f"({folder['absent']} generated object word(s) named no object of their image; not scored)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
