"""One self-contained ``index.html`` per output folder to browse what the models look at: pick an image, a token, a
layer, a head (or their mean) and a method; the saved map is drawn over the image with its jet scale, and where
the folder was scored (``python3 -m catr.pointing FOLDER ... --mark``) the object's box, the peak and hit or miss.

``python3 -m hw3io.explorer FOLDER`` rebuilds the page of a folder (``p2_caption_attn.py --html`` and
``p1_visualize_attn.py --html`` write it as they finish). What it reads, per image: ``<stem>.json`` (source image,
tokens, caption, grid, layer, method; ``region``: the rectangle of the original image the map grid covers, written by
the Python code that places the maps, the whole image when absent as for CATR, whose model sees all of it resized and
unpadded; ``pointing``: the marks), ``<stem>.npy`` (the PNG's maps) and, when saved with ``--all-layers``,
``<stem>.layers.npy`` (every layer, every head). ``axes`` / ``layers_axes`` in the JSON name the arrays' axes
(l layer, t token, k head, h w grid); without them the layout is hw3_2.sh's, (T, H', W') or (T, heads, H', W').

Nothing is fetched: the data, script and style are inline, and a Content-Security-Policy of ``default-src 'none'``
forbids any request. To stay small (50 COCO-shaped images, 14 x 19 cells in CATR, x 6 layers x 9 head slots x 14
tokens make about 15 MB: tests/test_explorer.py::test_fifty_scenes_fit_the_size_budget) every map is stored as 8
bits per cell with its own minimum and step (value = lo + q * step, so q is also the jet colour index: each map
spans the full scale, as imshow scales each PNG tile), and every image as a JPEG at most
``IMAGE_SIDE`` pixels on its longer side. The page draws the cell grid, one canvas pixel per cell, stretched over the
region by CSS: nearest-neighbour cells by default; "smooth" lets the browser interpolate bilinearly with half-pixel
centres, the sampling of ``hw3io.maps.upsample`` (``align_corners=False``), though between colours rather than
between values as the PNG does.
"""
import argparse
import base64
import html
import io
import json
import re
import sys
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .errors import UserError, brief, run_cli
from .jsonfile import read_json
from .maps import pixel_region

IMAGE_SIDE = 384     # longer side of the embedded JPEGs, in pixels
JPEG_QUALITY = 80
PAGE = "index.html"


def jet_table() -> list[list[int]]:
    """matplotlib's jet as 256 RGB triples, the colours of the PNGs, each colour naming one level: in 8 bits jet
    repeats pure blue five times (levels 28-32), so the repeats get red 1/255 to 4/255 (invisible), and a pixel
    read back from the page tells its map's value."""
    from matplotlib import colormaps
    table, seen = [], set()
    for rgb in np.round(colormaps["jet"](np.arange(256))[:, :3] * 255).astype(int).tolist():
        while tuple(rgb) in seen:
            rgb[0] += 1
        seen.add(tuple(rgb))
        table.append(rgb)
    return table


