"""The pointing game (Zhang et al. 2016), scored three ways on maps and targets in one pixel frame.

The frame is the original image as displayed (after its EXIF orientation, as ``hw3io.load_rgb`` gives it), as
TorchRay (``torchray.benchmark.pointing_game``) plays it: the callers place each map on that image and give each
target there, so the 15 px are original-image pixels, whatever size the model saw.

- strict: a hit when the map's hottest pixel lies inside the object (the assignment's reading);
- tolerance, as the field plays it (TorchRay): a hit when some pixel of the object lies closer than
  ``TOLERANCE`` = 15 px to the hottest pixel, pixel centre to pixel centre, strictly closer (TorchRay tests
  ``du**2 + dv**2 < tolerance**2``); hits / (hits + misses) per class, then the mean over the classes, so a
  frequent class cannot drown a rare one (TorchRay averages over its dataset's classes, which all occur in its
  benchmarks; here the classes that occur);
- attention correctness (Liu et al. 2017): the share of the map's mass inside the object, the map normalised to
  sum 1 over the frame; a uniform map's share, the object's area share, is its baseline.

A target is an (H, W) boolean mask of the object (TorchRay's form; ``explanations.targets`` builds them from boxes and
COCO segmentations), a box (x0, y0, x1, y1) or a list of boxes: a box's object is the frame's pixels whose centres
it holds (edges included), several boxes their union (every instance of a COCO category: a hit in any of them).
Shared by both problems.
"""
import math

import numpy as np

TOLERANCE = 15  # pixels of the original image, TorchRay's default and Zhang et al.'s


def peak(heat: np.ndarray) -> tuple[float, float]:
    """(x, y) of the centre of the hottest pixel of an (H, W) map (first one on ties, row-major)."""
    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return c + 0.5, r + 0.5


def box_fraction(box, size) -> float:
    """Share of a (W, H) image's area inside ``box`` (x0, y0, x1, y1)."""
    w, h = size
    x0, y0, x1, y1 = box
    iw, ih = max(0.0, min(x1, w) - max(x0, 0)), max(0.0, min(y1, h) - max(y0, 0))
    return iw * ih / (w * h)


def as_boxes(target) -> list:
    """One box (x0, y0, x1, y1) or a list of boxes -> a list of boxes."""
    return [tuple(target)] if np.isscalar(target[0]) else [tuple(b) for b in target]


def _pixel_span(lo, hi, n) -> tuple[int, int]:
    """[first, last + 1) of the ``n`` pixels whose centres (k + 0.5) lie in [lo, hi]; empty if none."""
    first, last = max(math.ceil(lo - 0.5), 0), min(math.floor(hi - 0.5), n - 1)
    return first, max(last + 1, first)


def box_mask(boxes, shape) -> np.ndarray:
    """The (H, W) = ``shape`` mask of the pixels whose centres lie in any of ``boxes`` (x0, y0, x1, y1), edges
    included."""
    mask = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        (a, b), (c, d) = _pixel_span(x0, x1, shape[1]), _pixel_span(y0, y1, shape[0])
        mask[c:d, a:b] = True
    return mask


def as_mask(target, shape) -> np.ndarray:
    """A target (an (H, W) boolean mask, a box or a list of boxes) -> its (H, W) = ``shape`` mask."""
    if isinstance(target, np.ndarray) and target.dtype == bool:
        if target.shape != tuple(shape):
            raise ValueError(f"a target mask of shape {target.shape} for a map of shape {tuple(shape)}")
        return target
    return box_mask(as_boxes(target), shape)


def _reach(limit_sq: float) -> int:
    """The largest integer d >= 0 with d * d < ``limit_sq`` (> 0)."""
    d = max(math.ceil(math.sqrt(limit_sq)) - 1, 0)
    while (d + 1) ** 2 < limit_sq:
        d += 1
    while d > 0 and d * d >= limit_sq:
        d -= 1
    return d


