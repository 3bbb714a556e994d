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

A word split into word pieces, or a two-word name, is scored on the mean of its pieces' maps. One row per
method, each label starting with its name: the folder's maps are the row of the way they were made (``attention,
layer k (hw3_2.sh's maps)``, from their ``<stem>.json``). ``--checkpoint CKPT --vocab VOCAB`` adds the other rows,
the model re-run on the folder's source images and teacher-forced on the folder's caption (every row scores the
same words): attention of every decoder layer and their mean, and relevance (Chefer et al. 2021). ``--faithfulness``
adds RISE and occlusion (``catr.explain``) and three columns: the deletion and insertion areas (Petsiuk et al.
2018) of each object word's probability (the mean of its pieces') ranked by its map, on the model's input, and the
rank correlation of its maps with a randomised model's (Adebayo et al. 2018); the random row gets a random
ranking's areas. ``--limit N`` scores N images spread over the folder; ``--per-head`` a second table with one row
per layer and head; ``--captions captions.json`` (COCO) adds caption accuracy.
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


def found_names(it: dict, ann: Annotations) -> tuple[list, int]:
    """``targets`` of one hw3_2.sh output (a dict with tokens and the image's file ``name``)."""
    scene = ann.scenes.get(it["name"])
    if scene is None:
        raise UserError(f"{it['name']} has no entry in the {ann.source}")
    return targets(it["tokens"], scene, ann.names)


def scored_words(items, ann: Annotations, masks: dict | None = None) -> tuple[list, int]:
    """Every generated word of ``items`` that names an object of its image, placed for the pointing game: (item,
    token indices, class, map (H, W) on the original image, the object's mask) each; and the number of names whose
    class is not in their image. ``masks``: a cache of target masks by (image, class)."""
    from explanations.targets import target_mask
    masks = {} if masks is None else masks
    words, absent = [], 0
    for it in items:
        found, missing = found_names(it, ann)
        absent += missing
        if found:
            for _, cls, shapes in found:
                if (it["image"], cls) not in masks:
                    masks[it["image"], cls] = target_mask(shapes, it["image"])
            found_masks = [masks[it["image"], cls] for _, cls, _ in found]
            maps = np.stack([it["maps"][idx].mean(0) for idx, _, _ in found])  # pieces of one name: their mean
            words += [(it, idx, cls, heat, mask) for (idx, cls, _), heat, mask
                      in zip(found, place(maps, found_masks[0].shape), found_masks)]
    return words, absent


def score_items(items, ann: Annotations, masks: dict | None = None) -> dict:
    """Pointing-game scores over the folder's own maps, on each original image. ``items``: dicts with tokens, maps,
    image, name. ``masks``: a cache of target masks by (image, class), shared by the callers that score the same
    images again (every method)."""
    from explanations.pointing import score
    words, absent = scored_words(items, ann, masks)
    return dict(score([w[3] for w in words], [w[4] for w in words], [w[2] for w in words]), absent=absent)


def mark_folder(folder, items, ann: Annotations, label: str) -> int:
    """``--mark``: record in each scored image's ``<stem>.json`` (key ``pointing``) every word it scored: its token
    indices, class, the object's bounding box (x0, y0, x1, y1; of all its instances when several), the map's peak
    (x, y) and whether the peak hit (strict, and within ``tolerance_px``), in original-image pixels, and in
    ``scored`` which maps those are (``label``); then rebuild the folder's explorer if it has one. Returns the
    number of words recorded."""
    import json
    from explanations.pointing import TOLERANCE, peak, play
    from hw3io import atomic_write_text
    words, _ = scored_words(items, ann)
    marks = {it["stem"]: [] for it in items}
    for it, idx, cls, heat, mask in words:
        game, (ys, xs) = play(heat, mask), np.nonzero(mask)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else [0, 0, 0, 0]
        marks[it["stem"]].append({"tokens": [int(i) for i in idx], "class": cls, "boxes": [box],
                                  "peak": [float(v) for v in peak(heat)], "strict": bool(game["maps"]),
                                  "tolerance": bool(game["tolerance"]), "tolerance_px": TOLERANCE})
    folder = Path(folder)
    for stem, found in marks.items():
        path = folder / f"{stem}.json"
        meta = read_json(path, "hw3_2.sh output")
        atomic_write_text(path, json.dumps(dict(meta, pointing=found, scored=label), indent=1) + "\n")
    if (folder / "index.html").is_file():
        from hw3io.explorer import write_explorer
        write_explorer(folder)
    return len(words)