def quantise(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., h, w) float maps -> 8-bit cells (..., h, w), lo (...) and step (...) float32: value = lo + q * step,
    within half a step of the map. A constant map has step 0."""
    maps = np.asarray(maps, np.float32)
    lo = maps.min(axis=(-2, -1))
    step = (maps.max(axis=(-2, -1)) - lo) / 255
    safe = np.where(step > 0, step, 1)[..., None, None]
    cells = np.clip(np.round((maps - lo[..., None, None]) / safe), 0, 255).astype(np.uint8)
    return cells, lo.astype(np.float32), step.astype(np.float32)


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def jpeg_uri(image) -> str:
    """A PIL image as a downscaled JPEG data URI (``IMAGE_SIDE``)."""
    small = image.copy()
    small.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    buf = io.BytesIO()
    small.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_ltkhw(array: np.ndarray, axes: str) -> np.ndarray:
    """An array whose axes are named by ``axes`` (letters of l, t, k, h, w) -> (L, T, K, h, w), missing axes of
    size 1."""
    if len(axes) != array.ndim or not set(axes) <= set("ltkhw") or len(set(axes)) != len(axes):
        raise UserError(f"axes {axes!r} do not name the axes of an array of shape {array.shape}")
    for name in "ltkhw":
        if name not in axes:
            array, axes = array[None], name + axes
    return np.transpose(array, [axes.index(a) for a in "ltkhw"])


def method_entry(maps: np.ndarray, layers: list[str], per_head: bool) -> dict:
    """(L, T, K, h, w) maps -> the page's record: head slots are the K heads then their mean (``per_head``), or the
    one map saved."""
    if per_head:
        maps = np.concatenate([maps, maps.mean(2, keepdims=True)], axis=2)
    slots = [f"head {k}" for k in range(maps.shape[2] - 1)] + ["mean"] if per_head else ["mean"]
    cells, lo, step = quantise(np.transpose(maps, (0, 2, 1, 3, 4)))  # (L, slots, T, h, w): one map per (l, s, t)
    return {"layers": layers, "heads": slots, "cells": b64(cells), "lo": b64(lo.astype("<f4")),
            "step": b64(step.astype("<f4"))}


def fractions(box, size) -> list[float]:
    """(x0, y0, x1, y1) in pixels of a (W, H) image -> fractions of its width and height, for CSS."""
    w, h = size
    return [box[0] / w, box[1] / h, box[2] / w, box[3] / h]


def describes_maps(meta, meta_path: Path) -> bool:
    """Whether a parsed ``<stem>.json`` is one this tool reads: the image, one label per map, and the maps."""
    return (isinstance(meta, dict) and isinstance(meta.get("image"), str) and bool(meta["image"])
            and isinstance(meta.get("tokens"), list) and meta_path.with_suffix(".npy").is_file())


def load_maps(path: Path) -> np.ndarray:
    """A saved map array; a truncated file, a pickled (object) array or one of non-numbers is one error line."""
    try:
        array = np.load(path)  # allow_pickle=False: an object array raises rather than running a pickle
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{path} is not a readable map array ({brief(e)}): write the folder again") from None
    if array.dtype.kind not in "fiu":
        raise UserError(f"{path} holds {array.dtype} values, not maps: write the folder again")
    return array


def read_marks(meta: dict, meta_path: Path, size) -> list[dict]:
    """The ``pointing`` marks of ``catr.pointing --mark``, boxes and peaks as fractions of the (W, H) image."""
    def numbers(values, n):
        if not isinstance(values, list) or len(values) != n or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{values!r} is not {n} numbers")
        return values
    marks = meta.get("pointing", [])
    try:
        if not isinstance(marks, list):
            raise ValueError("not a list")
        out = []
        for m in marks:
            if not isinstance(m, dict) or not isinstance(m.get("class"), str) or not all(
                    isinstance(m.get(k), bool) for k in ("strict", "tolerance")):
                raise ValueError(f"{m!r} lacks class, strict or tolerance")
            if not isinstance(m.get("tokens"), list) or not all(isinstance(t, int) for t in m["tokens"]):
                raise ValueError(f"tokens {m.get('tokens')!r} are not token indices")
            if "tolerance_px" in m:
                numbers([m["tolerance_px"]], 1)
            if not isinstance(m.get("boxes"), list):
                raise ValueError(f"boxes {m.get('boxes')!r} are not a list")
            peak = numbers(m.get("peak"), 2)
            out.append(dict(m, boxes=[fractions(numbers(b, 4), size) for b in m["boxes"]],
                            peak=[peak[0] / size[0], peak[1] / size[1]]))
        return out
    except ValueError as e:
        raise UserError(f"{meta_path}: a malformed pointing mark ({brief(e, 100)}); run python3 -m catr.pointing "
                        f"... --mark again") from None


def read_scene(meta_path: Path, meta=None) -> dict:
    """One image of a folder (its ``<stem>.json``, ``.npy``, maybe ``.layers.npy``) -> the page's record."""
    from .images import load_partial_rgb, load_rgb
    meta = read_json(meta_path, "map description") if meta is None else meta
    npy = meta_path.with_suffix(".npy")
    if not describes_maps(meta, meta_path):
        raise UserError(f"{meta_path} does not describe saved maps (needs tokens, image and {npy.name})")
    try:
        image = load_rgb(meta["image"])
    except UserError:  # a truncated image was captioned from the part that decodes: show that part
        image = load_partial_rgb(meta["image"])
    size = image.size
    saved = load_maps(npy)
    method = meta.get("method", "attention")
    layer = meta.get("layer")
    layers_npy = meta_path.with_name(meta_path.stem + ".layers.npy")
    if "layers_axes" in meta and layers_npy.is_file():  # the JSON says so: a stale file of an earlier run is not read
        maps = to_ltkhw(load_maps(layers_npy), meta["layers_axes"])
        labels = [f"layer {k}" for k in range(len(maps))]
        default = (layer if layer is not None else -1) % len(maps)
    else:
        maps = to_ltkhw(saved, meta.get("axes", "tkhw" if saved.ndim == 4 else "thw"))
        labels = [f"layer {layer}" if layer is not None else "all layers"]
        default = 0
    if maps.shape[1] != len(meta["tokens"]):
        raise UserError(f"{npy} holds {maps.shape[1]} maps for {len(meta['tokens'])} tokens")
    region = pixel_region(meta.get("region") or (0, 0, *size))  # as hw3io.maps.place puts the map there
    marks = read_marks(meta, meta_path, size)
    return {"name": Path(meta["image"]).name, "stem": meta_path.stem, "caption": meta.get("caption", ""),
            "tokens": meta["tokens"], "grid": list(maps.shape[-2:]), "image": jpeg_uri(image),
            "region": fractions(region, size), "layer": default, "marks": marks, "scored": meta.get("scored", ""),
            "methods": {method: method_entry(maps, labels, per_head=maps.shape[2] > 1)}}