def near(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """The pixels whose centre lies closer than ``tolerance`` to some pixel centre of ``mask``: where a peak hits
    with tolerance. A dilation by TorchRay's acceptance disc, one row offset at a time (each row of the disc is a
    run, counted with a cumulative sum), inside the mask's bounding box grown by the disc."""
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return out
    r = _reach(tolerance ** 2)
    y0, y1, x0, x1 = max(ys.min() - r, 0), min(ys.max() + r + 1, h), max(xs.min() - r, 0), min(xs.max() + r + 1, w)
    part, m = out[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    n, cols = m.shape[0], np.arange(m.shape[1])
    runs = np.pad(m.cumsum(1), ((0, 0), (1, 0)))  # (n, w' + 1): mask pixels left of each column
    grown = {}
    for dv in range(-min(r, n - 1), min(r, n - 1) + 1):  # rows farther than the box's height reach nothing
        k = _reach(tolerance ** 2 - dv ** 2)  # the disc's half-width dv rows away
        if k not in grown:  # mask pixels within k columns, row by row
            grown[k] = runs[:, np.minimum(cols + k + 1, len(cols))] > runs[:, np.maximum(cols - k, 0)]
        if dv >= 0:
            part[:n - dv] |= grown[k][dv:]
        else:
            part[-dv:] |= grown[k][:n + dv]
    return out


def play(heat: np.ndarray, target, tolerance: float = TOLERANCE) -> dict:
    """Every score of one (H, W) map against one target (a mask, a box or boxes in the map's frame), with the
    image centre's (the pixel holding it, as a map peaking there) and a uniformly random pixel's (expected,
    computed exactly rather than sampled)."""
    h, w = heat.shape
    mask = as_mask(target, (h, w))
    ys, xs = np.nonzero(mask)

    def distance(r, c):
        return float(np.hypot(xs - c, ys - r).min()) if len(xs) else math.inf

    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    centre = (h // 2, w // 2)
    mass = np.clip(heat, 0, None)
    area = float(mask.mean())
    return {"maps": bool(mask[r, c]), "tolerance": distance(r, c) < tolerance,
            "mass": float(mass[mask].sum() / mass.sum()) if mass.sum() > 0 else area,
            "centre": bool(mask[centre]), "centre_tolerance": distance(*centre) < tolerance,
            "random": area, "random_tolerance": float(near(mask, tolerance).mean()), "uniform_mass": area}


def class_mean(values, classes) -> float:
    """Mean over classes of each class's mean: class A 1/1 and class B 1/3 give 0.667, not the pooled 0.5."""
    groups = {}
    for v, c in zip(values, classes):
        groups.setdefault(c, []).append(v)
    return float(np.mean([np.mean(g) for g in groups.values()])) if groups else 0.0


POOLED = ("maps", "centre", "random", "mass", "uniform_mass")
PER_CLASS = ("tolerance", "centre_tolerance", "random_tolerance")


def score(heats, targets, classes=None, tolerance: float = TOLERANCE) -> dict:
    """Scores over paired maps (H, W) and targets (an (H, W) boolean mask, a box (x0, y0, x1, y1) or a list of
    boxes, in the maps' frame): strict hit rates (``maps``, ``centre``, ``random``) and mass in box (``mass``,
    ``uniform_mass``) pooled over the targets; tolerance hit rates (``tolerance``, ``centre_tolerance``,
    ``random_tolerance``) per class of ``classes`` (one label per target; default: one class), then averaged;
    ``per_class``: each class's tolerance hit rate of the maps."""
    games = [play(h, t, tolerance) for h, t in zip(heats, targets)]
    classes = list(classes) if classes is not None else ["all"] * len(games)
    n = max(len(games), 1)
    out = {k: sum(g[k] for g in games) / n for k in POOLED}
    out.update({k: class_mean([g[k] for g in games], classes) for k in PER_CLASS})
    per_class = {}
    for g, c in zip(games, classes):
        per_class.setdefault(c, []).append(g["tolerance"])
    return dict(out, count=len(games), classes=len(per_class), tolerance_px=tolerance,
                per_class={c: sum(v) / len(v) for c, v in per_class.items()})


FAITHFULNESS = ("deletion", "insertion", "randomisation")


def spread(items: list, limit: int | None) -> list:
    """``--limit``: ``limit`` of the sorted ``items``, evenly spread, so every class keeps its share (all when
    None)."""
    if limit is None:
        return items
    if limit < 1:
        from hw3io import UserError
        raise UserError(f"--limit must be at least 1, not {limit}")
    return items[::max(len(items) // limit, 1)][:limit]


def baseline_rows(cell, extra: bool) -> list:
    """The image centre and random point rows, ``cell(key)`` giving each baseline number's text (``extra``: with
    the faithfulness columns). A point at the centre has no mass to spread: '-'."""
    return [("image centre (baseline)", cell("centre"), cell("centre_tolerance"), "-", *(["-"] * 3 if extra else [])),
            ("random point (baseline, expected)", cell("random"), cell("random_tolerance"), cell("uniform_mass"),
             *([cell("random_deletion"), cell("random_insertion"), "-"] if extra else []))]


def table(rows: dict, baseline: dict, unit: str) -> str:
    """One Markdown table: a row per map (``rows``: name -> ``score``), then the image centre and random point
    baselines from ``baseline`` (a ``score`` over the same targets). A random point's mass in box is a uniform
    map's: the object's area share. A point at the centre has no mass to spread: '-'. Rows that carry the
    faithfulness numbers (``deletion``, ``insertion`` areas; ``randomisation``, the rank correlation with a
    randomised model's maps) get three more columns, the random row a random ranking's areas (``random_deletion``,
    ``random_insertion`` of ``baseline``)."""
    from hw3io.tables import markdown_table
    f = "{:.3f}".format
    extra = any("deletion" in s_ for s_ in rows.values())
    body = [(name, f(s_["maps"]), f(s_["tolerance"]), f(s_["mass"]),
             *([f(s_[k]) if k in s_ else "-" for k in FAITHFULNESS] if extra else []), s_["count"])
            for name, s_ in rows.items()]
    body += [(*row, baseline["count"]) for row in baseline_rows(lambda k: f(baseline[k]), extra)]
    tol = baseline.get("tolerance_px", TOLERANCE)
    head = ("map", "strict", f"tolerance ({tol} px, class mean)", "mass in box",
            *(("deletion (lower: better)", "insertion (higher: better)", "randomisation (rank corr.)") if extra
              else ()), unit)
    return markdown_table(head, body, "l" + "r" * (len(head) - 1))


def over_seeds(per_seed: dict, baselines: dict) -> str:
    """One Markdown table of several training seeds' tables (``per_seed``: seed -> rows, ``baselines``: seed ->
    baseline, as ``table`` takes them): each cell the mean over the seeds and their min-max, so a map whose score
    hinges on the seed shows a wide spread. Maps scored on only some seeds are left out."""
    import statistics
    from hw3io.tables import markdown_table
    seeds = list(per_seed)
    names = [n for n in per_seed[seeds[0]] if all(n in per_seed[s] for s in seeds)]
    extra = all("deletion" in per_seed[s][n] for s in seeds for n in names)
    cols = ("maps", "tolerance", "mass") + (FAITHFULNESS if extra else ())

    def cell(values):
        return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    body = [(n, *(cell([per_seed[s][n][c] for s in seeds]) for c in cols)) for n in names]
    body += baseline_rows(lambda k: cell([baselines[s][k] for s in seeds]), extra)
    head = ("map", "strict", "tolerance", "mass in box", *(("deletion", "insertion", "randomisation") if extra else ()))
    return markdown_table(head, body, "l" + "r" * (len(head) - 1))


def legend(baseline: dict) -> str:
    """What the table's columns mean, in one line under it."""
    text = (f"strict: the map's peak inside the object; tolerance: the peak within {baseline.get('tolerance_px')} px "
            "of it, pixels of the original image (TorchRay's pointing game), hit rate per class averaged over "
            f"{baseline['classes']} class(es); mass in box: the share of the map inside the object (Liu et al. 2017), "
            "a uniform map's for the random row")
    if "random_deletion" in baseline:
        text += ("; deletion / insertion: area under the explained decision's probability as pixels are removed "
                 "from / restored into a blurred image in the map's order (Petsiuk et al. 2018), a random order's "
                 "for the random row; randomisation: Spearman rank correlation with the same method's maps from a "
                 "model with randomised weights (Adebayo et al. 2018; near 1: the map ignores the model)")
    return text


def save(path, rows: dict, baseline: dict, unit: str) -> None:
    """The table's numbers as JSON (``rows``: name -> ``score``; ``baseline``; ``unit``), for the report."""
    import json
    from hw3io import atomic_write_text
    keep = lambda d: {k: v for k, v in d.items() if k != "per_class"}  # noqa: E731
    atomic_write_text(path, json.dumps({"rows": {n: keep(r) for n, r in rows.items()}, "baseline": keep(baseline),
                                        "unit": unit}, indent=1) + "\n")


def findings(rows: dict, baseline: dict, homework: str | None = None) -> list[str]:
    """Sentences that state only what the table shows: the best pointing map against the homework's and the
    baselines; with the faithfulness columns, the most faithful map by deletion and which maps fail the
    randomisation check (correlation 0.3 or more)."""
    f = "{:.3f}".format
    best = max(rows, key=lambda n: rows[n]["maps"])
    out = [f"Strict pointing is highest for {best} ({f(rows[best]['maps'])}); the image centre scores "
           f"{f(baseline['centre'])} and a random point {f(baseline['random'])}."]
    if homework in rows and homework != best:
        out.append(f"The homework's map ({homework}) scores {f(rows[homework]['maps'])} strict, "
                   f"{f(rows[homework]['tolerance'])} with TorchRay's tolerance.")
    if all("deletion" in r for r in rows.values()):
        faithful = min(rows, key=lambda n: rows[n]["deletion"])
        out.append(f"Deletion (lower: the decision falls faster as the map's pixels go) is lowest for {faithful} "
                   f"({f(rows[faithful]['deletion'])}); a random order gives {f(baseline['random_deletion'])}"
                   + (f", the homework's map {f(rows[homework]['deletion'])}." if homework in rows else "."))
        failing = [n for n, r in rows.items() if r["randomisation"] >= 0.3]
        out.append("Every map changes when the model's weights are randomised (rank correlation below 0.3)."
                   if not failing else
                   f"Maps that barely change when the weights are randomised (rank correlation 0.3 or more): "
                   f"{', '.join(failing)}; they show the image more than the model.")
    return out
