"""The model randomisation check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that explains a model must change when the model's weights are replaced by random ones. Compute each map
twice, once with the trained model and once with ``randomized_copy(model, seed)`` (same architecture, fresh
weights), and compare them with ``rank_correlation``: near 1 means the map shows the image, not the model (an edge
detector passes every other test; this one catches it).
"""
import copy

import numpy as np
import torch
from torch import nn

from hw3io.errors import UserError

TOKEN_STD = 0.02  # the normal init ViT and BERT give tokens and embeddings, for parameters no reset covers


def _as_numpy(maps) -> np.ndarray:
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().double().cpu().numpy()
    return np.asarray(maps, dtype=np.float64)


def rank_correlation(maps_a, maps_b) -> float:
    """Mean over the N map pairs of Spearman's rank correlation between ``maps_a[i]`` and ``maps_b[i]``, each
    flattened; (N, ...) tensors or arrays of equal shape. NaN when a map is constant (no ranking to compare)."""
    try:
        from scipy.stats import spearmanr  # lazily: a GPU machine that only computes maps may lack scipy
    except ImportError:
        raise UserError("the rank correlation needs the Python package 'scipy' (pip install scipy)") from None
    a, b = _as_numpy(maps_a), _as_numpy(maps_b)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} and {b.shape}")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return float(np.mean([spearmanr(x, y).statistic for x, y in zip(a, b)]))


def randomized_copy(model: nn.Module, seed: int) -> nn.Module:
    """A deepcopy of ``model`` with every parameter drawn afresh: each module's own ``reset_parameters`` where it
    has one (its init, so layer scales stay sensible), else normal(0, ``TOKEN_STD``) for the parameters it holds
    directly (ViT's cls token and position embedding). Seeded, and the caller's random state is left as it was. An
    untrained model built right after ``torch.manual_seed(seed)`` can get its very weights back: use another seed."""
    randomized = copy.deepcopy(model)
    devices = sorted({p.device.index or 0 for p in randomized.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in randomized.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
            else:
                for parameter in module.parameters(recurse=False):
                    nn.init.normal_(parameter, std=TOKEN_STD)
    return randomized
