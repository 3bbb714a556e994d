"""The pointing game (Zhang et al. 2016), scored three ways on maps and boxes in one pixel frame.

- strict: a hit when the map's hottest pixel lies inside the box (the assignment's reading);
- tolerance, as the field plays it (TorchRay's ``torchray.benchmark.pointing_game``): a hit when some pixel of the
  object lies closer than ``TOLERANCE`` = 15 px to the hottest pixel, pixel centre to pixel centre, strictly closer
  (TorchRay tests ``du**2 + dv**2 < tolerance**2``); hits / (hits + misses) per class, then the mean over the
  classes, so a frequent class cannot drown a rare one (TorchRay averages over its dataset's classes, which all
  occur in its benchmarks; here the classes that occur);
- attention correctness (Liu et al. 2017): the share of the map's mass inside the box, the map normalised to sum 1
  over the frame; a uniform map's share, the box's area share, is its baseline.

A box's object is the frame's pixels whose centres it holds (edges included; TorchRay rasterises masks the same
way, pixel by pixel). A target may be several boxes (every instance of a COCO category): a hit in any of them, the
mass over their union. Shared by both problems. The callers place each map on the image exactly as their figures
do (bilinear upsampling, ``hw3io.upsample``) and move the boxes into that frame.
"""
import numpy as np

TOLERANCE = 15  # pixels, TorchRay's default and Zhang et al.'s


def peak(heat: np.ndarray) -> tuple[float, float]:
    """(x, y) of the centre of the hottest pixel of an (H, W) map (first one on ties, row-major)."""
    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return c + 0.5, r + 0.5


def inside(point, box) -> bool:
    """``box`` = (x0, y0, x1, y1) in pixels, edges included."""
    x, y = point
    x0, y0, x1, y1 = box
    return x0 <= x <= x1 and y0 <= y <= y1


def box_fraction(box, size) -> float:
    """Share of a (W, H) image's area inside ``box`` (x0, y0, x1, y1)."""
    w, h = size
    x0, y0, x1, y1 = box
    iw, ih = max(0.0, min(x1, w) - max(x0, 0)), max(0.0, min(y1, h) - max(y0, 0))
    return iw * ih / (w * h)


def as_boxes(target) -> list:
    """One box (x0, y0, x1, y1) or a list of boxes -> a list of boxes."""
    return [tuple(target)] if np.isscalar(target[0]) else [tuple(b) for b in target]


def _pixel_span(lo, hi, n) -> tuple[float, float]:
    """Centres (k + 0.5) of the first and last of ``n`` pixels whose centres lie in [lo, hi]; first > last if none."""
    return max(np.ceil(lo - 0.5), 0) + 0.5, min(np.floor(hi - 0.5), n - 1) + 0.5


def distance(xs, ys, boxes, size):
    """Distance from the points (``xs``, ``ys``, broadcast together) to the nearest pixel centre of the boxes'
    union in a (W, H) frame; inf where the boxes hold no pixel of the frame."""
    best = np.full(np.broadcast(xs, ys).shape, np.inf)
    for x0, y0, x1, y1 in boxes:
        (ax, bx), (ay, by) = _pixel_span(x0, x1, size[0]), _pixel_span(y0, y1, size[1])
        if ax <= bx and ay <= by:
            dx, dy = np.maximum(np.maximum(ax - xs, xs - bx), 0), np.maximum(np.maximum(ay - ys, ys - by), 0)
            best = np.minimum(best, np.hypot(dx, dy))
    return best


def play(heat: np.ndarray, boxes, tolerance: int = TOLERANCE) -> dict:
    """Every score of one (H, W) map against one target (a list of boxes), with the centre's and a uniformly
    random pixel's (expected, computed exactly rather than sampled)."""
    h, w = heat.shape
    dist = distance(np.arange(w) + 0.5, (np.arange(h) + 0.5)[:, None], boxes, (w, h))  # (H, W)
    mask = dist == 0
    x, y = peak(heat)
    mass = np.clip(heat, 0, None)
    centre = (w / 2, h / 2)
    return {"maps": bool(mask[int(y), int(x)]), "tolerance": bool(dist[int(y), int(x)] < tolerance),
            "mass": float(mass[mask].sum() / mass.sum()) if mass.sum() > 0 else float(mask.mean()),
            "centre": any(inside(centre, b) for b in boxes),
            "centre_tolerance": bool(distance(*centre, boxes, (w, h)) < tolerance),
            "random": float(mask.mean()), "random_tolerance": float((dist < tolerance).mean()),
            "uniform_mass": float(mask.mean())}


def class_mean(values, classes) -> float:
    """Mean over classes of each class's mean: class A 1/1 and class B 1/3 give 0.667, not the pooled 0.5."""
    groups = {}
    for v, c in zip(values, classes):
        groups.setdefault(c, []).append(v)
    return float(np.mean([np.mean(g) for g in groups.values()])) if groups else 0.0


POOLED = ("maps", "centre", "random", "mass", "uniform_mass")
PER_CLASS = ("tolerance", "centre_tolerance", "random_tolerance")


def score(heats, boxes, classes=None, tolerance: int = TOLERANCE) -> dict:
    """Scores over paired maps (H, W) and targets (a box (x0, y0, x1, y1) or a list of boxes, in the maps' frame):
    strict hit rates (``maps``, ``centre``, ``random``) and mass in box (``mass``, ``uniform_mass``) pooled over
    the targets; tolerance hit rates (``tolerance``, ``centre_tolerance``, ``random_tolerance``) per class of
    ``classes`` (one label per target; default: one class), then averaged; ``per_class``: each class's tolerance
    hit rate of the maps."""
    games = [play(h, as_boxes(b), tolerance) for h, b in zip(heats, boxes)]
    classes = list(classes) if classes is not None else ["all"] * len(games)
    n = max(len(games), 1)
    out = {k: sum(g[k] for g in games) / n for k in POOLED}
    out.update({k: class_mean([g[k] for g in games], classes) for k in PER_CLASS})
    per_class = {}
    for g, c in zip(games, classes):
        per_class.setdefault(c, []).append(g["tolerance"])
    return dict(out, count=len(games), classes=len(per_class), tolerance_px=tolerance,
                per_class={c: sum(v) / len(v) for c, v in per_class.items()})


def table(rows: dict, baseline: dict, unit: str) -> str:
    """One Markdown table: a row per map (``rows``: name -> ``score``), then the image centre and random point
    baselines from ``baseline`` (a ``score`` over the same targets). A random point's mass in box is a uniform
    map's: the box's area share. A point at the centre has no mass to spread: '-'."""
    from .tables import markdown_table
    f = "{:.3f}".format
    body = [(name, f(s["maps"]), f(s["tolerance"]), f(s["mass"]), s["count"]) for name, s in rows.items()]
    b = baseline
    body += [("image centre (baseline)", f(b["centre"]), f(b["centre_tolerance"]), "-", b["count"]),
             ("random point (baseline, expected)", f(b["random"]), f(b["random_tolerance"]), f(b["uniform_mass"]),
              b["count"])]
    tol = b.get("tolerance_px", TOLERANCE)
    return markdown_table(("map", "strict", f"tolerance ({tol} px, class mean)", "mass in box", unit), body, "lrrrr")


def legend(baseline: dict) -> str:
    """What the table's columns mean, in one line under it."""
    return (f"strict: the map's peak inside the box; tolerance: the peak within {baseline.get('tolerance_px')} px of "
            f"it (TorchRay's pointing game), hit rate per class averaged over {baseline['classes']} class(es); mass "
            "in box: the share of the map inside the box (Liu et al. 2017), a uniform map's for the random row")
