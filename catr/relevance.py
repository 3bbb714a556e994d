"""What made CATR say each word: one decision per tile, and two ways to explain it from inside the model.

The decision explained is the one the tiles show: token k of a caption, predicted at query position k-1 from
[CLS] w1 .. w_{k-1} (teacher forcing on the generated caption; the decoder is causal, so position k-1 sees exactly
what it saw when the token was generated), scored by its log-probability. The last tile, ``<end>``, is the [SEP]
decision. A caption is given as its sequence ``seq`` = [CLS] w1 .. wn, then [SEP] when it was generated
(``caption_sequence``): T = len(seq) - 1 decisions, one per tile.

- ``token_log_probs`` is that score for a batch of images (perturbation methods call it through
  ``caption_score_fn``: RISE, occlusion, deletion and insertion curves).
- ``relevance_maps`` is gradient-weighted attention relevance (Chefer, Gur and Wolf, "Generic Attention-model
  Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021), with the one change
  ``normalised_residual`` explains.
"""
import torch

from .transformer import AttentionRecord


def caption_sequence(start_id: int, end_id: int, ids: list[int], ended: bool) -> list[int]:
    """[CLS] w1 .. wn, plus [SEP] when it was generated: the sequence whose len(ids) + ended tokens the tiles
    explain."""
    return [start_id, *ids] + ([end_id] if ended else [])


def _as_batch(seq, batch: int, device) -> torch.Tensor:
    seq = torch.as_tensor(seq, dtype=torch.long, device=device)
    return (seq[None] if seq.dim() == 1 else seq).expand(batch, -1)


def _log_probs(logits: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """logits (B, T, vocab) at positions 0..T-1, seq (B, T+1) -> log p(seq[:, k+1] | seq[:, :k+1]), (B, T)
    float64: a confident word's log-probability is about -1e-6 and a perturbation moves it by 1e-6..1e-4, below
    float32's resolution once the log-sum-exp of logits near 10 is subtracted."""
    return logits.double().log_softmax(-1).gather(-1, seq[:, 1:, None])[..., 0]


@torch.no_grad()
def token_log_probs(model, images, mask, seq) -> torch.Tensor:
    """images (B, 3, H, W), mask (B, H, W) or (1, H, W), seq (T+1,) or (B, T+1) -> (B, T) float64: each token's
    log-probability given the image and the tokens before it, all positions in one decoder pass."""
    B = images.shape[0]
    seq = _as_batch(seq, B, images.device)
    memory, fmask, pos, _ = model.encode_image(images, mask.expand(B, -1, -1))
    logits, _ = model.decode(seq[:, :-1], None, memory, fmask, pos)
    return _log_probs(logits, seq)


def caption_score_fn(model, mask, seq):
    """The score of one image's caption for perturbation methods: ``score_fn(images (B, 3, H, W)) -> (B, T)``,
    T = one column per tile. ``mask`` (1, H, W) is the unperturbed image's."""
    return lambda images: token_log_probs(model, images, mask, seq)


def normalised_residual(R: torch.Tensor) -> torch.Tensor:
    """R̄ = (R - I) / (row sums of R - I) + I, over the last two dimensions (..., n, n).

    The identity is a token's own share (the residual connection); the normalised rest is how it was mixed with
    the others. A row whose rest sums to 0 was never mixed: every image token when the model has no encoder layer
    (R_ii = I), every text position after the explained one (no gradient reaches it through the causal mask). The
    published rule divides 0 by 0 there; the NaN row then spreads through the matrix products to every entry of
    the update, which the published code sets to 0, so on this project's tiny CATR (no encoder, causal decoder)
    every map is all zero. Here such a row keeps only its identity part, R̄ = I: the reading the rule gives every
    other row (itself, plus however it was mixed), and equal to the published rule wherever the sums are positive
    (they are never negative: R - I is a sum of products of non-negative matrices)."""
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    rest = R - eye
    sums = rest.sum(-1, keepdim=True)
    return torch.where(sums > 0, rest / sums.clamp_min(torch.finfo(R.dtype).tiny), 0.0) + eye


def _weighted(probs: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Ā = E_h[(∇A ⊙ A)^+]: probs (1, heads, L, S), grads (T, 1, heads, L, S), one per decision -> (T, L, S)."""
    return (grads * probs.detach()).clamp_min(0).mean(2)[:, 0]


def relevance_maps(model, image, mask, seq) -> torch.Tensor:
    """Gradient-weighted relevance of the image's feature cells for each decision of ``seq`` (T+1,): (T, H', W').

    Per decision (target: the token's log-probability; the raw logit's gradient carries a part common to all
    tokens) and per layer, Ā = E_h[(∇A ⊙ A)^+] of each attention A. Starting from R_ii = I (image-image),
    R_tt = I (text-text) and R_ti = 0 (text-image): each encoder layer R_ii += Ā_ii R_ii; each decoder layer's
    self-attention R_tt += Ā_tt R_tt and R_ti += Ā_tt R_ti, then its cross-attention
    R_ti += R̄_tt^T Ā_ti R̄_ii (``normalised_residual``). Token k's map is the row of R_ti of query position k-1.
    Without encoder layers R_ii stays I. The T backward passes run as one, batched (``is_grads_batched``).
    ``model`` in eval mode; ``image`` (1, 3, H, W), ``mask`` (1, H, W)."""
    seq = _as_batch(seq, 1, image.device)
    record = AttentionRecord()
    with torch.no_grad():  # no gradient is taken through the backbone: spare its activations
        features, fmask, pos = model.backbone(image, mask)
        src = model.input_proj(features)
    with torch.enable_grad():
        memory, fmask, pos = model.transformer.encode(src, fmask, pos, record)
        logits, _ = model.decode(seq[:, :-1], None, memory, fmask, pos, record=record)
        logp = _log_probs(logits, seq)[0]  # (T,)
        T = logp.shape[0]
        attn = [*record.encoder, *record.self_attn, *record.cross_attn]
        one_hot = torch.eye(T, dtype=logp.dtype, device=logp.device)  # decision t's gradient, batched over t
        grads = torch.autograd.grad(logp, attn, one_hot, is_grads_batched=True)
    n_enc, n_dec = len(record.encoder), len(record.self_attn)
    enc_grads, self_grads, cross_grads = grads[:n_enc], grads[n_enc:n_enc + n_dec], grads[n_enc + n_dec:]
    S, device = memory.shape[0], image.device
    R_ii = torch.eye(S, device=device).expand(T, S, S)
    for probs, g in zip(record.encoder, enc_grads):
        R_ii = R_ii + _weighted(probs, g) @ R_ii
    R_ii_bar = normalised_residual(R_ii) if n_enc else None  # None: the identity, product skipped
    R_tt = torch.eye(T, device=device).expand(T, T, T)
    R_ti = torch.zeros(T, T, S, device=device)
    for probs, g, cross, g_cross in zip(record.self_attn, self_grads, record.cross_attn, cross_grads):
        a = _weighted(probs, g)
        R_tt, R_ti = R_tt + a @ R_tt, R_ti + a @ R_ti
        update = normalised_residual(R_tt).transpose(-2, -1) @ _weighted(cross, g_cross)
        R_ti = R_ti + (update if R_ii_bar is None else update @ R_ii_bar)
    t = torch.arange(T, device=device)
    return R_ti[t, t].reshape(T, *features.shape[-2:])
