"""hw3io/explorer.py and the --html of both problems: the page, opened in a real headless Chromium and clicked
through, draws the saved maps where the PNGs put them, shows the pointing game as catr.pointing counted it, and
requests nothing; off by default; 50 scenes fit the size budget."""
import html
import json
import re

import numpy as np
import pytest

from catr_tiny import IMAGES
from helpers import NO_CHROMIUM, dump_dom

TINY = dict(backbone="convnet", max_dim=96, max_position_embeddings=12)  # a CATR that captions in milliseconds

# Clicks through the page as a reader would (an image, a token, a layer, a head, the arrow keys) and writes, after
# each step, what the page shows into <pre id="probe">: its state, the map canvas's pixels, and where the map, the
# photo, the boxes and the peak sit. It also tries one request, which the page's policy must block.
HOOK = r"""
const blocked = [];
document.addEventListener("securitypolicyviolation", ev => blocked.push(ev.blockedURI));
window.addEventListener("load", async () => {
  const $ = id => document.getElementById(id), out = [];
  const rect = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const snap = () => {
    const c = $("heat"), px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const st = $("status").dataset, sc = $("scale").dataset;
    out.push({scene: +st.scene, token: +st.token, layer: +st.layer, head: +st.head, mark: st.mark,
              lo: +sc.lo, step: +sc.step, size: [c.height, c.width],
              rgb: Array.from(px).filter((v, i) => i % 4 !== 3), heat: rect(c), photo: rect($("photo")),
              boxes: [...document.querySelectorAll(".box")].map(rect),
              peak: [...document.querySelectorAll(".peak")].map(rect)});
  };
  const pick = (id, v) => { $(id).value = String(v); $(id).dispatchEvent(new Event("change")); };
  const key = k => document.dispatchEvent(new KeyboardEvent("keydown", {key: k}));
  await new Promise(r => $("photo").complete ? r() : $("photo").addEventListener("load", r));
  __STEPS__
  try { await fetch("http://127.0.0.1:9/x"); } catch (e) {}
  await new Promise(r => setTimeout(r, 100));
  const s = $("summary").dataset;
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({snaps: out, blocked, summary: [+s.count, +s.strict, +s.tolerance],
                                     px: s.tolerancePx, text: $("summary").textContent,
                                     status: $("status").textContent});
  document.body.append(probe);
});
"""
CLICKS = """snap();
  pick("scene", 1); await new Promise(r => setTimeout(r, 50)); snap();
  document.querySelectorAll(".tok")[1].click(); snap();
  pick("layer", 0); snap();
  pick("head", 1); snap();
  key("ArrowRight"); snap();
  key("ArrowUp"); await new Promise(r => setTimeout(r, 50)); snap();"""
# (scene, token, layer, head) after each step of CLICKS; head 1 of 5 slots (4 heads, then the mean)
STEPS = [(0, 0, 1, 4), (1, 0, 1, 4), (1, 1, 1, 4), (1, 1, 0, 4), (1, 1, 0, 1), (1, 2, 0, 1), (0, 2, 0, 1)]


def browse(page, clicks=CLICKS):
    dom = dump_dom(page, HOOK.replace("__STEPS__", clicks))
    if dom is None:
        pytest.skip(NO_CHROMIUM)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


def jet_index(rgb: np.ndarray) -> np.ndarray:
    """Pixels (N, 3) drawn in the page's jet -> their level; the page's jet is matplotlib's (the PNGs') within
    4/255, one colour per level."""
    from matplotlib import colormaps
    from hw3io.explorer import jet_table
    table = np.array(jet_table())
    assert np.abs(table - np.round(colormaps["jet"](np.arange(256))[:, :3] * 255)).max() <= 4
    same = (rgb[:, None, :] == table[None]).all(-1)  # (N, 256)
    assert (same.sum(1) == 1).all(), "a pixel that is no jet colour"
    return same.argmax(1)


def shown_map(snap) -> np.ndarray:
    h, w = snap["size"]
    return snap["lo"] + jet_index(np.array(snap["rgb"]).reshape(-1, 3)).reshape(h, w) * snap["step"]


