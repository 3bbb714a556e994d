"""The pointing game: explanations.pointing's scoring (strict, TorchRay's tolerance, mass in box), explanations.targets' masks
on the original image as displayed (EXIF orientation) and vitpet.pointing's placement of the view's maps on the
original image."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from helpers import assert_one_line_error, run
from hw3io import load_rgb
from explanations.pointing import box_fraction, box_mask, near, peak, play, score
from explanations.targets import target_mask
from vitpet.data import build_view_transform
from vitpet.model import build_model, resolve_model_data_config
from vitpet.pointing import place_on_original, score_maps, view_geometry, view_region


def test_planted_maps_always_hit_and_noise_scores_the_box_area():
    rng = np.random.default_rng(0)
    heats, boxes = [], []
    for _ in range(400):
        h, w = rng.integers(20, 60, 2)
        x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        box = (x0, y0, x0 + rng.integers(3, w // 2), y0 + rng.integers(3, h // 2))
        heat = rng.random((h, w)) * 0.1
        heat[(box[1] + box[3]) // 2, (box[0] + box[2]) // 2] = 1.0
        heats.append(heat)
        boxes.append(box)
    good = score(heats, boxes)
    assert good["maps"] == 1.0 and good["tolerance"] == 1.0
    noise = score([rng.random(h.shape) for h in heats], boxes)
    expected = np.mean([box_fraction(b, (h.shape[1], h.shape[0])) for h, b in zip(heats, boxes)])
    assert noise["random"] == pytest.approx(expected)
    assert abs(noise["maps"] - expected) < 0.06  # uniform noise points like a random point
    assert abs(noise["mass"] - expected) < 0.01  # ... and spreads its mass like a uniform map
    uniform = score([np.ones(h.shape) for h in heats], boxes)
    assert uniform["mass"] == pytest.approx(expected) and uniform["uniform_mass"] == pytest.approx(expected)
    assert good["mass"] > expected + 0.01  # the planted peak carries mass into the box
    assert box_fraction((0, 0, 5, 10), (10, 10)) == 0.5 and box_fraction((-5, -5, 5, 5), (10, 10)) == 0.25
    assert peak(np.eye(3)[::-1]) == (2.5, 0.5)  # first maximum in row-major order, pixel centre


def peak_right_of(box, gap, size=(100, 100)):
    """A map whose hottest pixel's centre lies ``gap`` px right of the box's last pixel centre, level with it."""
    heat = np.zeros(size[::-1])
    heat[(box[1] + box[3]) // 2, box[2] - 1 + gap] = 1.0
    return heat


@pytest.mark.parametrize("gap, strict, tolerance", [(0, True, True), (10, False, True), (14, False, True),
                                                    (15, False, False), (20, False, False)])
def test_tolerance_is_torchray_15_pixels(gap, strict, tolerance):
    """TorchRay's rule: a hit when an object pixel lies closer than 15 px to the peak (pixel centres, strictly)."""
    box = (40, 40, 60, 60)
    g = play(peak_right_of(box, gap), [box])
    assert (g["maps"], g["tolerance"]) == (strict, tolerance)
    diagonal = np.zeros((100, 100))
    diagonal[59 + 9, 59 + 12] = 1.0  # 9 px down, 12 px right of the corner pixel: exactly 15 px away, a miss
    assert not play(diagonal, [box])["tolerance"]
    diagonal[59 + 9, 59 + 12], diagonal[59 + 9, 59 + 11] = 0.0, 1.0  # sqrt(202) < 15: a hit
    assert play(diagonal, [box])["tolerance"]


def test_tolerance_is_averaged_over_classes_and_targets_may_be_several_boxes():
    box = (40, 40, 60, 60)
    hit, miss = peak_right_of(box, 10), peak_right_of(box, 30)
    s = score([hit, hit, miss, miss], [box] * 4, classes=["A", "B", "B", "B"])
    assert s["tolerance"] == pytest.approx((1 / 1 + 1 / 3) / 2)  # 0.667, not the pooled 2 / 4
    assert s["maps"] == 0.0 and s["classes"] == 2 and s["per_class"] == {"A": 1.0, "B": pytest.approx(1 / 3)}
    assert score([hit, miss], [box] * 2)["tolerance"] == 0.5  # no classes: one class, pooled
    other = (80, 0, 100, 20)
    two = score([peak_right_of(box, 0)], [[other, box]])  # a hit in any box, mass over their union
    assert two["maps"] == 1.0 and two["mass"] == 1.0 and two["uniform_mass"] == pytest.approx(0.08)
    assert score([np.ones((100, 100))], [[other, box]])["mass"] == pytest.approx(0.08)


