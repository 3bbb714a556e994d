"""What the ViT attends to: attention captured in the real forward pass, CLS maps, rollout, pos-embed cosine.

All maps come from forward hooks on each block's ``attn_drop`` (the post-softmax probabilities), with fused
attention switched off for the explained model only (fused SDPA never materialises the matrix).
"""
import torch
import torch.nn.functional as F


def patch_grid(model) -> tuple[int, int]:
    return tuple(int(g) for g in model.patch_embed.grid_size)


def unfuse_attention(model) -> None:
    """Make every block compute softmax(q k^T * scale) explicitly so hooks can see it."""
    for blk in model.blocks:
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


def cls_to_patches(attn: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(B, heads, N, N) -> (B, heads, P): the CLS query's attention over the patch keys."""
    return attn[:, :, 0, num_prefix_tokens:]


def rollout(attns: list[torch.Tensor], num_prefix_tokens: int) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): head-mean, add the residual identity, normalise ROWS, multiply
    through the layers. Returns (B, P): CLS row of the rolled-out matrix over patch tokens."""
    result = None
    for a in attns:
        a = a.mean(1)  # (B, N, N)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(-1, keepdim=True)  # each query's row sums to 1
        result = a if result is None else a @ result
    return result[:, 0, num_prefix_tokens:]


def to_grid(vec: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., P) -> (..., gh, gw), row-major like timm's patch order."""
    return vec.reshape(*vec.shape[:-1], *grid)


def attention_maps(model, x: torch.Tensor, *, layer: int = -1, heads: bool = False, use_rollout: bool = False):
    """Maps on the patch grid for a batch: (B, gh, gw), or (B, heads, gh, gw) with ``heads``."""
    npt = model.num_prefix_tokens
    grid = patch_grid(model)
    if use_rollout:
        return to_grid(rollout(capture_attention(model, x), npt), grid)
    (attn,) = capture_attention(model, x, [layer])
    per_head = to_grid(cls_to_patches(attn, npt), grid)
    return per_head if heads else per_head.mean(1)


def patch_pos_embed(model) -> torch.Tensor:
    """(P, D) positional embeddings of the patch tokens (the class token's dropped when it has one)."""
    pe = model.pos_embed[0]
    return pe if getattr(model, "no_embed_class", False) else pe[model.num_prefix_tokens:]


@torch.no_grad()
def pos_embed_cosine(model) -> torch.Tensor:
    """(P, P) cosine similarity of every patch position embedding with every other."""
    pe = F.normalize(patch_pos_embed(model).float(), dim=-1)
    return pe @ pe.T