@pytest.fixture(scope="module")
def p2(tmp_path_factory):
    """Two images captioned by a tiny random CATR ("sheep bike sheep ...") with --all-layers --html, scored by
    catr.pointing --mark against a sheep in each image's top-left quarter and a bike in its bottom-right one; then
    the page clicked through."""
    import torch
    from catr.caption import create_model
    from catr.pipeline import caption_folder
    from catr.pointing import main
    from catr_tiny import tiny_config, tiny_model, write_images, write_vocab
    root = tmp_path_factory.mktemp("explorer")
    torch.save({"model": tiny_model(seed=3, **TINY).state_dict(), "catr_config": tiny_config(**TINY).to_dict()},
               root / "c.pth")
    images = write_images(root / "images")
    for p in images.iterdir():
        if p.name not in ("bike.jpg", "sheep.jpg"):
            p.unlink()
    out = root / "out"
    caption_folder(images, out, model=create_model(checkpoint=root / "c.pth"), vocab=write_vocab(root / "vocab.txt"),
                   all_layers=True, html=True)
    objects = {n: [{"words": ["sheep"], "box": [0, 0, w // 2, h // 2]},
                   {"words": ["bike"], "box": [w // 2, h // 2, w // 2, h // 2]}] for n, (w, h) in IMAGES.items()}
    (root / "objects.json").write_text(json.dumps(objects))
    main([str(out), "--objects", str(root / "objects.json"), "--mark", "--json", str(root / "scores.json")])
    return {"out": out, "scores": json.loads((root / "scores.json").read_text()), "seen": browse(out / "index.html")}


def test_the_page_draws_the_saved_maps_where_the_pngs_put_them(p2):
    """Every click lands (image, token, layer, head), and the canvas holds the saved map of that choice, cell by
    cell within one 8-bit step, over the whole image as hw3_2.sh's PNG places it."""
    seen, stems = p2["seen"]["snaps"], ["bike", "sheep"]
    assert [(s["scene"], s["token"], s["layer"], s["head"]) for s in seen] == STEPS
    for s in seen:
        layers = np.load(p2["out"] / f"{stems[s['scene']]}.layers.npy")  # (layers, T, heads, h, w)
        assert layers.shape[2] == 4
        saved = layers[s["layer"], s["token"]]
        saved = saved.mean(0) if s["head"] == 4 else saved[s["head"]]
        assert s["size"] == list(saved.shape)
        assert np.abs(shown_map(s) - saved).max() <= s["step"] + 1e-6
        assert s["step"] > 0 and np.allclose(s["heat"], s["photo"], atol=0.5)  # CATR's grid covers the whole image
    first = np.load(p2["out"] / "bike.npy")[0]  # the graded map: the last layer's head mean, token 0
    assert np.abs(shown_map(seen[0]) - first).max() <= seen[0]["step"] + 1e-6


def test_a_scored_folder_shows_hits_and_misses_as_catr_pointing_counted(p2):
    folder = p2["scores"]["rows"]["attention, layer -1 (hw3_2.sh's maps)"]
    count, strict, tolerance = p2["seen"]["summary"]
    assert count == folder["count"] > 0 and strict == round(folder["maps"] * count)
    assert 0 < strict < count  # both hits and misses are there to show
    marks = {stem: json.loads((p2["out"] / f"{stem}.json").read_text())["pointing"] for stem in ("bike", "sheep")}
    assert tolerance == sum(m["tolerance"] for found in marks.values() for m in found)
    assert p2["seen"]["px"] == "15" and f"within 15 px: {tolerance} of {count} words (pooled" in p2["seen"]["text"]
    for s in p2["seen"]["snaps"]:
        mark = next((m for m in marks[["bike", "sheep"][s["scene"]]] if s["token"] in m["tokens"]), None)
        assert s["mark"] == ("" if mark is None else "hit" if mark["strict"] else "miss")
        assert len(s["boxes"]) == (0 if mark is None else 1)
        if mark is not None:  # the box sits where catr.pointing had the object: sheep top-left, bike bottom-right
            (x0, y0, x1, y1), (px0, py0, px1, py1) = s["boxes"][0], s["photo"]
            cx, cy = ((x0 + x1) / 2 - px0) / (px1 - px0), ((y0 + y1) / 2 - py0) / (py1 - py0)
            assert (cx < 0.5 and cy < 0.5) if mark["class"] == "sheep" else (cx > 0.5 and cy > 0.5)


def test_the_page_requests_nothing(p2):
    page = (p2["out"] / "index.html").read_text()
    assert "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert p2["seen"]["blocked"] == ["http://127.0.0.1:9/x"]  # the policy is in force: a request is refused


def test_p1_explorer_places_the_map_on_the_view(tiny_checkpoint, tmp_path):
    """p1_visualize_attn.py --html --all-layers --heads: the map sits on the part of the original the model's view
    shows (vitpet.pointing.view_region), and holds the saved per-head map."""
    from PIL import Image
    from vitpet.explain import load_explained_model, visualize_attention
    from vitpet.pointing import view_region
    rng = np.random.default_rng(0)
    img = tmp_path / "26_1.jpg"
    Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(img)
    visualize_attention([img], tmp_path / "attn", checkpoint=tiny_checkpoint, heads=True, all_layers=True, html=True)
    s = browse(tmp_path / "attn" / "index.html", "snap();")["snaps"][0]
    x0, y0, x1, y1 = view_region(load_explained_model(tiny_checkpoint)[1], (160, 90))
    assert x1 - x0 < 160  # the centre crop: a part of the image
    (a, b, c, d), (px0, py0, px1, py1) = s["heat"], s["photo"]
    sx, sy = (px1 - px0) / 160, (py1 - py0) / 90
    assert np.allclose([a, b, c, d], [px0 + round(x0) * sx, py0 + round(y0) * sy, px0 + round(x1) * sx,
                                      py0 + round(y1) * sy], atol=1)
    layers = np.load(tmp_path / "attn" / "26_1.layers.npy")  # (layers, heads, gh, gw)
    last = layers[-1].mean(0) if s["head"] == layers.shape[1] else layers[-1, s["head"]]
    assert np.abs(shown_map(s) - last).max() <= s["step"] + 1e-6


def test_html_is_off_by_default(tmp_path, monkeypatch):
    """hw3_2.sh's output stays what it was: no page, no extra maps, the JSON as before; $CATR_HTML=1 opts in."""
    import p2_caption_attn
    from catr.pipeline import caption_folder
    from catr_tiny import tiny_model, write_images, write_vocab
    from helpers import ROOT
    monkeypatch.delenv("CATR_HTML", raising=False)
    a = p2_caption_attn.parse_args(["--images", "x", "--output-dir", "y"])
    assert not a.html and not a.all_layers
    monkeypatch.setenv("CATR_HTML", "1")
    a = p2_caption_attn.parse_args(["--images", "x", "--output-dir", "y"])
    assert a.html and a.all_layers
    assert "--html" not in (ROOT / "hw3_2.sh").read_text()
    images = write_images(tmp_path / "images")
    for p in images.iterdir():
        if p.name != "ski.jpg":
            p.unlink()
    caption_folder(images, tmp_path / "out", model=tiny_model(**TINY), vocab=write_vocab(tmp_path / "vocab.txt"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ski.json", "ski.npy", "ski.png", "ski.txt"]
    assert set(json.loads((tmp_path / "out" / "ski.json").read_text())) == {
        "caption", "tokens", "grid", "size", "layer", "image", "method"}


def coco_pages(grid, tokens, scenes=50) -> int:
    """Bytes of a page of ``scenes`` COCO-shaped scenes (a 640 x 480 photo) with CATR v3's 6 layers x 8 heads and
    ``tokens`` tokens of random maps on a ``grid`` (H', W')."""
    from PIL import Image
    from hw3io.explorer import jpeg_uri, method_entry, page
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 640)[None, :, None] * np.ones((480, 1, 3))
    photo = Image.fromarray(np.clip(gradient + rng.normal(0, 20, (480, 640, 3)), 0, 255).astype(np.uint8))
    scene = {"name": "x.jpg", "stem": "x", "caption": "", "tokens": ["w"] * tokens, "grid": list(grid),
             "image": jpeg_uri(photo), "region": [0, 0, 1, 1], "layer": 5, "marks": [], "scored": "",
             "methods": {"attention": method_entry(rng.random((6, tokens, 8, *grid)),
                                                   [f"layer {k}" for k in range(6)], per_head=True)}}
    return len(page([scene] * scenes, "fifty").encode())


def test_fifty_scenes_fit_the_size_budget():
    """The numbers docs/explorer.md and hw3io/explorer.py quote: CATR resizes a 640 x 480 image to 299 x 224 and
    its ResNet (stride 16, last stage dilated) gives a 14 x 19 grid; 50 such scenes with 14 tokens make about 15 MB,
    under 20 MB; square images (19 x 19) with 15 tokens pass 20 MB."""
    import torch
    from catr.backbone import Backbone
    from catr.preprocess import resized_shape
    w, h = resized_shape((640, 480))
    assert (w, h) == (299, 224)
    with torch.no_grad():  # resnet50: resnet101's strides and dilation, half the layers to build
        grid = Backbone("resnet50").eval()(torch.zeros(1, 3, h, w), torch.zeros(1, h, w, dtype=torch.bool))[0]
    assert tuple(grid.shape[-2:]) == (14, 19)
    assert 14.5e6 < coco_pages((14, 19), 14) < 15.5e6
    assert 20e6 < coco_pages((19, 19), 15) < 22e6


def test_the_report_links_an_explorer_rebuilt_from_the_folder(p2, tmp_path):
    """The report writes the page from the folder's current outputs into its figures folder (the link survives
    moving the report; a page left in the folder by an earlier run is not trusted) and links it; a folder whose
    JSONs lack every layer's maps (hw3_2.sh re-run without $CATR_HTML) gets no explorer, even with an old page."""
    import shutil
    from report.build import section_p2
    from report.render import to_html, to_markdown
    out = tmp_path / "out"
    shutil.copytree(p2["out"], out)
    (out / "index.html").write_text("a stale page")
    figs = tmp_path / "report" / "figures"
    blocks = section_p2(out, None, figs)
    page = figs / "p2_explorer.html"
    assert scene_names(page) == ["bike", "sheep"] and ("link", page) in [b[:2] for b in blocks]
    assert "](figures/p2_explorer.html)" in to_markdown(blocks, tmp_path / "report")
    assert '<a href="figures/p2_explorer.html">' in to_html(blocks, "t", tmp_path / "report")
    for meta_path in out.glob("*.json"):  # as hw3_2.sh writes them without $CATR_HTML
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("layers_axes", "pointing")}))
    blocks = section_p2(out, None, figs)
    assert not page.exists() and not [b for b in blocks if b[0] == "link" or "explorer" in str(b[1])]


def test_a_link_block_escapes_its_text():
    from pathlib import Path
    from report.render import to_html, to_markdown
    block = [("link", Path("/r/figures/a b.html"), "x*[y]_<b>&")]
    assert to_markdown(block, Path("/r")).strip() == r"[x\*\[y\]\_\<b\>&](figures/a%20b.html)"
    assert '<p><a href="figures/a%20b.html">x*[y]_&lt;b&gt;&amp;</a></p>' in to_html(block, "t", Path("/r"))


def hand_folder(folder, stem="x", tokens=("a", "b"), caption="a b", extra=None):
    """A folder as p2_caption_attn.py --html leaves it, written by hand: a 40 x 30 image, its (T, 3, 4) maps and
    its JSON (``extra`` merged in)."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{stem}.png"
    Image.new("RGB", (40, 30), (90, 120, 150)).save(image)
    np.save(folder / f"{stem}.npy", np.random.default_rng(0).random((len(tokens), 3, 4), dtype=np.float32))
    meta = {"image": str(image), "tokens": list(tokens), "caption": caption, "method": "attention", "layer": -1,
            **(extra or {})}
    (folder / f"{stem}.json").write_text(json.dumps(meta))
    return folder


def embedded(text: str) -> str:
    """The page's JSON, as written."""
    return re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S).group(1)


HOSTILE = "<img src=x onerror=window.pwned=1><!--<script>"  # an element, and a way to make <script> swallow the page
INJECTION_PROBE = """const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({pwned: !!window.pwned, title: document.title,
    h1: document.querySelector("h1").textContent, caption: document.getElementById("caption").textContent,
    name: document.getElementById("scene").options[0].textContent,
    tags: [...document.querySelectorAll("body *")].map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : ""))});
  document.body.append(probe);"""


def test_hostile_names_captions_and_titles_show_as_text(tmp_path):
    """A title holding the data placeholder, a file name and a caption holding markup: every one shows literally,
    and the page creates no element of its own making (the JSON escapes <, > and &; the title is escaped and
    substituted in the same pass as the data)."""
    from hw3io.explorer import page, write_explorer
    folder = hand_folder(tmp_path / "out", stem="a<b>&c", tokens=["<b>x</b>", HOSTILE], caption=HOSTILE)
    title = "__DATA__ <i>t</i> & __TITLE__"
    written = write_explorer(folder, title)
    assert not set("<>&\u2028\u2029") & set(embedded(written.read_text()) + embedded(page([], "\u2028\u2029")))
    hook = 'window.addEventListener("load", () => { ' + INJECTION_PROBE + " });"
    dom = dump_dom(written, hook)
    if dom is None:
        pytest.skip(NO_CHROMIUM)
    seen = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    assert not seen["pwned"]
    assert seen["title"] == seen["h1"] == title
    assert seen["name"] == "a<b>&c.png" and seen["caption"].endswith(f"({HOSTILE})")
    made = [t for t in seen["tags"] if t.split("#")[0] in ("img", "b", "i", "script")]
    assert made == ["img#photo", "script#data", "script", "script"], seen["tags"]  # the page's, then the probe's


def scene_names(index) -> list[str]:
    return [s["stem"] for s in json.loads(embedded(index.read_text()))["scenes"]]


def test_html_shows_the_images_of_this_run_only(tmp_path):
    """A results file saved in the output folder and the maps of an earlier run's other image neither stop --html
    nor show up: the page holds the images the run wrote."""
    from catr.pipeline import caption_folder
    from catr_tiny import tiny_model, write_images, write_vocab
    out = hand_folder(tmp_path / "out", stem="earlier")
    (out / "scores.json").write_text(json.dumps({"rows": {}, "what": "object words"}))
    images = write_images(tmp_path / "images")
    for p in images.iterdir():
        if p.name != "ski.jpg":
            p.unlink()
    caption_folder(images, out, model=tiny_model(**TINY), vocab=write_vocab(tmp_path / "vocab.txt"), html=True)
    assert scene_names(out / "index.html") == ["ski"]


def test_the_explorer_cli_skips_json_that_is_not_its_own(tmp_path):
    """``python3 -m hw3io.explorer FOLDER`` reads every map description there and says which JSON it skipped."""
    from helpers import run
    out = hand_folder(tmp_path / "out", stem="x")
    (out / "scores.json").write_text(json.dumps({"rows": {}}))
    (out / "broken.json").write_text("{")
    proc = run(["python3", "-m", "hw3io.explorer", str(out)])
    assert proc.returncode == 0, proc.stderr
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("warning: skipped")]
    assert len(warnings) == 2 and "broken.json" in warnings[0] and "scores.json" in warnings[1], proc.stderr
    assert scene_names(out / "index.html") == ["x"]


def test_a_truncated_map_file_is_one_error_line(tmp_path):
    from helpers import assert_one_line_error, run
    out = hand_folder(tmp_path / "out", stem="x")
    npy = out / "x.npy"
    npy.write_bytes(npy.read_bytes()[:-20])
    assert_one_line_error(run(["python3", "-m", "hw3io.explorer", str(out)]), str(npy))


@pytest.mark.parametrize("damage", ["object array", "mark without peak", "box of 3", "tokens as text"])
def test_damaged_maps_and_marks_name_their_file(tmp_path, damage):
    from hw3io import UserError
    from hw3io.explorer import write_explorer
    mark = {"tokens": [0], "class": "sheep", "boxes": [[0, 0, 10, 10]], "peak": [3.0, 4.0], "strict": True,
            "tolerance": True}
    bad = {"mark without peak": {k: v for k, v in mark.items() if k != "peak"},
           "box of 3": dict(mark, boxes=[[0, 0, 10]]), "tokens as text": dict(mark, tokens="0")}.get(damage)
    out = hand_folder(tmp_path / "out", stem="x", extra={"pointing": [mark] + ([bad] if bad else [])})
    if damage == "object array":
        np.save(out / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match=re.escape(str(out / ("x.npy" if damage == "object array" else "x.json")))):
        write_explorer(out)


def test_catr_html_keeps_every_explain_method_working(tmp_path, monkeypatch):
    """$CATR_HTML=1 with --explain occlusion: the page, without the attention-only --all-layers it turns on for
    attention."""
    import torch
    import p2_caption_attn
    from catr_tiny import tiny_config, tiny_model, write_images, write_vocab
    torch.save({"model": tiny_model(**TINY).state_dict(), "catr_config": tiny_config(**TINY).to_dict()},
               tmp_path / "c.pth")
    images = write_images(tmp_path / "images")
    for p in images.iterdir():
        if p.name != "ski.jpg":
            p.unlink()
    monkeypatch.setenv("CATR_HTML", "1")
    out = tmp_path / "out"
    assert p2_caption_attn.main(["--images", str(images), "--output-dir", str(out), "--checkpoint",
                                 str(tmp_path / "c.pth"), "--vocab", str(write_vocab(tmp_path / "vocab.txt")),
                                 "--explain", "occlusion", "--cells", "2", "--device", "cpu"]) is None
    assert scene_names(out / "index.html") == ["ski"] and not (out / "ski.layers.npy").exists()


def test_the_tolerance_shown_is_the_one_recorded(tmp_path):
    """The page names the tolerance catr.pointing recorded with the marks, not a number of its own."""
    from hw3io.explorer import write_explorer
    mark = {"tokens": [0], "class": "sheep", "boxes": [[0, 0, 10, 10]], "peak": [30.0, 20.0], "strict": False,
            "tolerance": True, "tolerance_px": 25}
    out = hand_folder(tmp_path / "out", extra={"pointing": [mark], "scored": "attention"})
    seen = browse(write_explorer(out), "snap();")
    assert seen["px"] == "25" and "within 25 px: 1 of 1 words (pooled" in seen["text"]
    assert seen["status"].endswith("MISS the object (within 25 px)")
