"""High-norm patch tokens: why a pretrained ViT's CLS attention can peak on a background patch.

Darcet et al., "Vision Transformers Need Registers" (ICLR 2024), find that large, long-trained ViTs (DINOv2,
OpenCLIP, DeiT-III) turn a few redundant patches, mostly background, into tokens whose output norm is an outlier
(their norm histograms are bimodal: in ViT-L normal tokens stay below ~100 and outliers exceed ~150, roughly 10x
the typical norm; about 2% of the tokens). Those tokens hold global information rather than their patch's content, and
the CLS token attends to them, so a map that peaks there says nothing about where the object is.

Norms are measured on a block's OUTPUT, the residual stream, before the model's final norm: LayerNorm divides every
token by its own standard deviation, so after it each norm is ~sqrt(D) scaled by the affine weights (exactly
sqrt(D) for weight 1 and bias 0) and the outlier's scale is mostly gone; intermediate blocks have no final norm to
pass through either. Note that layer L's attention reads keys made from block L-1's output; high-norm tokens persist
from the layer where they appear to the end, so the last block's output (the default) shows the same ones.
"""
from contextlib import contextmanager

import torch

from .attention import patch_grid

# A figure's one line when the map's peak sits on a flagged patch.
HIGH_NORM_NOTE = "peak on a high-norm token (Darcet et al. 2024): it carries global, not local, information"

FACTOR = 2.0  # at least this many times the image's median patch norm (outliers sit at ~10x; the bulk well under 2x)
MADS = 5.0  # and this many robust standard deviations (1.4826 * MAD) above the median


@contextmanager
def recording_norms(model, layer: int = -1):
    """Hook block ``layer``: every forward pass run inside the ``with`` appends its (B, P) patch-token norms to the
    yielded list, so norms can come from the same pass that captures attention. The hook is removed on exit."""
    npt = model.num_prefix_tokens
    recorded = []

    def hook(module, args, output):
        # timm's token layout: [class token] [register tokens] patches
        recorded.append(output.detach()[:, npt:].float().norm(dim=-1))  # (B, P)

    handle = model.blocks[layer].register_forward_hook(hook)
    try:
        yield recorded
    finally:
        handle.remove()


@torch.no_grad()
def token_norms(model, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """(B, P): the L2 norm of each patch token in the output of block ``layer`` (before the final norm), from one
    forward pass; patches in timm's row-major order over ``patch_grid(model)``."""
    with recording_norms(model, layer) as recorded:
        model(x)
    (norms,) = recorded
    gh, gw = patch_grid(model)
    if norms.shape[-1] != gh * gw:
        raise ValueError(f"{norms.shape[-1]} patch tokens after {model.num_prefix_tokens} prefix tokens, "
                         f"not one per patch of the {gh}x{gw} grid")
    return norms


def high_norm_patches(norms: torch.Tensor, factor: float = FACTOR, mads: float = MADS) -> torch.Tensor:
    """(B, P) norms -> (B, P) bool: patches whose norm is an outlier among that image's patch norms.

    A patch is flagged when its norm exceeds BOTH ``factor`` x the median and the median + ``mads`` x 1.4826 x MAD
    (median absolute deviation; 1.4826 makes it the standard deviation for a Gaussian bulk). Median and MAD ignore
    up to half the sample, so the ~2% of outliers Darcet et al. count do not move the threshold they are judged by.
    The MAD rule keeps an image whose ordinary norms spread widely from being flagged at 2x the median (5 sigma:
    well under one false flag in a million Gaussian tokens); the ratio rule keeps an image whose norms are nearly
    equal (MAD ~ 0) from having every slightly larger token flagged. A factor of 2 sits between the bulk (normal
    tokens below ~100) and the outliers (above ~150, ~10x typical) of the paper's bimodal histograms."""
    median = norms.median(dim=-1, keepdim=True).values  # (B, 1)
    mad = (norms - median).abs().median(dim=-1, keepdim=True).values  # (B, 1)
    threshold = torch.maximum(factor * median, median + mads * 1.4826 * mad)
    return norms > threshold


def peak_on_high_norm(attn_map, flags) -> bool:
    """Whether the map's maximum (first one on ties) falls on a flagged patch; ``attn_map`` and ``flags`` are one
    image's (P,) or (gh, gw), tensors or arrays."""
    attn_map, flags = torch.as_tensor(attn_map).flatten(), torch.as_tensor(flags).flatten()
    if attn_map.shape != flags.shape:
        raise ValueError(f"a map of {attn_map.numel()} patches with {flags.numel()} flags")
    return bool(flags[attn_map.argmax()])


def peak_note(attn_map, flags) -> str:
    """``HIGH_NORM_NOTE`` when the peak is on a high-norm patch, else an empty string (for a figure's title)."""
    return HIGH_NORM_NOTE if peak_on_high_norm(attn_map, flags) else ""
