"""Attention maps on a patch/feature grid -> pixels."""
import math

import torch
import torch.nn.functional as F


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., gh, gw) -> (..., H, W), bilinear with align_corners=False, so grid cell (r, c) peaks inside the pixel
    box it covers, whatever H/gh and W/gw are (e.g. CATR's ceil(H/16) grids)."""
    lead = maps.shape[:-2]
    x = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False).reshape(*lead, *size)


def pixel_region(region) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) rounded to whole pixels (halves up), as ``place`` draws a map there."""
    return tuple(int(math.floor(v + 0.5)) for v in region)


def place(maps: torch.Tensor, region, size: tuple[int, int]) -> torch.Tensor:
    """(..., gh, gw) maps covering ``region`` = (x0, y0, x1, y1) of an image of (W, H) = ``size``, in its pixels ->
    (..., H, W): ``upsample``d onto the region rounded to whole pixels, zero outside it, cut where the region
    overhangs the image (a view padded beyond it). A map covering the whole image is ``upsample`` to its size."""
    w, h = size
    x0, y0, x1, y1 = pixel_region(region)
    up = upsample(maps, (max(y1 - y0, 1), max(x1 - x0, 1)))
    out = up.new_zeros((*maps.shape[:-2], h, w))
    a, b, c, d = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if a < c and b < d:
        out[..., b:d, a:c] = up[..., b - y0:d - y0, a - x0:c - x0]
    return out
