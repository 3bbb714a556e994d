"""Greedy captioning and per-token cross-attention.

``greedy_decode`` runs backbone + encoder once per image and re-runs only the small decoder on the growing
prefix; ``cross_attention`` then gets every token's map from one decoder pass over the final caption. The
decoder is causal, so query position t sees exactly what it saw when it generated token t+1: these maps equal
the step-by-step ones. ``naive_decode`` is the official predict loop (everything recomputed at 128 positions
for every token), kept as the reference for tests and the benchmark.
"""
from dataclasses import dataclass

import torch


@dataclass
class Decoded:
    ids: list[int]              # generated word pieces, [CLS] and [SEP] excluded
    ended: bool                 # True when [SEP] was generated (False: stopped at max length)
    maps: torch.Tensor | None   # (T, H', W') or (T, heads, H', W'); T = len(ids) + ended
    grid: tuple[int, int]       # (H', W') of the backbone's real feature map


@torch.no_grad()
def greedy_decode(model, images, mask, start_id, end_id, max_len=128, stop_at_end=True):
    """Token ids for one image. With ``stop_at_end=False`` decoding always runs to ``max_len`` positions (the
    benchmark uses this so both loops do the same work). Returns (ids, ended, encoded image)."""
    memory, fmask, pos, grid = model.encode_image(images, mask)
    ids = torch.tensor([[start_id]], device=images.device)
    ended = False
    while ids.shape[1] < max_len:
        logits, _ = model.decode(ids, None, memory, fmask, pos, last_only=True)
        nxt = logits[0, -1].argmax()
        if stop_at_end and nxt.item() == end_id:
            ended = True
            break
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return ids[0, 1:].tolist(), ended, (memory, fmask, pos, grid)


@torch.no_grad()
def greedy_decode_batch(model, images, mask, start_id, end_id, max_len=128) -> list[tuple[list[int], bool]]:
    """``greedy_decode`` for a batch of B images at once: (ids, ended) per image. Tokens are those of one image
    at a time as long as the images share one size (no padding: padded pixels would reach valid features through
    the convolutions); callers group by size."""
    memory, fmask, pos, _ = model.encode_image(images, mask)
    B = images.shape[0]
    ids = torch.full((B, 1), start_id, device=images.device)
    ended = torch.zeros(B, dtype=torch.bool, device=images.device)
    lengths = torch.full((B,), max_len - 1, device=images.device)
    while ids.shape[1] < max_len and not ended.all():
        logits, _ = model.decode(ids, None, memory, fmask, pos, last_only=True)
        nxt = logits[:, -1].argmax(-1)
        newly = ~ended & (nxt == end_id)
        lengths[newly] = ids.shape[1] - 1
        ended |= newly
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return [(ids[b, 1:1 + int(lengths[b])].tolist(), bool(ended[b])) for b in range(B)]


@torch.no_grad()
def cross_attention(model, encoded, start_id, ids, ended, layer=-1, heads=False):
    """Cross-attention of every query that produced a token: position k-1 for token k, and position n for the
    final [SEP] when it was generated. Returns (T, H', W') or (T, heads, H', W') with T = len(ids) + ended."""
    memory, fmask, pos, grid = encoded
    seq = torch.tensor([[start_id] + list(ids)], device=memory.device)
    _, attn = model.decode(seq, None, memory, fmask, pos, attn_layer=layer, attn_mode="heads" if heads else "mean")
    attn = attn[0]  # (T+1, S) or (heads, T+1, S): query positions 0..n
    T = len(ids) + int(ended)
    if heads:
        return attn[:, :T].transpose(0, 1).reshape(T, attn.shape[0], *grid)
    return attn[:T].reshape(T, *grid)


def caption_image(model, images, mask, start_id, end_id, max_len=128, layer=-1, heads=False) -> Decoded:
    ids, ended, encoded = greedy_decode(model, images, mask, start_id, end_id, max_len)
    maps = cross_attention(model, encoded, start_id, ids, ended, layer, heads)
    return Decoded(ids, ended, maps.cpu(), encoded[3])


@torch.no_grad()
def naive_decode(model, images, mask, start_id, end_id, pad_id=0, max_len=128, stop_at_end=True, layer=None,
                 max_tokens=None):
    """The official loop: a 128-slot caption with a padding mask, the whole model re-run for every token.
    With ``layer`` it also records, at each step, the cross-attention row of the query that made the token;
    ``max_tokens`` stops early (the benchmark fixes the caption length this way).
    Returns (ids, ended, maps (T, H', W') or None)."""
    caption = torch.full((1, max_len), pad_id, dtype=torch.long, device=images.device)
    padding = torch.ones((1, max_len), dtype=torch.bool, device=images.device)
    caption[:, 0], padding[:, 0] = start_id, False
    rows, ended, n = [], False, 0
    for i in range(min(max_len - 1, max_tokens or max_len)):
        features, fmask, pos = model.backbone(images, mask)
        memory, fmask, pos = model.transformer.encode(model.input_proj(features), fmask, pos)
        logits, attn = model.decode(caption, padding, memory, fmask, pos, attn_layer=layer)
        if layer is not None:
            rows.append(attn[0, i])
        nxt = logits[0, i].argmax()
        if stop_at_end and nxt.item() == end_id:
            ended = True
            break
        caption[0, i + 1], padding[0, i + 1] = nxt, False
        n = i + 1
    ids = caption[0, 1:n + 1].tolist()
    maps = torch.stack(rows).reshape(len(rows), *features.shape[-2:]) if rows else None
    return ids, ended, maps