FOLDER = " (hw3_2.sh's maps)"  # the table row of the folder's own maps ends in this


def folder_spec(items, n_layers: int | None = None) -> dict:
    """How the folder's maps were made, as a row spec (``method_specs``), from each ``<stem>.json`` (``method``;
    a folder from before hw3_2.sh recorded it holds attention; its ``layer``, or rise's ``masks``, ``cells`` and
    ``seed``, occlusion's ``cells``). ``n_layers``: the decoder's, to turn a negative layer into its index."""
    keys = {"attention": ("layer",), "rise": ("masks", "cells", "seed"), "occlusion": ("cells",)}
    specs = []
    for it in items:
        method = it.get("method", "attention")
        specs.append(dict(method=method, **{k: it.get(k) for k in keys.get(method, ())}))
        if method == "attention" and specs[-1]["layer"] is None:
            specs[-1]["layer"] = -1  # hw3_2.sh's default
    other = [s for s in specs if s != specs[0]]
    if other:
        raise UserError(f"the folder mixes maps made differently ({specs[0]} and {other[0]}): score each kind from its "
                        "own folder")
    spec = specs[0]
    if n_layers is not None and spec["method"] == "attention":
        if not isinstance(spec["layer"], int) or not -n_layers <= spec["layer"] < n_layers:
            raise UserError(f"the folder holds maps of decoder layer {spec['layer']}; the checkpoint has {n_layers}")
        spec["layer"] %= n_layers
    return spec


def method_specs(n_layers: int, faithfulness: bool, masks: int, cells: int, seed: int) -> list[dict]:
    """One spec per table row (``catr.explain.explain_maps``' method and options): attention of every decoder layer
    and their mean (``layer`` None), relevance; with ``faithfulness`` also the slow RISE and occlusion."""
    specs = [dict(method="attention", layer=k) for k in range(n_layers)]
    specs += [dict(method="attention", layer=None), dict(method="relevance")]
    if faithfulness:
        specs += [dict(method="rise", masks=masks, cells=cells, seed=seed), dict(method="occlusion", cells=cells)]
    return specs


def row_label(spec: dict) -> str:
    """A row's label, starting with its method's name."""
    method = spec["method"]
    if method == "attention":
        return "attention, mean of the layers" if spec["layer"] is None else f"attention, layer {spec['layer']}"
    if method == "relevance":
        return "relevance (Chefer et al. 2021)"
    if method == "rise":
        return f"rise ({spec['masks']} masks, {spec['cells']}x{spec['cells']} cells, seed {spec['seed']})"
    if method == "occlusion":
        return f"occlusion (patches of 1/{spec['cells']} of the longer side)"
    return method


def method_rows(specs: list[dict], folder: dict) -> tuple[dict, str]:
    """(label -> spec, the folder's label): the folder's maps take the row of the spec they were made with, its
    label marked ``FOLDER``; a spec no row has (rise with other settings) gets a row of its own, first."""
    label = row_label(folder) + FOLDER
    rows = {} if folder in specs else {label: folder}
    rows.update({label if s == folder else row_label(s): s for s in specs})
    return rows, label


@dataclass
class Captioned:
    """One image of the folder, ready for the model: input x (1, 3, H, W) and mask (1, H, W) (``catr.preprocess``),
    the folder's caption as ids (``caption_ids``) and the tokenizer's [CLS] and [SEP]."""
    x: object
    mask: object
    ids: list
    ended: bool
    start_id: int
    end_id: int