def test_near_is_torchray_acceptance_disc_and_masks_are_targets():
    """``near`` (where a peak hits with tolerance) against brute force; a mask scores like the boxes it rasterises,
    and its mass counts only its own pixels."""
    rng = np.random.default_rng(3)
    for tol in (1, 2.5, 7, 15):
        mask = rng.random((30, 41)) < 0.01
        yy, xx = np.mgrid[:30, :41]
        brute = np.zeros_like(mask)
        for y, x in zip(*np.nonzero(mask)):
            brute |= (yy - y) ** 2 + (xx - x) ** 2 < tol ** 2
        assert (near(mask, tol) == brute).all()
    box = (40, 40, 60, 60)
    heat = peak_right_of(box, 10)
    assert play(heat, box_mask([box], (100, 100))) == play(heat, [box])
    ring = box_mask([box], (100, 100)) & ~box_mask([(45, 45, 55, 55)], (100, 100))  # the box less its middle
    hole = np.zeros((100, 100))
    hole[50, 50] = 1.0
    g = play(hole, ring)
    assert not g["maps"] and g["tolerance"] and g["mass"] == 0.0  # inside the box, outside the object
    assert play(np.ones((100, 100)), ring)["mass"] == pytest.approx(ring.mean())  # not the box's 0.0441


@pytest.mark.parametrize("crop_mode, crop_pct", [("center", None), ("squash", 0.875), ("border", 0.875),
                                                 ("border", 1.0), ("squash", 1.0)])
@pytest.mark.parametrize("size", [(96, 80), (80, 96), (301, 200), (40, 150)])
def test_maps_of_the_view_land_on_the_original_where_the_view_shows_it(size, crop_mode, crop_pct):
    """Every crop mode of timm's data config: the view of a box drawn into the image, placed back on the original
    as a map (``place_on_original``), covers the box (less what the crop cut), and nothing outside the region the
    view shows."""
    cfg = resolve_model_data_config(build_model("vit_demo_patch8", pretrained=False))
    cfg = dict(cfg, crop_mode=crop_mode, crop_pct=crop_pct or cfg["crop_pct"])
    img = Image.new("RGB", size, (0, 0, 0))
    box = [size[0] // 3, size[1] // 4, size[0] // 4, size[1] // 3]  # x, y, w, h
    ImageDraw.Draw(img).rectangle((box[0], box[1], box[0] + box[2] - 1, box[1] + box[3] - 1), fill=(255, 255, 255))
    view = build_view_transform(cfg)(img)[0]
    placed = place_on_original(view, cfg, size).numpy()
    assert placed.shape == size[::-1]
    ys, xs = np.nonzero(placed > 0.5)
    x0, y0, x1, y1 = view_region(cfg, size)
    sx, sy, left, top = view_geometry(cfg, size)
    assert (x0, y0) == pytest.approx((left / sx, top / sy))
    (x0, x1), (y0, y1) = (max(box[0], x0), min(box[0] + box[2], x1)), (max(box[1], y0), min(box[1] + box[3], y1))
    assert abs(xs.min() - x0) <= 1 and abs(ys.min() - y0) <= 1
    assert abs(xs.max() + 1 - x1) <= 1 and abs(ys.max() + 1 - y1) <= 1


VIEW_224 = {"input_size": [3, 224, 224], "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3,
            "crop_pct": 0.875, "crop_mode": "center"}  # the real ViT's view: shorter side to 256, 224 cropped


def view_blob(cfg, size, x, y, sigma=3.0):
    """A (224, 224) map of the view peaking where original pixel (x, y) lands in it."""
    sx, sy, left, top = view_geometry(cfg, size)
    v, u = np.mgrid[:224, :224] + 0.5
    cu, cv = (x + 0.5) * sx - left, (y + 0.5) * sy - top
    return torch.from_numpy(np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * sigma ** 2)))


@pytest.mark.parametrize("size, gap, hit", [((48, 40), 10, True), ((48, 40), 20, False), ((640, 480), 10, True),
                                            ((640, 480), 20, False)])
def test_vit_tolerance_is_measured_in_original_pixels(tmp_path, size, gap, hit):
    """A peak ``gap`` original pixels right of the box: within 15 px or not, whatever the scale of the view. In the
    view's pixels (x 5.3 for 48x40, x 0.53 for 640x480) the 10 px case on the small image would miss (53 px) and the
    20 px case on the large one hit (10.7 px)."""
    Image.new("RGB", size, (90, 90, 90)).save(tmp_path / "3_1.jpg")
    box = [8, 15, 8, 10] if size[0] < 100 else [300, 200, 40, 40]  # x, y, w, h, inside the region the view shows
    x, y = box[0] + box[2] - 1 + gap, box[1] + box[3] // 2  # gap px right of the box's last pixel centre
    s = score_maps({"blob": [view_blob(VIEW_224, size, x, y)]}, VIEW_224, [tmp_path / "3_1.jpg"],
                   {"3_1.jpg": box})["blob"]
    assert (s["maps"], s["tolerance"]) == (0.0, float(hit))


