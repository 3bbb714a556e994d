"""CATR's transformer: pre-norm encoder over image features, causal pre-norm decoder over caption tokens.

Differences from ``torch.nn.Transformer`` (as in DETR): positions are added to queries and keys inside every
attention layer (image sine positions on the memory side, the learned token positions on the query side),
the decoder owns BERT-style word + position embeddings, and a decoder layer can return its cross-attention
probabilities. Tensors are sequence-first, (L, B, C), like the original. Only the pre-norm variant the
released checkpoints use is implemented.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn


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

    def forward(self, src, src_key_padding_mask, pos):
        src2 = self.norm1(src)
        q = k = src2 + pos
        src = src + self.dropout1(self.self_attn(q, k, value=src2, key_padding_mask=src_key_padding_mask,
                                                 need_weights=False)[0])
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
                cross_attn: str | None = None):
        """``cross_attn``: None, "mean" or "heads" -> also return the cross-attention probabilities,
        (B, T, S) or (B, heads, T, S)."""
        tgt2 = self.norm1(tgt)
        q = k = tgt2 + query_pos
        tgt = tgt + self.dropout1(self.self_attn(q, k, value=tgt2, attn_mask=tgt_mask,
                                                 key_padding_mask=tgt_key_padding_mask, need_weights=False)[0])
        tgt2 = self.norm2(tgt)
        tgt2, weights = self.multihead_attn(query=tgt2 + query_pos, key=memory + pos, value=memory,
                                            key_padding_mask=memory_key_padding_mask,
                                            need_weights=cross_attn is not None,
                                            average_attn_weights=cross_attn == "mean")
        tgt = tgt + self.dropout2(tgt2)
        tgt2 = self.norm3(tgt)
        tgt = tgt + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(tgt2)))))
        return tgt, weights


class TransformerEncoder(nn.Module):
    def __init__(self, layer, num_layers, norm):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.norm = norm

    def forward(self, src, src_key_padding_mask, pos):
        for layer in self.layers:
            src = layer(src, src_key_padding_mask, pos)
        return self.norm(src)


class TransformerDecoder(nn.Module):
    def __init__(self, layer, num_layers, norm):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask, pos, query_pos,
                attn_layer: int | None = None, attn_mode: str = "mean"):
        """Returns (normed output (T, B, C), cross-attention of layer ``attn_layer`` or None)."""
        attn = None
        keep = None if attn_layer is None else attn_layer % len(self.layers)
        for i, layer in enumerate(self.layers):
            tgt, w = layer(tgt, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask, pos, query_pos,
                           cross_attn=attn_mode if i == keep else None)
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

    def encode(self, src, mask, pos):
        """src, pos (B, C, H, W), mask (B, H, W) -> memory (HW, B, C), flat mask (B, HW), flat pos (HW, B, C)."""
        src = src.flatten(2).permute(2, 0, 1)
        pos = pos.flatten(2).permute(2, 0, 1)
        mask = mask.flatten(1)
        return self.encoder(src, mask, pos), mask, pos

    def decode(self, ids, ids_padding_mask, memory, mask, pos, attn_layer=None, attn_mode="mean"):
        """ids (B, T) -> (hidden (B, T, C), cross-attention of ``attn_layer``: (B, T, HW) or (B, heads, T, HW))."""
        T = ids.shape[1]
        tgt = self.embeddings(ids).permute(1, 0, 2)
        query_pos = self.embeddings.position_embeddings.weight[:T, None]  # (T, 1, C), broadcast over batch
        causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).triu(1)  # True = may not attend
        hs, attn = self.decoder(tgt, memory, causal, ids_padding_mask, mask, pos, query_pos, attn_layer, attn_mode)
        return hs.permute(1, 0, 2), attn

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
