"""What the ViT attends to: attention captured in the real forward pass, CLS maps, rollout, pos-embed cosine.

All maps come from forward hooks on each block's ``attn_drop`` (the post-softmax probabilities), with fused
attention switched off for the explained model only (fused SDPA never materialises the matrix).

Token layout, as timm's ``VisionTransformer._pos_embed`` builds it: [class token] [register tokens] patches, so
``model.num_prefix_tokens`` (0 to 5 and more) is what separates prefix tokens from patches. A model without a
class token (global average pooling) has no CLS row: its map is the mean over the patch queries of their attention
to each patch, i.e. what the pooled feature gathers from each patch in that layer.
"""
import torch
import torch.nn.functional as F

from hw3io import UserError


def patch_grid(model) -> tuple[int, int]:
    return tuple(int(g) for g in model.patch_embed.grid_size)


def has_class_token(model) -> bool:
    return getattr(model, "cls_token", None) is not None


def map_name(model) -> str:
    """What the maps of ``model`` are, for figure titles and tables."""
    return "CLS attention" if has_class_token(model) else "mean patch-query attention (no class token)"


def unfuse_attention(model) -> None:
    """Make every block compute softmax(q k^T * scale) explicitly so hooks can see it."""
    for blk in model.blocks:
        if not (hasattr(blk.attn, "fused_attn") and hasattr(blk.attn, "attn_drop")):
            raise UserError(f"cannot capture the attention of {type(blk.attn).__name__} blocks (timm's Attention "
                            "with fused_attn and attn_drop is needed)")
        blk.attn.fused_attn = False


@torch.no_grad()
def capture_attention(model, x: torch.Tensor, layers=None) -> list[torch.Tensor]:
    """One forward pass; returns the attention probabilities of ``layers`` (default: all), each (B, heads, N, N).

    A forward hook on each block's ``attn_drop`` sees softmax(q k^T * scale) (dropout is the identity in eval);
    the hooks are removed afterwards, leaving the model as we found it."""
    unfuse_attention(model)
    depth = len(model.blocks)
    layers = range(depth) if layers is None else [l % depth for l in layers]
    captured = {}
    handles = [model.blocks[l].attn.attn_drop.register_forward_hook(
        lambda module, args, output, l=l: captured.__setitem__(l, output)) for l in layers]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[l] for l in layers]


def query_to_patches(attn: torch.Tensor, num_prefix_tokens: int, class_token: bool = True) -> torch.Tensor:
    """(..., N, N) -> (..., P): the CLS query's (token 0's) attention over the patch keys; without a class token,
    the mean over the patch queries (token 0 would be a register or a patch)."""
    if class_token:
        return attn[..., 0, num_prefix_tokens:]
    return attn[..., num_prefix_tokens:, num_prefix_tokens:].mean(-2)


def rollout(attns: list[torch.Tensor], num_prefix_tokens: int, class_token: bool = True,
            normalise_rows: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): head-mean, add the residual identity, normalise ROWS, multiply
    through the layers, first layer first. Returns (B, P): the rolled-out matrix's CLS row (or mean patch row, see
    ``query_to_patches``) over patch tokens. ``normalise_rows=False`` is the product Chefer et al.'s code rolls
    their attribution out with (``vitpet.lrp``)."""
    result = None
    for a in attns:
        a = a.mean(1)  # (B, N, N)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        if normalise_rows:
            a = a / a.sum(-1, keepdim=True)  # each query's row sums to 1
        result = a if result is None else a @ result
    return query_to_patches(result, num_prefix_tokens, class_token)


def to_grid(vec: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., P) -> (..., gh, gw), row-major like timm's patch order."""
    return vec.reshape(*vec.shape[:-1], *grid)


def all_layer_maps(model, x: torch.Tensor) -> torch.Tensor:
    """Every block's per-head maps for a batch, as ``attention_maps(heads=True)`` gives one: (B, layers, heads, gh,
    gw)."""
    npt, cls = model.num_prefix_tokens, has_class_token(model)
    grid = patch_grid(model)
    return torch.stack([to_grid(query_to_patches(a, npt, cls), grid) for a in capture_attention(model, x)], 1)


def attention_maps(model, x: torch.Tensor, *, layer: int = -1, heads: bool = False, use_rollout: bool = False):
    """Maps on the patch grid for a batch: (B, gh, gw), or (B, heads, gh, gw) with ``heads``."""
    npt, cls = model.num_prefix_tokens, has_class_token(model)
    grid = patch_grid(model)
    if use_rollout:
        return to_grid(rollout(capture_attention(model, x), npt, cls), grid)
    (attn,) = capture_attention(model, x, [layer])
    per_head = to_grid(query_to_patches(attn, npt, cls), grid)
    return per_head if heads else per_head.mean(1)


def patch_pos_embed(model) -> torch.Tensor:
    """(P, D) positional embeddings of the patch tokens: with ``no_embed_class`` (DINOv2 registers, DeiT-3,
    big_vision) pos_embed covers the patches only; otherwise its first ``num_prefix_tokens`` rows belong to the
    prefix tokens and are dropped."""
    if getattr(model, "pos_embed", None) is None:
        raise UserError(f"{type(model).__name__} has no learned absolute position embeddings (pos_embed) to plot")
    pe = model.pos_embed[0]
    if not getattr(model, "no_embed_class", False):
        pe = pe[model.num_prefix_tokens:]
    grid = patch_grid(model)
    if pe.shape[0] != grid[0] * grid[1]:
        raise UserError(f"pos_embed has {pe.shape[0]} patch rows, not one per patch of the {grid[0]}x{grid[1]} grid")
    return pe


@torch.no_grad()
def pos_embed_cosine(model) -> torch.Tensor:
    """(P, P) cosine similarity of every patch position embedding with every other."""
    pe = F.normalize(patch_pos_embed(model).float(), dim=-1)
    return pe @ pe.T