@pytest.mark.parametrize("orientation", [6, 8])
def test_vit_boxes_of_a_rotated_jpeg_turn_with_its_pixels(tmp_path, orientation):
    """A JPEG stored 64x40 with EXIF orientation 6 or 8 is seen 40x64 (load_rgb): its box, in stored pixels, is hit
    only once turned like the pixels (unturned, it lies 30+ px from the peak)."""
    stored = Image.new("RGB", (64, 40), (0, 0, 0))
    stored.paste((255, 255, 255), (6, 4, 18, 14))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "3_1.jpg", exif=exif, quality=95)
    shown = np.asarray(load_rgb(tmp_path / "3_1.jpg"))[..., 0] > 128
    ys, xs = np.nonzero(shown)
    x, y = int(xs.mean()), int(ys.mean())  # where the object is seen
    s = score_maps({"blob": [view_blob(VIEW_224, (40, 64), x, y)]}, VIEW_224, [tmp_path / "3_1.jpg"],
                   {"3_1.jpg": [6, 4, 12, 10]})["blob"]
    assert (s["maps"], s["tolerance"]) == (1.0, 1.0) and s["mass"] > 0.5


@pytest.mark.parametrize("orientation", range(1, 9))
def test_target_masks_turn_like_load_rgb_turns_the_pixels(tmp_path, orientation):
    """Every EXIF orientation: a box annotated on the stored pixels covers, as a target, exactly the pixels where
    load_rgb shows the box drawn there."""
    stored = Image.new("RGB", (30, 20), (0, 0, 0))
    stored.paste((255, 255, 255), (3, 2, 11, 7))  # pixels x 3..10, y 2..6: the box [3, 2, 8, 5]
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "r.jpg", exif=exif, quality=95)
    shown = np.asarray(load_rgb(tmp_path / "r.jpg"))[..., 0] > 128
    assert (target_mask([[3, 2, 8, 5]], tmp_path / "r.jpg") == shown).all()


def test_pointing_script_on_the_trained_model(trained):
    data, out, _ = trained
    proc = run(["python3", "-m", "vitpet.pointing", "--checkpoint", str(out / "best.safetensors"), "--images",
                str(data / "val"), "--limit", "37"])  # one image of each class, spread over the 148
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| map | strict | tolerance (15 px, class mean) | mass in box | images |" in proc.stdout
    rows = {r[0]: r[1:] for r in re.findall(r"^\| ([^|]+?) \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d\.\d{3}|-) \| 37 \|$",
                                            proc.stdout, re.M)}
    assert set(rows) == {"attention, layer 0", "attention, layer 1", "attention, layer 2",
                         "attention, layer 3 (last: the homework's map)", "attention, mean of the layers", "rollout",
                         "relevance (Chefer et al. 2021)", "attribution (Chefer et al. CVPR 2021, LRP)",
                         "image centre (baseline)",
                         "random point (baseline, expected)"}
    boxes = json.loads((data / "val" / "boxes.json").read_text())
    assert len(boxes) == 148
    strict, tolerance, mass = map(float, rows["random point (baseline, expected)"])
    assert 0.03 < strict < 0.25 and mass == strict and tolerance > strict  # a uniform map's mass: the area share
    assert float(rows["image centre (baseline)"][0]) == 0.0  # synth.pets never puts the object over the centre
    assert "averaged over 37 class(es)" in proc.stdout  # the pet classes of the file names


def test_pet_classes_come_from_the_file_names():
    from vitpet.pointing import pet_classes
    assert pet_classes(["26_5064.jpg", "3_1.png"]) == [26, 3]
    assert pet_classes(["26_5064.jpg", "cat.png"]) == ["all", "all"]


@pytest.mark.parametrize("content, fragment", [(None, "boxes file not found"), ("{oops", "is not JSON"),
                                               ('["a.jpg"]', "is not {file name"),
                                               ('{"a.jpg": [1, 2, 3]}', "the box of a.jpg is not")])
def test_bad_boxes_file_is_one_error_line(tmp_path, content, fragment):
    boxes = tmp_path / "boxes.json"
    if content is not None:
        boxes.write_text(content)
    proc = run(["python3", "-m", "vitpet.pointing", "--checkpoint", str(tmp_path / "none.safetensors"), "--images",
                str(tmp_path), "--boxes", str(boxes)], timeout=120)
    assert_one_line_error(proc, fragment)


def test_over_seeds_gives_each_maps_mean_and_spread_and_drops_maps_not_on_every_seed():
    from explanations.pointing import over_seeds
    row = lambda v: {"maps": v, "tolerance": 1.0, "mass": 0.5, "count": 4}  # noqa: E731
    base = {"centre": 0.25, "centre_tolerance": 0.5, "random": 0.1, "random_tolerance": 0.2, "uniform_mass": 0.1}
    text = over_seeds({0: {"attention": row(1.0), "rise": row(0.5)}, 1: {"attention": row(0.5)}},
                      {0: base, 1: dict(base, centre=0.75)})
    assert "| attention | 0.750 (0.500-1.000) |" in text
    assert "rise" not in text  # scored on seed 0 only: no mean to give
    assert "| image centre (baseline) | 0.500 (0.250-0.750) |" in text
