"""CATR's transformer: pre-norm encoder over image features, causal pre-norm decoder over caption tokens.

Differences from ``torch.nn.Transformer`` (as in DETR): positions are added to queries and keys inside every
attention layer (image sine positions on the memory side, the learned token positions on the query side),
the decoder owns BERT-style word + position embeddings, and a decoder layer can return its cross-attention
probabilities. Tensors are sequence-first, (L, B, C), like the original. Only the pre-norm variant the
released checkpoints use is implemented.

With an ``AttentionRecord`` passed to ``encode``/``decode``, every attention is computed explicitly instead of by
``nn.MultiheadAttention`` (same weights, same result up to float rounding) and its probabilities are kept with their
autograd graph, so that gradients with respect to them can be taken (``catr.relevance``). Without one (the default)
nothing changes.

``Transformer.step`` decodes one position at a time with a ``DecoderCache``: each layer's self-attention keys and
values of the positions so far, and the memory's cross-attention keys and values, projected once per image. It
computes what ``decode`` computes for the last position (the decoder is causal), in O(T) per token instead of
O(T^2).
"""
import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AttentionRecord:
    """Attention probabilities (B, heads, L, S) of every layer, in order, still in the autograd graph."""
    encoder: list = field(default_factory=list)     # image-image, one per encoder layer
    self_attn: list = field(default_factory=list)   # text-text (causal), one per decoder layer
    cross_attn: list = field(default_factory=list)  # text-image, one per decoder layer


def attention(mha: nn.MultiheadAttention, query, key, value, attn_mask=None, key_padding_mask=None, weights=None,
              record: list | None = None):
    """``mha(query, key, value)``: (output (L, B, C), probabilities or None); ``weights`` "mean" or "heads" asks
    for them, (B, L, S) or (B, heads, L, S). Masks are boolean, True where attending is not allowed.

    With ``record`` the attention is computed here instead, from ``mha``'s weights, and its probabilities
    (B, heads, L, S) are appended to ``record``: ``nn.MultiheadAttention`` returns them as a view taken after the
    output was computed, which no gradient flows through. No attention dropout on this path (it explains a model in
    eval mode)."""
    if record is None:
        return mha(query=query, key=key, value=value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                   need_weights=weights is not None, average_attn_weights=weights == "mean")
    L, B, C = query.shape
    h = mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    q = _split_heads(F.linear(query.transpose(0, 1), w[:C], b[:C]), h)              # (B, h, L, hd)
    k = _split_heads(F.linear(key.transpose(0, 1), w[C:2 * C], b[C:2 * C]), h)      # (B, h, S, hd)
    v = _split_heads(F.linear(value.transpose(0, 1), w[2 * C:], b[2 * C:]), h)      # (B, h, S, hd)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)                        # (B, h, L, S)
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask, float("-inf"))
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None], float("-inf"))
    probs = scores.softmax(-1)
    if torch.is_grad_enabled() and not probs.requires_grad:
        probs.requires_grad_()  # nothing before it needs a gradient (frozen weights): still differentiable from here
    record.append(probs)
    out = mha.out_proj((probs @ v).transpose(1, 2).reshape(B, L, C)).transpose(0, 1)  # (L, B, C)
    return out, None if weights is None else probs.mean(1) if weights == "mean" else probs


class TransformerEncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src, src_key_padding_mask, pos, record: AttentionRecord | None = None):
        src2 = self.norm1(src)
        q = k = src2 + pos
        src = src + self.dropout1(attention(self.self_attn, q, k, src2, key_padding_mask=src_key_padding_mask,
                                            record=None if record is None else record.encoder)[0])
        src2 = self.norm2(src)
        return src + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(src2)))))


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask, pos, query_pos,
                cross_attn: str | None = None, record: AttentionRecord | None = None):
        """``cross_attn``: None, "mean" or "heads" -> also return the cross-attention probabilities,
        (B, T, S) or (B, heads, T, S)."""
        tgt2 = self.norm1(tgt)
        q = k = tgt2 + query_pos
        tgt = tgt + self.dropout1(attention(self.self_attn, q, k, tgt2, tgt_mask, tgt_key_padding_mask,
                                            record=None if record is None else record.self_attn)[0])
        tgt2 = self.norm2(tgt)
        tgt2, weights = attention(self.multihead_attn, tgt2 + query_pos, memory + pos, memory,
                                  key_padding_mask=memory_key_padding_mask, weights=cross_attn,
                                  record=None if record is None else record.cross_attn)
        tgt = tgt + self.dropout2(tgt2)
        tgt2 = self.norm3(tgt)
        tgt = tgt + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(tgt2)))))
        return tgt, weights

    def project_memory(self, memory, pos):
        """memory, pos (S, B, C) -> the cross-attention's keys and values, (B, heads, S, C/heads) each."""
        C = memory.shape[-1]
        w, b = self.multihead_attn.in_proj_weight, self.multihead_attn.in_proj_bias
        k = F.linear((memory + pos).transpose(0, 1), w[C:2 * C], b[C:2 * C])
        v = F.linear(memory.transpose(0, 1), w[2 * C:], b[2 * C:])
        return _split_heads(k, self.multihead_attn.num_heads), _split_heads(v, self.multihead_attn.num_heads)

    def step(self, x, query_pos, cache: list, memory_kv, memory_allowed):
        """One new position: x (B, C), query_pos (C,). ``cache`` holds [keys, values] (B, heads, t, C/heads) of the
        positions before it and grows by this one; ``memory_allowed`` (B, 1, 1, S) is False on padding."""
        B, C = x.shape
        h = self.self_attn.num_heads
        x2 = self.norm1(x)
        w, b = self.self_attn.in_proj_weight, self.self_attn.in_proj_bias
        q, k = F.linear(x2 + query_pos, w[:2 * C], b[:2 * C]).chunk(2, dim=-1)
        v = F.linear(x2, w[2 * C:], b[2 * C:])
        k, v = _split_heads(k[:, None], h), _split_heads(v[:, None], h)  # (B, h, 1, hd)
        cache[:] = [k, v] if cache[0] is None else [torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)]
        a = F.scaled_dot_product_attention(_split_heads(q[:, None], h), cache[0], cache[1])  # earlier ones only
        x = x + self.self_attn.out_proj(a.reshape(B, C))
        x2 = self.norm2(x)
        w, b = self.multihead_attn.in_proj_weight, self.multihead_attn.in_proj_bias
        q = _split_heads(F.linear(x2 + query_pos, w[:C], b[:C])[:, None], h)
        a = F.scaled_dot_product_attention(q, *memory_kv, attn_mask=memory_allowed)
        x = x + self.multihead_attn.out_proj(a.reshape(B, C))
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


def _split_heads(x, heads):
    """(B, T, C) -> (B, heads, T, C / heads)."""
    B, T, C = x.shape
    return x.view(B, T, heads, C // heads).transpose(1, 2)


@dataclass
class DecoderCache:
    """What ``Transformer.step`` keeps between positions, for B captions (beams) at once."""
    self_kv: list          # per layer [keys, values] (B, heads, t, C/heads), None before the first step
    memory_kv: list        # per layer (keys, values) (B, heads, S, C/heads)
    memory_allowed: torch.Tensor  # (B, 1, 1, S), False on the image's padding
    length: int = 0        # positions decoded so far

    def select(self, index: torch.Tensor) -> "DecoderCache":
        """The cache of captions ``index`` (B',): beam search keeps the beams it extends."""
        pick = lambda t: t.index_select(0, index)  # noqa: E731
        return DecoderCache([[None, None] if k is None else [pick(k), pick(v)] for k, v in self.self_kv],
                            [(pick(k), pick(v)) for k, v in self.memory_kv], pick(self.memory_allowed), self.length)


class TransformerEncoder(nn.Module):
    def __init__(self, layer, num_layers, norm):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.norm = norm

    def forward(self, src, src_key_padding_mask, pos, record=None):
        for layer in self.layers:
            src = layer(src, src_key_padding_mask, pos, record)
        return self.norm(src)


class TransformerDecoder(nn.Module):
    def __init__(self, layer, num_layers, norm):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask, pos, query_pos,
                attn_layer: int | None = None, attn_mode: str = "mean", record=None):
        """Returns (normed output (T, B, C), cross-attention of layer ``attn_layer`` or None)."""
        attn = None
        keep = None if attn_layer is None else attn_layer % len(self.layers)
        for i, layer in enumerate(self.layers):
            tgt, w = layer(tgt, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask, pos, query_pos,
                           cross_attn=attn_mode if i == keep else None, record=record)
            if i == keep:
                attn = w
        return self.norm(tgt), attn