def row_maps(model, c: Captioned, spec: dict, encoded=None):
    """(T, H', W') maps of one image's caption for one row (``layer`` None: the mean of every layer's); ``encoded``:
    the image's ``model.encode_image``."""
    import torch
    from .decode import cross_attention
    from .explain import explain_maps
    if encoded is None:
        with torch.no_grad():
            encoded = model.encode_image(c.x, c.mask)
    if spec["method"] == "attention" and spec["layer"] is None:
        layers = range(len(model.transformer.decoder.layers))
        return torch.stack([cross_attention(model, encoded, c.start_id, c.ids, c.ended, layer=k)
                            for k in layers]).mean(0)
    options = {k: v for k, v in spec.items() if k != "method"}
    return explain_maps(spec["method"], model, c.x, c.mask, c.ids, c.ended, c.start_id, c.end_id, encoded=encoded,
                        **options)


def caption_ids(it: dict, pieces: dict) -> tuple[list[int], bool]:
    """The folder's caption as the model's ids (``pieces``: word piece -> id): its tokens, less the final
    ``<end>`` tile, which says [SEP] was generated."""
    tokens = it["tokens"]
    ended = bool(tokens) and tokens[-1] == "<end>"
    unknown = [t for t in tokens[:len(tokens) - ended] if t not in pieces]
    if unknown:
        raise UserError(f"{it['stem']}.json: token {unknown[0]!r} is not in the vocabulary; give the --vocab (and "
                        "--checkpoint) the folder was captioned with")
    return [pieces[t] for t in tokens[:len(tokens) - ended]], ended


def name_probs(score_fn, names: list[list[int]]):
    """``score_fn(images) -> (B, T)`` log-probabilities of a caption's tokens -> ``prob_fn(images) -> (B, K)``:
    each name's probability, the mean of its pieces' (a word split into pieces, a two-word name)."""
    import torch

    def prob_fn(images):
        p = score_fn(images).exp()
        return torch.stack([p[:, idx].mean(1) for idx in names], 1)
    return prob_fn


def name_maps(maps, names: list[list[int]]):
    """(T, H', W') -> (K, H', W'): each name's map, the mean of its pieces' maps (as the pointing game scores it)."""
    import torch
    maps = torch.as_tensor(maps)
    return torch.stack([maps[idx].mean(0) for idx in names])


def faithfulness_of(model, random_model, c: Captioned, rows: dict, maps: dict, names: list[list[int]], *,
                    steps: int, seed: int) -> dict:
    """Per row (label -> spec, ``maps``: label -> (T, H', W')) and for ``random``: the object words' deletion and
    insertion areas on the model's input (each word's probability, ``name_probs``, ranked by its map,
    ``name_maps``); per row also ``randomisation``, the rank correlation of the words' maps with ``random_model``'s.
    Lists with one value per word, the random ranking's seeded with ``seed``."""
    import torch
    from explanations.faithfulness import deletion_insertion, random_baseline_areas
    from explanations.sanity import rank_correlation
    from .relevance import caption_score_fn, caption_sequence
    seq = caption_sequence(c.start_id, c.end_id, c.ids, c.ended)
    prob_fn = name_probs(caption_score_fn(model, c.mask, seq), names)
    image, valid = c.x[0], ~c.mask[0]
    with torch.no_grad():
        random_encoded = random_model.encode_image(c.x, c.mask)
    out = {}
    for label, spec in rows.items():
        curves = deletion_insertion(prob_fn, image, name_maps(maps[label], names), steps=steps, valid=valid)
        random_maps = row_maps(random_model, c, spec, random_encoded).cpu()
        r = rank_correlation(name_maps(maps[label], names), name_maps(random_maps, names))  # mean over the words
        out[label] = {"deletion": curves["deletion_auc"].tolist(), "insertion": curves["insertion_auc"].tolist(),
                      "randomisation": [r] * len(names)}
    curves = random_baseline_areas(prob_fn, image, seed=seed, steps=steps, valid=valid)
    out["random"] = {"deletion": curves["deletion_auc"].tolist(), "insertion": curves["insertion_auc"].tolist()}
    return out


