"""Captioning (greedy or beam search) and per-token cross-attention.

Backbone and encoder run once per image; the decoder then runs one position per token with a cache
(``Transformer.step``: each layer's self-attention keys and values so far, the memory's keys and values projected
once), so a caption of n tokens costs O(n) decoder work, not O(n^2). ``cross_attention`` then gets every token's
map from one decoder pass over the chosen caption. The decoder is causal, so query position t sees exactly what it
saw when it generated token t+1: these maps equal the step-by-step ones. ``naive_decode`` is the official predict
loop (everything recomputed at 128 positions for every token), kept as the reference for tests and the benchmark.
"""
from dataclasses import dataclass

import torch


@dataclass
class Decoded:
    ids: list[int]              # generated word pieces, [CLS] and [SEP] excluded
    ended: bool                 # True when [SEP] was generated (False: stopped at max length)
    maps: torch.Tensor | None   # (T, H', W') or (T, heads, H', W'); T = len(ids) + ended
    grid: tuple[int, int]       # (H', W') of the backbone's real feature map
    layers: torch.Tensor | None = None  # (L, T, heads, H', W'): every decoder layer's, kept with --all-layers


@torch.no_grad()
def greedy_decode(model, images, mask, start_id, end_id, max_len=128, stop_at_end=True):
    """Token ids for one image. With ``stop_at_end=False`` decoding always runs to ``max_len`` positions (the
    benchmark uses this so both loops do the same work). Returns (ids, ended, encoded image)."""
    encoded = model.encode_image(images, mask)
    cache = model.transformer.start_cache(*encoded[:3])
    ids, ended = [], False
    token = torch.tensor([start_id], device=images.device)
    while len(ids) + 1 < max_len:
        token = model.step(token, cache).argmax(-1)
        if stop_at_end and token.item() == end_id:
            ended = True
            break
        ids.append(token.item())
    return ids, ended, encoded


@torch.no_grad()
def greedy_decode_batch(model, images, mask, start_id, end_id, max_len=128) -> list[tuple[list[int], bool]]:
    """``greedy_decode`` for a batch of B images at once: (ids, ended) per image. Tokens are those of one image
    at a time as long as the images share one size (no padding: padded pixels would reach valid features through
    the convolutions); callers group by size."""
    return greedy_decode_encoded(model, model.encode_image(images, mask), start_id, end_id, max_len)


def image_of(encoded, b: int):
    """Image ``b`` of a batch's ``encode_image`` output, as ``cross_attention`` takes it."""
    memory, fmask, pos, grid = encoded
    return memory[:, b:b + 1], fmask[b:b + 1], pos[:, b:b + 1], grid


@torch.no_grad()
def greedy_decode_encoded(model, encoded, start_id, end_id, max_len=128) -> list[tuple[list[int], bool]]:
    """Greedy decoding of a batch already through ``encode_image``: (ids, ended) per image."""
    memory, fmask, pos, _ = encoded
    cache = model.transformer.start_cache(memory, fmask, pos)
    B, device = memory.shape[1], memory.device
    tokens = [torch.full((B,), start_id, device=device)]
    ended = torch.zeros(B, dtype=torch.bool, device=device)
    lengths = torch.full((B,), max_len - 1, device=device)
    while len(tokens) < max_len and not ended.all():
        nxt = model.step(tokens[-1], cache).argmax(-1)
        newly = ~ended & (nxt == end_id)
        lengths[newly] = len(tokens) - 1
        ended |= newly
        tokens.append(nxt)
    ids = torch.stack(tokens[1:], 1).tolist() if len(tokens) > 1 else [[] for _ in range(B)]
    return [(ids[b][:int(lengths[b])], bool(ended[b])) for b in range(B)]


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's (Wu et al., 2016): ((5 + length) / 6) ** alpha; a finished caption's score is its summed
    log-probability divided by it (alpha 0: plain sum, which favours short captions)."""
    return ((5 + length) / 6) ** alpha


def beam_search(step, start_id, end_id, beam: int, max_len: int, alpha: float, device="cpu"):
    """Beam search over ``step(tokens (K,), parents (K,)) -> log-probabilities (K, vocab)``, where ``parents`` are
    the indices of the beams (of the previous call) that ``tokens`` extend; the caller keeps its cache in step.

    ``beam`` captions are extended per step and the ``beam`` best finished ones kept; a caption ends with
    ``end_id`` (counted in its length) or at ``max_len`` positions, [CLS] included. The search stops when no live
    caption can still beat the worst kept one: its log-probability only falls, and divided by the largest length
    penalty it could reach it is an upper bound. Returns (ids, ended) of the best by length-normalised score.
    With ``beam`` 1 and ``alpha`` 0 this is greedy decoding."""
    prefixes, scores = [[]], torch.zeros(1, device=device)
    tokens, parents = torch.tensor([start_id], device=device), torch.zeros(1, dtype=torch.long, device=device)
    finished = []  # (normalised score, ids, ended), best first
    best_possible = length_penalty(max_len - 1, alpha)
    while True:
        logp = step(tokens, parents)  # (K, V)
        at_max = len(prefixes[0]) + 2 >= max_len  # this token fills the last position
        total = (scores[:, None] + logp).flatten()
        top = total.topk(min(2 * beam, total.numel()))
        keep = []
        for value, flat in zip(top.values.tolist(), top.indices.tolist()):
            k, token = divmod(flat, logp.shape[1])
            if token == end_id or at_max:
                ids = prefixes[k] + ([] if token == end_id else [token])
                finished.append((value / length_penalty(len(prefixes[k]) + 1, alpha), ids, token == end_id))
            else:
                keep.append((k, token, value))
                if len(keep) == beam:
                    break
        finished = sorted(finished, key=lambda f: f[0], reverse=True)[:beam]
        if not keep or (len(finished) == beam and keep[0][2] / best_possible <= finished[-1][0]):
            break
        parents = torch.tensor([k for k, _, _ in keep], device=device)
        tokens = torch.tensor([t for _, t, _ in keep], device=device)
        scores = torch.tensor([v for _, _, v in keep], device=device)
        prefixes = [prefixes[k] + [t] for k, t, _ in keep]
    return finished[0][1], finished[0][2]


@torch.no_grad()
def beam_decode(model, images, mask, start_id, end_id, beam=3, max_len=128, alpha=1.0):
    """Beam search for one image on the cached decoder. Returns (ids, ended, encoded image)."""
    encoded = model.encode_image(images, mask)
    state = {"cache": model.transformer.start_cache(*encoded[:3])}

    def step(tokens, parents):
        cache = state["cache"] = state["cache"].select(parents)
        return torch.log_softmax(model.step(tokens, cache).float(), -1)

    ids, ended = beam_search(step, start_id, end_id, beam, max_len, alpha, images.device)
    return ids, ended, encoded


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


def caption_image(model, images, mask, start_id, end_id, max_len=128, layer=-1, heads=False, beam=1,
                  alpha=1.0) -> Decoded:
    """Greedy (``beam`` 1, the default) or beam search with GNMT length penalty ``alpha``; then the maps of the
    chosen caption in one pass."""
    if beam > 1:
        ids, ended, encoded = beam_decode(model, images, mask, start_id, end_id, beam, max_len, alpha)
    else:
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
