"""The pointing game (Zhang et al. 2016): a map scores a hit when its maximum lies inside the object's box.

Shared by both problems. Maps and boxes must be in the same pixel frame: the callers place each map on the image
exactly as their figures do (bilinear upsampling, ``hw3io.upsample``) and move the boxes into that frame.
"""
import numpy as np


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
    """Chance that a uniformly random point of a (W, H) image lands in ``box``: the random baseline's expected hit
    rate, computed exactly rather than sampled."""
    w, h = size
    x0, y0, x1, y1 = box
    iw, ih = max(0.0, min(x1, w) - max(x0, 0)), max(0.0, min(y1, h) - max(y0, 0))
    return iw * ih / (w * h)


def score(heats, boxes) -> dict:
    """Hit rates over paired maps (H, W) and boxes (x0, y0, x1, y1) in the maps' frame: the maps', the image
    centre's and a uniformly random point's (expected)."""
    maps = [inside(peak(h), b) for h, b in zip(heats, boxes)]
    centre = [inside((h.shape[1] / 2, h.shape[0] / 2), b) for h, b in zip(heats, boxes)]
    random = [box_fraction(b, (h.shape[1], h.shape[0])) for h, b in zip(heats, boxes)]
    n = max(len(maps), 1)
    return {"maps": sum(maps) / n, "centre": sum(centre) / n, "random": sum(random) / n, "count": len(maps)}