def recompute(items, ann: Annotations, checkpoint, vocab, device="cpu", *, per_head=False, faithfulness=False,
              masks: int = 1000, cells: int = 8, seed: int = 0, steps: int = 16, show_progress: bool = False
              ) -> tuple[dict, dict, str | None]:
    """Every method's row (``method_rows``), the model re-run on the folder's source images and teacher-forced on
    the folder's caption, so that every row scores the same words; the folder's row keeps the folder's maps.

    Returns (label -> ``score_items`` scores, (layer, head) -> scores with ``per_head``, a note when the
    checkpoint's maps of the folder's layer differ from the folder's). With ``faithfulness`` each row's scores also
    get the means over the object words of ``faithfulness_of`` (``steps`` steps; the randomised model is
    ``randomized_copy(model, seed + 1)``, as in Problem 1), and the folder's row the random ranking's
    (``random_deletion``, ``random_insertion``: the table's random row)."""
    import torch
    from hw3io import load_rgb, progress
    from explanations.sanity import randomized_copy
    from .caption import create_model
    from .decode import cross_attention
    from .preprocess import preprocess
    from .tokenizer import load_tokenizer
    model, tok = create_model(checkpoint=checkpoint).to(device), load_tokenizer(vocab)
    if tok.vocab_size != model.mlp.layers[-1].out_features:
        raise UserError(f"vocabulary has {tok.vocab_size} tokens, the model {model.mlp.layers[-1].out_features}")
    pieces = {tok.token(i): i for i in range(tok.vocab_size)}
    n_layers = len(model.transformer.decoder.layers)
    folder = folder_spec(items, n_layers)
    rows, folder_label = method_rows(method_specs(n_layers, faithfulness, masks, cells, seed), folder)
    random_model = randomized_copy(model, seed=seed + 1) if faithfulness else None
    runs, head_runs, words, differ = {label: [] for label in rows}, {}, {}, []
    for i, it in enumerate(progress(items, desc="maps", unit="img", disable=not show_progress)):
        small, x, mask = preprocess(load_rgb(it["image"]), model.config.max_dim)
        c = Captioned(x.to(device), mask.to(device), *caption_ids(it, pieces), tok.start_id, tok.end_id)
        with torch.no_grad():
            encoded = model.encode_image(c.x, c.mask)
        maps = {label: it["maps"] if label == folder_label else row_maps(model, c, spec, encoded).cpu().numpy()
                for label, spec in rows.items()}
        if folder["method"] == "attention":  # the same maps, unless the folder was made by another model
            mine = row_maps(model, c, folder, encoded).cpu().numpy()
            if mine.shape != it["maps"].shape or np.abs(mine - it["maps"]).max() > 1e-3:
                differ.append(it["name"])
        run = dict(it, size=[small.width, small.height])
        for label in rows:
            runs[label].append(dict(run, maps=maps[label]))
        if per_head:  # (T, heads, H', W') per layer: the head mean is the layer's map, as attn_mode "mean" averages
            for k in range(n_layers):
                heads = cross_attention(model, encoded, c.start_id, c.ids, c.ended, layer=k, heads=True).cpu().numpy()
                for h in range(heads.shape[1]):
                    head_runs.setdefault((k, h), []).append(dict(run, maps=heads[:, h]))
        names = [idx for idx, _, _ in found_names(it, ann)[0]]
        if faithfulness and names:
            for label, values in faithfulness_of(model, random_model, c, rows, maps, names, steps=steps,
                                                 seed=seed + i).items():
                for key, v in values.items():
                    words.setdefault(label, {}).setdefault(key, []).extend(v)
    cache = {}
    results = {label: score_items(run, ann, cache) for label, run in runs.items()}
    for label, values in words.items():
        mean = {key: float(np.mean(v)) for key, v in values.items()}
        if label == "random":
            results[folder_label].update({f"random_{key}": v for key, v in mean.items()})
        else:
            results[label].update(mean)
    note = None
    if differ:
        note = (f"note: on {len(differ)} of {len(items)} images ({', '.join(differ[:3])}"
                f"{', ...' if len(differ) > 3 else ''}) the checkpoint's layer-{folder['layer']} maps differ from the "
                "folder's: was the folder made by another model?")
    return results, {k: score_items(v, ann, cache) for k, v in head_runs.items()}, note


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
    p.add_argument("--checkpoint", default=None, help="the caption model, to score every method and decoder layer "
                   "(optional)")
    p.add_argument("--vocab", default=None, help="its vocab.txt (with --checkpoint; default: BERT uncased's)")
    p.add_argument("--per-head", action="store_true", help="with --checkpoint: also a table of every layer's heads")
    p.add_argument("--faithfulness", action="store_true",
                   help="with --checkpoint: also RISE and occlusion maps, and for every row deletion and insertion "
                        "areas and the rank correlation with a randomised model's maps (slow: RISE alone is about 2 "
                        "x MASKS forward passes per image)")
    p.add_argument("--limit", type=int, default=None, help="score N images spread over the folder (default: all)")
    p.add_argument("--masks", type=int, default=1000, help="rise: random masks per image (default: 1000)")
    p.add_argument("--cells", type=int, default=8, help="rise: masks of CELLS x CELLS cells; occlusion: patches of "
                   "1/CELLS of the longer side (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks, the random rankings and the randomised "
                   "model (default: 0)")
    p.add_argument("--device", default="auto", help="device for --checkpoint: auto (cuda if available), cuda or cpu")
    p.add_argument("--json", default=None, help="also write the table's numbers here (hw3_report.py --p2-pointing)")
    p.add_argument("--mark", action="store_true", help="record each scored word of the folder's own maps (box, peak, "
                   "hit or miss) in its image's <stem>.json, and rebuild the folder's index.html if it has one (the "
                   "explorer shows them)")
    a = p.parse_args(argv)
    if a.masks < 1 or a.cells < 1:
        raise UserError(f"--masks and --cells must be at least 1, not {a.masks} and {a.cells}")
    for flag, given in (("--faithfulness", a.faithfulness), ("--per-head", a.per_head)):
        if given and not a.checkpoint:
            raise UserError(f"{flag} needs the model the maps explain: --checkpoint CKPT --vocab VOCAB (without "
                            "them only the folder's own maps are scored)")
    from hw3io import pick_device
    from explanations.pointing import legend, save, spread
    ann = read_annotations(a)
    device = pick_device(a.device) if a.checkpoint else None
    items = read_folder(a.folder)
    items = spread(items, a.limit)
    if a.captions:
        print_captions(items, a)
    heads, note = {}, None
    if a.checkpoint:
        rows, heads, note = recompute(items, ann, a.checkpoint, a.vocab, device, per_head=a.per_head,
                                      faithfulness=a.faithfulness, masks=a.masks, cells=a.cells, seed=a.seed,
                                      show_progress=True)
    else:
        rows = {row_label(folder_spec(items)) + FOLDER: score_items(items, ann)}
    folder = next(s_ for label, s_ in rows.items() if label.endswith(FOLDER))  # its baselines: every row's
    print(format_table(rows, folder))
    if heads:
        print()
        print(format_table({f"layer {k} head {h}": s_ for (k, h), s_ in heads.items()}, folder))
    print(legend(folder))
    if a.json:
        save(a.json, rows, folder, "object words")
    if a.mark:
        mark_folder(a.folder, items, ann, row_label(folder_spec(items)) + FOLDER)
    if "random_deletion" in folder:
        print("(deletion and insertion on the model's input, teacher-forced on the folder's caption: an object word's "
              "probability, the mean of its pieces' for a split word or a two-word name, ranked by the mean of their "
              "maps; every number a mean over the object words)")
    if folder["absent"]:
        print(f"({folder['absent']} generated object word(s) named no object of their image; not scored)")
    if note:
        print(note)


if __name__ == "__main__":
    sys.exit(run_cli(main))
