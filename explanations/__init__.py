"""Explanations both problems share, and the tests of whether to trust them; no model package owns this one.

Everything here is model-agnostic: a model enters only as a function of a batch of normalised images, ``score_fn``
(scores, for building maps) or ``prob_fn`` (probabilities, for judging them), returning (B, K) for K decisions (a
class; a caption's tokens). ``perturbation`` builds black-box maps (RISE, occlusion) and pools pixel maps onto a
token grid (``to_grid``) so they sit beside attention maps; ``faithfulness`` scores any map by deletion and
insertion against a random ranking; ``sanity`` holds the model randomisation check (rank correlation of maps from
the trained and a re-initialised model); ``pointing`` plays the pointing game (strict, TorchRay's tolerance, mass
in box) on targets that ``targets`` builds (boxes, COCO masks, EXIF-turned). Names are imported lazily, as in
``hw3io``.
"""
from hw3io import lazy_getattr

_WHERE = {
    "rise": "perturbation", "rise_masks": "perturbation", "RiseMaps": "perturbation",
    "occlusion": "perturbation", "to_grid": "perturbation",
    "deletion_insertion": "faithfulness", "random_baseline_areas": "faithfulness", "blur": "faithfulness",
    "pixel_ranks": "faithfulness",
    "rank_correlation": "sanity", "randomized_copy": "sanity",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE, globals())
