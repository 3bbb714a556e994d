"""Every way this repository explains a caption, behind one call: ``explain_maps(method, ...)`` -> (T, H', W'), one
map per tile, so that the pipeline writes the same files for each.

- attention: the homework's maps, raw cross-attention of one decoder layer (head mean, or per head);
- relevance: gradient-weighted attention relevance through every layer (``catr.relevance``);
- rise, occlusion: the image perturbed, each token's log-probability re-scored (``catr.relevance``'s score), through
  the shared ``explanations`` package.

The last three explain the decision the tiles show: token k's log-probability at the query that generated it.
"""
from dataclasses import dataclass

import torch

from hw3io import UserError
from .decode import cross_attention
from .relevance import caption_score_fn, caption_sequence, relevance_maps

METHODS = ("attention", "relevance", "rise", "occlusion")
PERTURBATION = ("rise", "occlusion")


@dataclass
class ExplainOptions:
    method: str = "attention"  # one of METHODS; attention is the homework's (and hw3_2.sh's) map
    masks: int = 1000          # rise: random masks averaged
    cells: int = 8             # rise: cells per side of a mask's coarse grid; occlusion: patches per longer side
    seed: int = 0              # rise: the masks' seed (the same seed draws the same masks)

    def check(self) -> None:
        """Bad options, or a method whose package is missing, fail here: before any image is read."""
        if self.method not in METHODS:
            raise UserError(f"--explain must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.masks < 1 or self.cells < 1:
            raise UserError(f"--masks and --cells must be at least 1, not {self.masks} and {self.cells}")
        if self.method in PERTURBATION:
            perturbation()

    def meta(self, size: tuple[int, int]) -> dict:
        """What the <stem>.json records about how the maps of an image of ``size`` (H, W) were made."""
        if self.method == "rise":
            return dict(method="rise", masks=self.masks, cells=self.cells, seed=self.seed)
        if self.method == "occlusion":
            return dict(method="occlusion", cells=self.cells, cell=occlusion_cell(size, self.cells))
        return dict(method=self.method)


def occlusion_cell(size: tuple[int, int], cells: int) -> int:
    """Side in pixels of an occluding patch: the longer side of an (H, W) image over ``cells``."""
    return max(1, -(-max(size) // cells))


def perturbation():
    """``explanations.perturbation``'s rise, occlusion and to_grid (a package shared by both problems)."""
    try:
        from explanations.perturbation import occlusion, rise, to_grid
    except ImportError as e:
        raise UserError(f"--explain rise and occlusion need the explanations package ({e})") from None
    return rise, occlusion, to_grid


def explain_maps(method: str, model, image, mask, ids: list[int], ended: bool, start_id: int, end_id: int, *,
                 encoded=None, layer=-1, heads=False, masks=1000, cells=8, seed=0, show_progress=False
                 ) -> torch.Tensor:
    """Maps of one image's caption: ids (generated word pieces), ``ended`` ([SEP] generated: its tile comes last).
    image (1, 3, H, W), mask (1, H, W); ``encoded``: the image's ``encode_image`` output when the caller has it.
    Returns (T, H', W'), T = len(ids) + ended; attention with ``heads``: (T, heads, H', W')."""
    if method == "attention":
        if encoded is None:
            with torch.no_grad():
                encoded = model.encode_image(image, mask)
        return cross_attention(model, encoded, start_id, ids, ended, layer, heads)
    seq = caption_sequence(start_id, end_id, ids, ended)
    if method == "relevance":
        return relevance_maps(model, image, mask, seq)
    if method not in PERTURBATION:
        raise UserError(f"unknown explanation method {method!r} (one of {', '.join(METHODS)})")
    rise, occlusion, to_grid = perturbation()
    score_fn = caption_score_fn(model, mask, seq)
    valid = ~mask[0]  # the image's real pixels (a single image is not padded, but its mask says so)
    if method == "rise":
        pixels = rise(score_fn, image[0], masks=masks, cells=cells, seed=seed, valid=valid,
                      show_progress=show_progress).maps  # (K, H, W)
    else:
        pixels = occlusion(score_fn, image[0], cell=occlusion_cell(tuple(image.shape[-2:]), cells), valid=valid,
                           show_progress=show_progress)
    grid = encoded[3] if encoded is not None else _grid(model, image, mask)
    return torch.as_tensor(to_grid(pixels, grid)).float()


@torch.no_grad()
def _grid(model, image, mask) -> tuple[int, int]:
    return tuple(model.backbone(image, mask)[0].shape[-2:])
