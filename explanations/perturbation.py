"""Black-box saliency by perturbation: RISE and sliding-window occlusion, plus pooling onto a model's token grid.

Both methods only call ``score_fn(images (B, C, H, W)) -> (B, K)``: K decisions' scores per image (Problem 1: the
log-probability of the explained class, K = 1; Problem 2: each generated token's teacher-forced log-probability).
"Removing" a pixel replaces it by ``baseline`` (default zeros: the dataset mean once the input is normalised; a
blurred copy of the image is another choice). Pixels outside an optional ``valid`` (H, W) bool region (CATR's
padding) are never perturbed and get 0 in every map.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# hw3io's lazy name, not ``from hw3io.progress import``: importing the submodule by name first would bind
# ``hw3io.progress`` to the module for every later ``from hw3io import progress``
from hw3io import progress


@dataclass(frozen=True)
class RiseMaps:
    """RISE maps and what regenerates them: the same seed, masks, cells and p (and image size) give the same masks."""
    maps: torch.Tensor  # (K, H, W) float64
    seed: int
    masks: int
    cells: int
    p: float
    estimator: str

    def settings(self) -> dict:
        """The numbers a caller writes beside the maps, e.g. into a run record."""
        return {"method": "rise", "seed": self.seed, "masks": self.masks, "cells": self.cells, "p": self.p,
                "estimator": self.estimator}


def _baseline_like(image: torch.Tensor, baseline) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(image)
    return torch.as_tensor(baseline, dtype=image.dtype, device=image.device).expand_as(image)


def _valid_region(valid, size: tuple[int, int], device) -> torch.Tensor:
    """(H, W) bool, all True when ``valid`` is None."""
    if valid is None:
        return torch.ones(size, dtype=torch.bool, device=device)
    valid = torch.as_tensor(valid, device=device).bool()
    if valid.shape != size:
        raise ValueError(f"valid region is {tuple(valid.shape)}, the image is {size}")
    return valid


def _scores(score_fn, images: torch.Tensor) -> torch.Tensor:
    """(B, K) float64 on the CPU-or-device of the scores; a (B,) result is one decision."""
    scores = score_fn(images)
    if scores.dim() == 1:
        scores = scores[:, None]
    return scores.detach().double()


def _draw_masks(count: int, size: tuple[int, int], cells: int, p: float, seed: int):
    """RISE's random draws, all made first so that a map does not depend on the batch size: grids (N, cells, cells)
    of cells each kept with probability p, and shifts (N, 2) of 0..ceil(H / cells) - 1 rows and as many columns."""
    generator = torch.Generator().manual_seed(seed)
    cell_h, cell_w = -(-size[0] // cells), -(-size[1] // cells)
    grids = (torch.rand(count, cells, cells, generator=generator) < p).float()
    shifts = torch.stack([torch.randint(0, cell_h, (count,), generator=generator),
                          torch.randint(0, cell_w, (count,), generator=generator)], 1)
    return grids, shifts


def _expand_masks(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, cells, cells) grids -> (N, H, W) float32 masks in [0, 1]: bilinearly upsampled to (cells + 1) cell sizes
    (a cell being ceil(H / cells) px) so that cell borders fall anywhere, then cropped at each mask's shift."""
    h, w = size
    cells = grids.shape[-1]
    big = F.interpolate(grids[:, None], size=((cells + 1) * -(-h // cells), (cells + 1) * -(-w // cells)),
                        mode="bilinear", align_corners=False)[:, 0]
    rows = shifts[:, 0, None] + torch.arange(h)  # (N, H)
    cols = shifts[:, 1, None] + torch.arange(w)  # (N, W)
    return big[torch.arange(len(big))[:, None, None], rows[:, :, None], cols[:, None, :]]


def rise_masks(count: int, size: tuple[int, int], *, cells: int = 8, p: float = 0.5, seed: int = 0) -> torch.Tensor:
    """(count, H, W) float32: exactly the masks ``rise`` uses with the same arguments (e.g. to count coverage)."""
    return _expand_masks(*_draw_masks(count, size, cells, p, seed), size)


def rise(score_fn, image: torch.Tensor, *, masks: int = 1000, cells: int = 8, p: float = 0.5, batch: int = 50,
         seed: int = 0, baseline=None, valid=None, estimator: str = "centred",
         show_progress: bool = False) -> RiseMaps:
    """RISE (Petsiuk et al., BMVC 2018) for the K decisions of ``score_fn`` on ``image`` (C, H, W).

    Each masked image is ``image * M + baseline * (1 - M)``; N = ``masks``. ``estimator="centred"`` (the default)
    returns S(x) = sum_i (f_i - mean f) M_i(x) / sum_i M_i(x), i.e. E[f | x kept] - E[f]. The paper's
    ``"published"`` S(x) = sum_i f_i M_i(x) / (N p) also carries mean f times each pixel's own coverage by a finite
    mask set (sum_i M_i(x) / (N p), uneven across pixels), a pattern that outweighs the signal when the model is
    near-certain (f nearly the same for every mask). Sums are float64. Masks come from a ``torch.Generator`` seeded
    with ``seed`` on the CPU, so a call is reproducible on any device and batch size. Returns ``RiseMaps`` with
    ``maps`` (K, H, W) float64 on the CPU, 0 outside ``valid``.
    """
    if estimator not in ("centred", "published"):
        raise ValueError(f"estimator must be 'centred' or 'published', not {estimator!r}")
    _, h, w = image.shape
    region = _valid_region(valid, (h, w), "cpu")
    base = _baseline_like(image, baseline)
    grids, shifts = _draw_masks(masks, (h, w), cells, p, seed)
    weighted = coverage = total = None  # sum_i f_i M_i (K, H*W), sum_i M_i (H*W,), sum_i f_i (K,)
    with torch.no_grad():
        for start in progress(range(0, masks, batch), disable=not show_progress, desc="RISE", unit="batch"):
            kept = _expand_masks(grids[start:start + batch], shifts[start:start + batch], (h, w))  # (B, H, W)
            kept = torch.where(region, kept, torch.ones_like(kept))  # padding is never removed
            m = kept.to(image.device, image.dtype)[:, None]
            f = _scores(score_fn, image * m + base * (1 - m)).cpu()  # (B, K)
            flat = kept.double().flatten(1)  # (B, H*W)
            if weighted is None:
                weighted, coverage, total = f.T @ flat, flat.sum(0), f.sum(0)
            else:
                weighted += f.T @ flat
                coverage += flat.sum(0)
                total += f.sum(0)
    if estimator == "centred":
        saliency = torch.where(coverage > 0, weighted / coverage.clamp_min(1e-12) - (total / masks)[:, None], 0.0)
    else:
        saliency = weighted / (masks * p)
    saliency = saliency.reshape(-1, h, w) * region
    return RiseMaps(saliency, seed=seed, masks=masks, cells=cells, p=p, estimator=estimator)


def occlusion_windows(size: int, cell: int, stride: int) -> list[tuple[int, int]]:
    """[start, stop) spans along one axis: every ``stride`` px, the last one reaching the edge (clipped there, so
    stride == cell tiles the axis exactly)."""
    starts = range(0, max(size - cell, 0) + stride, stride)
    return [(s, min(s + cell, size)) for s in starts if s < size]


def occlusion(score_fn, image: torch.Tensor, *, cell: int, stride: int | None = None, batch: int = 64,
              baseline=None, valid=None, show_progress: bool = False) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus, 2014): a cell x cell square of ``baseline`` slides over ``image`` (C, H, W) every
    ``stride`` px (default ``cell``); each window's score drop f(image) - f(occluded) is credited to every pixel it
    covers, averaged where windows overlap. Only pixels inside ``valid`` are occluded; a window with none is skipped.
    Returns (K, H, W) float64 on the CPU, 0 where no window reached (outside ``valid``, or gaps when
    stride > cell)."""
    stride = stride or cell
    _, h, w = image.shape
    region = _valid_region(valid, (h, w), "cpu")
    base = _baseline_like(image, baseline)
    boxes = []  # (H, W) bool per window, valid pixels only
    for r0, r1 in occlusion_windows(h, cell, stride):
        for c0, c1 in occlusion_windows(w, cell, stride):
            box = torch.zeros(h, w, dtype=torch.bool)
            box[r0:r1, c0:c1] = True
            box &= region
            if box.any():
                boxes.append(box)
    with torch.no_grad():
        reference = _scores(score_fn, image[None]).cpu()[0]  # (K,)
        drop_sum = torch.zeros(len(reference), h * w, dtype=torch.float64)
        hits = torch.zeros(h * w, dtype=torch.float64)
        for start in progress(range(0, len(boxes), batch), disable=not show_progress, desc="occlusion",
                              unit="batch"):
            hidden = torch.stack(boxes[start:start + batch])  # (B, H, W)
            m = hidden.to(image.device)[:, None]
            f = _scores(score_fn, torch.where(m, base, image)).cpu()  # (B, K)
            flat = hidden.double().flatten(1)
            drop_sum += (reference - f).T @ flat
            hits += flat.sum(0)
    return torch.where(hits > 0, drop_sum / hits.clamp_min(1), 0.0).reshape(-1, h, w)


def _area_weights(size: int, cells: int) -> torch.Tensor:
    """(cells, size) float64: the share of grid cell i that pixel j covers (cell i spans [i, i+1) * size / cells)."""
    edges = torch.arange(cells + 1, dtype=torch.float64) * size / cells
    pixel = torch.arange(size, dtype=torch.float64)
    overlap = (torch.minimum(pixel + 1, edges[1:, None]) - torch.maximum(pixel, edges[:-1, None])).clamp_min(0)
    return overlap / (size / cells)


def to_grid(pixel_maps: torch.Tensor, grid: tuple[int, int], *, valid=None) -> torch.Tensor:
    """(K, H, W) -> (K, h, w): each grid cell's area-weighted mean of the pixels it covers, fractions of a pixel
    included when H or W is not a multiple of h or w (``adaptive_avg_pool2d`` would then average overlapping whole
    pixels), so perturbation maps sit in the layout of attention maps. With ``valid`` (H, W) bool, the mean is over
    its pixels only; a cell with none gets 0. float64."""
    h, w = grid
    rows, cols = _area_weights(pixel_maps.shape[-2], h), _area_weights(pixel_maps.shape[-1], w)
    maps = pixel_maps.detach().double().cpu()
    if valid is None:
        return rows @ maps @ cols.T
    weight = torch.as_tensor(valid).double().cpu()
    mass = rows @ weight @ cols.T  # (h, w): valid area per cell
    return torch.where(mass > 0, rows @ (maps * weight) @ cols.T / mass.clamp_min(1e-12), 0.0)
