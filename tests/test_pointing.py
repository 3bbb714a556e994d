"""The pointing game: hw3io.pointing's scoring and vitpet.pointing's placement of boxes in the model's view."""
import json
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from helpers import run
from hw3io.pointing import box_fraction, peak, score
from vitpet.data import build_view_transform
from vitpet.model import build_model, resolve_model_data_config
from vitpet.pointing import box_in_view, view_geometry


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
    assert score(heats, boxes)["maps"] == 1.0
    noise = score([rng.random(h.shape) for h in heats], boxes)
    expected = np.mean([box_fraction(b, (h.shape[1], h.shape[0])) for h, b in zip(heats, boxes)])
    assert noise["random"] == pytest.approx(expected)
    assert abs(noise["maps"] - expected) < 0.06  # uniform noise points like a random point
    assert box_fraction((0, 0, 5, 10), (10, 10)) == 0.5 and box_fraction((-5, -5, 5, 5), (10, 10)) == 0.25
    assert peak(np.eye(3)[::-1]) == (2.5, 0.5)  # first maximum in row-major order, pixel centre


@pytest.mark.parametrize("crop_mode, crop_pct", [("center", None), ("squash", 0.875), ("border", 0.875),
                                                 ("border", 1.0), ("squash", 1.0)])
@pytest.mark.parametrize("size", [(96, 80), (80, 96), (301, 200), (40, 150)])
def test_boxes_move_into_the_view_like_the_pixels(size, crop_mode, crop_pct):
    """Every crop mode of timm's data config: the box drawn into the image lands where box_in_view says."""
    cfg = resolve_model_data_config(build_model("vit_demo_patch8", pretrained=False))
    cfg = dict(cfg, crop_mode=crop_mode, crop_pct=crop_pct or cfg["crop_pct"])
    img = Image.new("RGB", size, (0, 0, 0))
    box = [size[0] // 3, size[1] // 4, size[0] // 4, size[1] // 3]  # x, y, w, h
    ImageDraw.Draw(img).rectangle((box[0], box[1], box[0] + box[2] - 1, box[1] + box[3] - 1), fill=(255, 255, 255))
    view = build_view_transform(cfg)(img)[0].numpy()
    ys, xs = np.nonzero(view > 0.5)
    x0, y0, x1, y1 = box_in_view(box, view_geometry(cfg, size))
    (x0, x1), (y0, y1) = np.clip((x0, x1), 0, view.shape[1]), np.clip((y0, y1), 0, view.shape[0])  # a crop cuts it
    assert abs(xs.min() - x0) <= 1 and abs(ys.min() - y0) <= 1
    assert abs(xs.max() + 1 - x1) <= 1 and abs(ys.max() + 1 - y1) <= 1


def test_pointing_script_on_the_trained_model(trained):
    data, out, _ = trained
    proc = run(["python3", "-m", "vitpet.pointing", "--checkpoint", str(out / "best.safetensors"), "--images",
                str(data / "val")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    rates = dict(re.findall(r"^\| ([^|]+?) \| (\d\.\d{3}) \| 148 \|$", proc.stdout, re.M))
    assert set(rates) == {"last layer (head mean)", "rollout", "image centre (baseline)",
                          "random point (baseline, expected)"}
    boxes = json.loads((data / "val" / "boxes.json").read_text())
    assert len(boxes) == 148
    assert 0.2 < float(rates["random point (baseline, expected)"]) < 0.5