def folder_scenes(folder, stems=None) -> list[dict]:
    """The page's records of ``stems`` (the images a run just wrote, in order); without them every ``<stem>.json``
    of the folder that describes saved maps, any other JSON (a results file saved there) skipped with a warning."""
    folder = Path(folder)
    if stems is not None:
        return [read_scene(folder / f"{stem}.json") for stem in stems]
    scenes = []
    for path in sorted(folder.glob("*.json")):
        try:
            meta = read_json(path, "JSON file")
        except UserError as e:
            meta = e
        if isinstance(meta, UserError) or not describes_maps(meta, path):
            print(f"warning: skipped {path}: not a description of saved maps (<stem>.json with tokens and image, "
                  f"beside <stem>.npy)", file=sys.stderr)
            continue
        scenes.append(read_scene(path, meta))
    if not scenes:
        raise UserError(f"no saved maps (<stem>.json with <stem>.npy) in {folder}")
    return scenes


# Inside <script>, "</script" ends the element and "<!--" with "<script" changes how the parser looks for the end:
# no <, > or & may reach it raw. \u escapes are the same JSON; U+2028/U+2029 break older JavaScript parsers.
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def page(scenes: list[dict], title: str) -> str:
    data = json.dumps({"title": title, "jet": jet_table(), "scenes": scenes}, separators=(",", ":"))
    data = re.sub("[<>&\u2028\u2029]", lambda m: JSON_ESCAPES[m.group()], data)
    # One pass: a title holding "__DATA__" stays text
    fill = {"__TITLE__": html.escape(title), "__DATA__": data}
    return re.sub("__TITLE__|__DATA__", lambda m: fill[m.group()], TEMPLATE)


def write_explorer(folder, title: str | None = None, stems=None, path=None) -> Path:
    """``FOLDER/index.html`` (or ``path``) from the maps saved in ``folder``: of ``stems``, or of every JSON there
    that describes saved maps (``folder_scenes``)."""
    folder = Path(folder)
    path = Path(path) if path is not None else folder / PAGE
    atomic_write_text(path, page(folder_scenes(folder, stems), title or f"What the model looks at: {folder.name}"))
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a folder written by p2_caption_attn.py / hw3_2.sh or p1_visualize_attn.py --html")
    p.add_argument("--title", default=None, help="the page's title (default: the folder's name)")
    a = p.parse_args(argv)
    print(write_explorer(a.folder, a.title))


TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>__TITLE__</title>
<style>
body{font:14px system-ui,sans-serif;margin:1em;color:#222}
#controls label{margin-right:1em}
#view{position:relative;display:inline-block;overflow:hidden;line-height:0;margin-top:.6em}
#photo{display:block;max-width:min(90vw,640px);max-height:70vh}
#heat{position:absolute;opacity:.5;image-rendering:pixelated}
#heat.smooth{image-rendering:auto}
.box{position:absolute;border:2px solid #fff;outline:1px solid #000;box-sizing:border-box}
.peak{position:absolute;width:10px;height:10px;margin:-5px 0 0 -5px;border-radius:50%;background:#fff;
 border:2px solid #000;box-sizing:border-box}
#caption{margin:.6em 0;font-size:16px}
.tok{cursor:pointer;padding:1px 3px;border-radius:3px}
.tok.on{background:#222;color:#fff}
.tok.hit{border-bottom:3px solid #2a2}.tok.miss{border-bottom:3px solid #d22}
#scale{display:flex;align-items:center;gap:.5em;margin-top:.4em}
#bar{width:240px;height:14px;image-rendering:auto}
#note{color:#555;max-width:60em}
</style></head>
<body>
<h1 style="font-size:18px">__TITLE__</h1>
<p id="summary"></p>
<div id="controls">
<label>image <select id="scene"></select></label>
<label>method <select id="method"></select></label>
<label>layer <select id="layer"></select></label>
<label>head <select id="head"></select></label>
<label><input type="checkbox" id="smooth"> smooth</label>
<label>opacity <input type="range" id="opacity" min="0" max="1" step="0.05" value="0.5"></label>
</div>
<div id="caption"></div>
<div id="view"><img id="photo" alt=""><canvas id="heat"></canvas></div>
<div id="scale"><span id="lo"></span><canvas id="bar" width="256" height="1"></canvas><span id="hi"></span></div>
<p id="status"></p>
<p id="note">Keys: left/right step through the tokens, up/down through the images. The map is the saved one, 8 bits
per cell (each map spans the whole jet scale, as each PNG tile does), drawn cell by cell over the part of the image
its grid covers; "smooth" interpolates the cells bilinearly (half-pixel centres, like the PNG's upsampling, but
between colours). Images are downscaled JPEGs. Boxes and peaks: the pointing game as catr.pointing scored the
folder's own maps.</p>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const $ = id => document.getElementById(id);
const st = {scene: 0, token: 0, method: null, layer: -1, head: -1};  // -1: the scene's own layer, the head mean
const cache = {};

function bytes(text) {
  const raw = atob(text), out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
function decoded(scene, method) {
  const key = scene + "/" + method;
  if (!cache[key]) {
    const e = D.scenes[scene].methods[method];
    cache[key] = {cells: bytes(e.cells), lo: new Float32Array(bytes(e.lo).buffer),
                  step: new Float32Array(bytes(e.step).buffer)};
  }
  return cache[key];
}
function fill(select, labels, chosen) {
  select.replaceChildren(...labels.map((l, i) => new Option(l, i)));
  select.value = String(chosen);
}
function place(el, f) {  // f: fractions of the image, written by the Python code that places the maps
  el.style.left = 100 * f[0] + "%"; el.style.top = 100 * f[1] + "%";
  el.style.width = 100 * (f[2] - f[0]) + "%"; el.style.height = 100 * (f[3] - f[1]) + "%";
}
function markOf(s, t) { return s.marks.find(m => m.tokens.includes(t)); }

function showScene() {
  const s = D.scenes[st.scene], methods = Object.keys(s.methods);
  if (!methods.includes(st.method)) st.method = methods[0];
  const e = s.methods[st.method];
  st.token = Math.min(st.token, s.tokens.length - 1);
  if (st.layer < 0 || st.layer >= e.layers.length) st.layer = s.layer;
  if (st.head < 0 || st.head >= e.heads.length) st.head = e.heads.length - 1;
  $("scene").value = String(st.scene);
  fill($("method"), methods, methods.indexOf(st.method));
  fill($("layer"), e.layers, st.layer);
  fill($("head"), e.heads, st.head);
  $("photo").src = s.image;
  place($("heat"), s.region);
  draw();
}
function draw() {
  const s = D.scenes[st.scene], e = s.methods[st.method], dec = decoded(st.scene, st.method);
  const [gh, gw] = s.grid, n = gh * gw, T = s.tokens.length;
  const idx = (st.layer * e.heads.length + st.head) * T + st.token;
  const q = dec.cells.subarray(idx * n, (idx + 1) * n);
  const canvas = $("heat"), img = new ImageData(gw, gh);
  for (let i = 0; i < n; i++) {
    const c = D.jet[q[i]];
    img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
  }
  canvas.width = gw; canvas.height = gh;
  canvas.getContext("2d").putImageData(img, 0, 0);
  const lo = dec.lo[idx], hi = lo + 255 * dec.step[idx];
  $("lo").textContent = lo.toPrecision(3); $("hi").textContent = hi.toPrecision(3);
  $("scale").dataset.lo = lo; $("scale").dataset.step = dec.step[idx];
  $("caption").replaceChildren(...s.tokens.map((t, i) => {
    const span = document.createElement("span"), m = markOf(s, i);
    span.className = "tok" + (i === st.token ? " on" : "") + (m ? (m.strict ? " hit" : " miss") : "");
    span.textContent = t; span.dataset.i = i;
    span.onclick = () => { st.token = i; draw(); };
    return span;
  }), document.createTextNode("  (" + s.caption + ")"));
  document.querySelectorAll(".box,.peak").forEach(el => el.remove());
  const m = markOf(s, st.token);
  let text = s.name + ": token " + (st.token + 1) + "/" + T + " '" + s.tokens[st.token] + "', " +
             e.layers[st.layer] + ", " + e.heads[st.head] + ", " + st.method;
  if (m) {
    for (const b of m.boxes) { const el = document.createElement("div"); el.className = "box"; place(el, b);
                               $("view").append(el); }
    const p = document.createElement("div"); p.className = "peak";
    p.style.left = 100 * m.peak[0] + "%"; p.style.top = 100 * m.peak[1] + "%"; $("view").append(p);
    text += " | '" + m.class + "': peak of the scored map (" + s.scored + ") " + (m.strict ? "HIT" : "MISS") +
            " the object (" + (m.tolerance ? "within " : "not within ") + within(m.tolerance_px) + ")";
  }
  const status = $("status");
  status.textContent = text;
  Object.assign(status.dataset, {scene: st.scene, token: st.token, layer: st.layer, head: st.head,
                                 method: st.method, mark: m ? (m.strict ? "hit" : "miss") : ""});
}

function within(px) { return px == null ? "the tolerance" : px + " px"; }  // px: catr.pointing's, recorded
function summary() {
  const marks = D.scenes.flatMap(s => s.marks), hits = marks.filter(m => m.strict).length;
  const near = marks.filter(m => m.tolerance).length, el = $("summary");
  const px = [...new Set(marks.map(m => m.tolerance_px))], n = marks.length;
  el.dataset.count = n; el.dataset.strict = hits; el.dataset.tolerance = near;
  el.dataset.tolerancePx = px.length === 1 && px[0] != null ? px[0] : "";
  // Strict hits are pooled over the words, as catr.pointing's strict column; its tolerance column is a mean over
  // the classes, so the page's pooled count is labelled as such rather than passed off as the table's number.
  el.textContent = n ? "Pointing game (catr.pointing, the folder's maps): strict hits " + hits + " of " + n +
    " object words (as catr.pointing's strict column); within " + (px.length === 1 ? within(px[0]) :
    "the tolerance") + ": " + near + " of " + n + " words (pooled; catr.pointing's table averages per class)." :
    "Not scored (catr.pointing --mark).";
}

fill($("scene"), D.scenes.map(s => s.name), 0);
const bar = $("bar").getContext("2d"), row = new ImageData(256, 1);
D.jet.forEach((c, i) => row.data.set([c[0], c[1], c[2], 255], 4 * i));
bar.putImageData(row, 0, 0);
$("scene").onchange = ev => { st.scene = +ev.target.value; showScene(); };
$("method").onchange = ev => { st.method = Object.keys(D.scenes[st.scene].methods)[+ev.target.value]; showScene(); };
$("layer").onchange = ev => { st.layer = +ev.target.value; draw(); };
$("head").onchange = ev => { st.head = +ev.target.value; draw(); };
$("smooth").onchange = ev => $("heat").classList.toggle("smooth", ev.target.checked);
$("opacity").oninput = ev => { $("heat").style.opacity = ev.target.value; };
document.addEventListener("keydown", ev => {
  const T = D.scenes[st.scene].tokens.length, N = D.scenes.length;
  const moves = {ArrowLeft: () => st.token = Math.max(st.token - 1, 0),
                 ArrowRight: () => st.token = Math.min(st.token + 1, T - 1),
                 ArrowUp: () => st.scene = Math.max(st.scene - 1, 0),
                 ArrowDown: () => st.scene = Math.min(st.scene + 1, N - 1)};
  if (!moves[ev.key]) return;
  ev.preventDefault(); moves[ev.key]();
  ev.key.startsWith("ArrowL") || ev.key.startsWith("ArrowR") ? draw() : showScene();
});
summary();
showScene();
</script>
</body></html>
"""

if __name__ == "__main__":
    sys.exit(run_cli(main))