class DecoderEmbeddings(nn.Module):
    """BERT-style: word + learned position embeddings, LayerNorm, dropout."""

    def __init__(self, vocab_size, hidden_dim, pad_token_id, max_position_embeddings, layer_norm_eps, dropout):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_dim, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_position_embeddings, hidden_dim)
        self.LayerNorm = nn.LayerNorm(hidden_dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids):
        """ids (B, T) -> (B, T, C)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.dropout(self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions)[None]))


class Transformer(nn.Module):
    def __init__(self, d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, vocab_size=30522, pad_token_id=0, max_position_embeddings=128, layer_norm_eps=1e-12):
        super().__init__()
        self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout),
                                          num_encoder_layers, nn.LayerNorm(d_model))
        self.embeddings = DecoderEmbeddings(vocab_size, d_model, pad_token_id, max_position_embeddings,
                                            layer_norm_eps, dropout)
        self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout),
                                          num_decoder_layers, nn.LayerNorm(d_model))
        self.d_model, self.nhead = d_model, nhead
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, src, mask, pos, record: AttentionRecord | None = None):
        """src, pos (B, C, H, W), mask (B, H, W) -> memory (HW, B, C), flat mask (B, HW), flat pos (HW, B, C)."""
        src = src.flatten(2).permute(2, 0, 1)
        pos = pos.flatten(2).permute(2, 0, 1)
        mask = mask.flatten(1)
        return self.encoder(src, mask, pos, record), mask, pos

    def decode(self, ids, ids_padding_mask, memory, mask, pos, attn_layer=None, attn_mode="mean",
               record: AttentionRecord | None = None):
        """ids (B, T) -> (hidden (B, T, C), cross-attention of ``attn_layer``: (B, T, HW) or (B, heads, T, HW))."""
        T = ids.shape[1]
        tgt = self.embeddings(ids).permute(1, 0, 2)
        query_pos = self.embeddings.position_embeddings.weight[:T, None]  # (T, 1, C), broadcast over batch
        causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).triu(1)  # True = may not attend
        hs, attn = self.decoder(tgt, memory, causal, ids_padding_mask, mask, pos, query_pos, attn_layer, attn_mode,
                                record)
        return hs.permute(1, 0, 2), attn

    def start_cache(self, memory, mask, pos) -> DecoderCache:
        """memory, pos (S, B, C) and mask (B, S) from ``encode`` -> an empty cache holding the memory's keys and
        values for every decoder layer."""
        return DecoderCache([[None, None] for _ in self.decoder.layers],
                            [layer.project_memory(memory, pos) for layer in self.decoder.layers],
                            ~mask[:, None, None, :])

    def step(self, ids, cache: DecoderCache):
        """ids (B,): the tokens at position ``cache.length`` -> the decoder's normed output there (B, C)."""
        t = cache.length
        emb = self.embeddings
        x = emb.dropout(emb.LayerNorm(emb.word_embeddings(ids) + emb.position_embeddings.weight[t]))
        query_pos = emb.position_embeddings.weight[t]
        for layer, kv, mem in zip(self.decoder.layers, cache.self_kv, cache.memory_kv):
            x = layer.step(x, query_pos, kv, mem, cache.memory_allowed)
        cache.length = t + 1
        return self.decoder.norm(x)

    def forward(self, src, mask, pos, tgt, tgt_padding_mask):
        memory, mask, pos = self.encode(src, mask, pos)
        return self.decode(tgt, tgt_padding_mask, memory, mask, pos)[0]


def _clones(module, n):
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


def build_transformer(config) -> Transformer:
    return Transformer(d_model=config.hidden_dim, nhead=config.nheads, num_encoder_layers=config.enc_layers,
                       num_decoder_layers=config.dec_layers, dim_feedforward=config.dim_feedforward,
                       dropout=config.dropout, vocab_size=config.vocab_size, pad_token_id=config.pad_token_id,
                       max_position_embeddings=config.max_position_embeddings,
                       layer_norm_eps=config.layer_norm_eps)
