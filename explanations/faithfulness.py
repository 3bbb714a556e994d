"""Deletion and insertion (Petsiuk et al., BMVC 2018): does the model's probability follow the pixels a map ranks?

Deletion removes pixels (to ``baseline``) from the most salient down and re-scores: a faithful map makes the
probability fall fast, so a lower area under the curve is better. Insertion starts from a blurred image and puts
the original pixels back in the same order: a higher area is better. Both are read against the same curves for a
random ranking (``random_baseline_areas``), the floor every method must clear.

``prob_fn(images (B, C, H, W)) -> (B, K)`` gives PROBABILITIES of K decisions (Problem 1: the explained class,
K = 1; Problem 2: each generated token, teacher-forced). Each decision has its own ranking and its own curves.
"""
import numpy as np
import torch
import torch.nn.functional as F

# hw3io's lazy name, not ``from hw3io.progress import``: importing the submodule by name first would bind
# ``hw3io.progress`` to the module for every later ``from hw3io import progress``
from hw3io import progress

BLUR_KERNEL = 11  # RISE's own insertion code blurs with an 11 x 11 Gaussian of sigma 5 (at 224 px)
BLUR_SIGMA = 5.0


def blur(image: torch.Tensor, kernel: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """(C, H, W) -> (C, H, W): torchvision's Gaussian blur (reflect padding; needs kernel // 2 < H and W)."""
    from torchvision.transforms.functional import gaussian_blur
    return gaussian_blur(image, [kernel, kernel], [sigma, sigma])


def pixel_ranks(saliency: torch.Tensor, size: tuple[int, int], *, valid=None, mode: str = "bilinear") -> torch.Tensor:
    """(K, h, w) or (K, H, W) -> (K, H, W) int64: each pixel's place in its decision's deletion order (0 = removed
    first). A grid map is upsampled first, ``mode`` "bilinear" (align_corners=False, as ``hw3io.upsample`` places
    maps in figures and the pointing game) or "nearest" (one value per grid cell). Ties go row-major (the earlier
    pixel first); pixels outside ``valid`` rank after every valid one and are never removed."""
    maps = saliency.detach().double().cpu()
    if tuple(maps.shape[-2:]) != tuple(size):
        kwargs = {"align_corners": False} if mode == "bilinear" else {}
        maps = F.interpolate(maps[:, None], size=size, mode=mode, **kwargs)[:, 0]
    k = len(maps)
    flat = maps.reshape(k, -1)
    if valid is not None:
        flat = torch.where(torch.as_tensor(valid).reshape(-1).bool(), flat, -torch.inf)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices  # (K, H*W)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1]).expand(k, -1).contiguous())
    return ranks.reshape(k, *size)


def _step_counts(valid_pixels: int, steps: int) -> torch.Tensor:
    """(steps + 1,) pixels changed at each step: floor(s * n / steps), 0 to n."""
    return torch.arange(steps + 1) * valid_pixels // steps


def deletion_insertion(prob_fn, image: torch.Tensor, saliency: torch.Tensor, *, steps: int = 16, baseline=None,
                       blurred=None, valid=None, batch: int = 64, mode: str = "bilinear",
                       show_progress: bool = False) -> dict:
    """Deletion and insertion curves of the K decisions for ``image`` (C, H, W) ranked by ``saliency`` (K, h, w)
    or (K, H, W) (see ``pixel_ranks``: upsampling, ties, ``valid``).

    At step s = 0..steps, the first floor(s * n / steps) of the n valid pixels in the ranking are changed: to
    ``baseline`` (default zeros) for deletion; from ``blurred`` (default ``blur(image)``, 11 x 11 Gaussian of sigma
    5) back to ``image`` for insertion. Pixels outside ``valid`` keep ``image`` in both. The curves' ends (the image,
    all removed, all blurred) are the same for every decision and are scored once; the K * 2 * (steps - 1) inner
    points are batched together, ``batch`` images per call.
    Returns numpy float64: ``fractions`` (steps + 1,) of valid pixels changed, ``deletion`` and ``insertion``
    (K, steps + 1) probabilities, their areas ``deletion_auc`` and ``insertion_auc`` (K,) by the trapezoid rule over
    ``fractions``, and ``steps``, ``mode``.
    """
    c, h, w = image.shape
    region = torch.ones(h, w, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool().cpu()
    ranks = pixel_ranks(saliency, (h, w), valid=region, mode=mode).to(image.device)  # (K, H, W)
    k = len(ranks)
    counts = _step_counts(int(region.sum()), steps)
    base = torch.zeros_like(image) if baseline is None else torch.as_tensor(baseline).to(image).expand_as(image)
    start = blur(image) if blurred is None else torch.as_tensor(blurred).to(image).expand_as(image)
    inside = region.to(image.device)
    start = torch.where(inside, start, image)
    emptied = torch.where(inside, base, image)
    curves = np.empty((2, k, steps + 1))  # deletion, insertion
    with torch.no_grad():
        ends = prob_fn(torch.stack([image, emptied, start])).detach().double().cpu().numpy()  # (3, K)
        curves[0, :, 0], curves[0, :, -1] = ends[0], ends[1]
        curves[1, :, 0], curves[1, :, -1] = ends[2], ends[0]
        points = [(curve, d, s) for curve in (0, 1) for d in range(k) for s in range(1, steps)]
        for first in progress(range(0, len(points), batch), disable=not show_progress, desc="deletion/insertion",
                              unit="batch"):
            chunk = points[first:first + batch]
            curve, decision, step = (torch.tensor(v, device=image.device) for v in zip(*chunk))
            changed = (ranks[decision] < counts.to(image.device)[step][:, None, None])[:, None]  # (B, 1, H, W)
            images = torch.where(curve[:, None, None, None] == 0,
                                 torch.where(changed, base, image), torch.where(changed, image, start))
            probs = prob_fn(images).detach().double().cpu().numpy()  # (B, K)
            for row, (cv, d, s) in enumerate(chunk):
                curves[cv, d, s] = probs[row, d]
    fractions = counts.double().numpy() / max(int(region.sum()), 1)
    return {"fractions": fractions, "deletion": curves[0], "insertion": curves[1],
            "deletion_auc": np.trapezoid(curves[0], fractions, axis=1),
            "insertion_auc": np.trapezoid(curves[1], fractions, axis=1), "steps": steps, "mode": mode}


def random_baseline_areas(prob_fn, image: torch.Tensor, *, repeats: int = 1, seed: int = 0, **kwargs) -> dict:
    """``deletion_insertion`` for random rankings (uniform noise per pixel and decision, from a ``torch.Generator``
    seeded with ``seed``), averaged over ``repeats`` draws: the curves a map must beat. Same keys; the areas of the
    mean curves equal the mean areas (the trapezoid rule is linear). ``kwargs`` go to ``deletion_insertion``."""
    with torch.no_grad():
        k = prob_fn(image[None]).shape[1]
    generator = torch.Generator().manual_seed(seed)
    runs = [deletion_insertion(prob_fn, image, torch.rand(k, *image.shape[1:], generator=generator,
                                                          dtype=torch.float64), **kwargs)
            for _ in range(repeats)]
    mean = {key: np.mean([r[key] for r in runs], axis=0)
            for key in ("deletion", "insertion", "deletion_auc", "insertion_auc")}
    return {**runs[0], **mean, "repeats": repeats, "seed": seed}
