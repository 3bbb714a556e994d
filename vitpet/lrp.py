"""Chefer et al.'s transformer attribution (CVPR 2021, "Transformer Interpretability Beyond Attention
Visualization") for timm's ViT: layer-wise relevance propagation (LRP) of the explained class from the head down
through every block, then per block the gradient-weighted relevance of the attention probabilities, positive part,
head mean, Ā = E_h[(∇A ⊙ R_A)^+], rolled out with the residual identity, R <- (I + Ā) R, first block first (their
code leaves the rows unnormalised, unlike attention rollout); the map is the CLS row over the patches
(``attention.query_to_patches``).

Their propagation rules, as published: linear layers by the z+ rule (LRP alpha 1, beta 0: relevance flows along
positive contributions, biases get none); LayerNorm, GELU, softmax and dropout pass relevance unchanged; a residual
sum splits its relevance between its two inputs in proportion to their gradient x input shares, rescaled so the
total is kept; each matrix product (q k^T, A v) gives both of its factors their gradient x input relevance, halved.
The relevance starts at one on the explained class. As in ``vitpet.relevance`` the gradient is that of the class's
log-probability (the published code uses the raw logit, whose gradient carries a part common to every class).

The intermediate values are those of the model's own forward pass, captured by hooks; the rules are applied by
hand in float64. Supported (``unsupported`` says why not): timm ``VisionTransformer`` blocks (``Attention`` without
gate, ``Mlp``), class-token or average pooling, a linear head or none.
"""
import torch

from hw3io import UserError
from .attention import has_class_token, patch_grid, rollout, to_grid, unfuse_attention
from .relevance import log_prob_gradients


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().double()


def _safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b, with 0 where b is 0 (the published rules' stabiliser, for a denominator that is exactly zero)."""
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


def linear_relevance(x: torch.Tensor, weight: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The z+ rule (LRP alpha 1, beta 0) for y = x W^T: each output's relevance is shared among its inputs in
    proportion to their positive contributions x_i+ W_ji+ + x_i- W_ji-; the bias gets none."""
    wp, wn = weight.clamp(min=0), weight.clamp(max=0)
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    s = _safe_divide(r, xp @ wp.T + xn @ wn.T)
    return xp * (s @ wp) + xn * (s @ wn)


def matmul_relevance(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor):
    """Gradient x input for z = a @ b, halved for each factor (so the two together keep the relevance)."""
    s = _safe_divide(r, a @ b)
    return a * (s @ b.transpose(-2, -1)) / 2, b * (a.transpose(-2, -1) @ s) / 2


def add_relevance(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor):
    """z = a + b: gradient x input shares of each input, rescaled per image so that a's and b's totals split r's
    total in proportion to their absolute sums."""
    s = _safe_divide(r, a + b)
    ra, rb = a * s, b * s
    dims = tuple(range(1, r.dim()))
    sa, sb, total = ra.sum(dims, keepdim=True), rb.sum(dims, keepdim=True), r.sum(dims, keepdim=True)
    share_a = _safe_divide(sa.abs(), sa.abs() + sb.abs())
    return (ra * _safe_divide(share_a * total, sa), rb * _safe_divide((1 - share_a) * total, sb))


def unsupported(model) -> str | None:
    """Why the rules here cannot explain ``model``, or None when they can."""
    from timm.models.vision_transformer import Block
    for blk in getattr(model, "blocks", None) or [None]:
        if type(blk) is not Block:  # pre-norm residual blocks; not ResPostBlock, parallel or other layouts
            return f"transformer attribution needs timm's pre-norm Block, not {type(blk).__name__}"
        attn, mlp = blk.attn, blk.mlp
        if getattr(attn, "gate", None) is not None or not all(hasattr(attn, n) for n in ("qkv", "proj", "attn_drop")):
            return f"transformer attribution needs timm's Attention blocks, not {type(attn).__name__}"
        if not (hasattr(mlp, "fc1") and hasattr(mlp, "fc2") and mlp.fc2.in_features == mlp.fc1.out_features):
            return f"transformer attribution needs timm's Mlp blocks, not {type(mlp).__name__}"
    if getattr(model, "attn_pool", None) is not None or model.global_pool not in ("token", "avg"):
        return f"transformer attribution needs class-token or average pooling, not {model.global_pool!r}"
    if model.global_pool == "avg" and getattr(model, "pool_include_prefix", False):
        return "transformer attribution needs average pooling over the patch tokens only (pool_include_prefix)"
    return None


class _Recorder:
    """Forward hooks keeping what the rules need: each block's input and its two residual branches' outputs, the
    inputs of every linear layer, the qkv output, the attention probabilities and the tokens before pooling."""

    def __init__(self, model):
        self.blocks = [dict() for _ in model.blocks]
        self.handles = []
        for rec, blk in zip(self.blocks, model.blocks):
            self._keep(blk, rec, "x", lambda args, out: args[0])
            self._keep(blk.attn, rec, "attn_out", lambda args, out: out)
            self._keep(blk.attn.qkv, rec, "qkv_in", lambda args, out: args[0])
            self._keep(blk.attn.qkv, rec, "qkv_out", lambda args, out: out)
            self._keep(blk.attn.attn_drop, rec, "A", lambda args, out: out)
            self._keep(blk.attn.proj, rec, "proj_in", lambda args, out: args[0])
            self._keep(blk.mlp, rec, "mlp_out", lambda args, out: out)
            self._keep(blk.mlp.fc1, rec, "fc1_in", lambda args, out: args[0])
            self._keep(blk.mlp.fc2, rec, "fc2_in", lambda args, out: args[0])
        self.top = {}
        self._keep(model.norm, self.top, "tokens", lambda args, out: out)
        self._keep(model.head, self.top, "head_in", lambda args, out: args[0])

    def _keep(self, module, store, key, pick):
        self.handles.append(module.register_forward_hook(
            lambda m, args, out: store.__setitem__(key, pick(args, out))))

    def remove(self):
        for handle in self.handles:
            handle.remove()


def _attention_relevance(blk, rec, r_out: torch.Tensor):
    """Relevance of one attention branch's output -> (relevance of A, (B, heads, N, N); relevance of the qkv
    layer's input, (B, N, D))."""
    attn = blk.attn
    b, n, _ = r_out.shape
    h = attn.num_heads
    r = linear_relevance(_f64(rec["proj_in"]), _f64(attn.proj.weight), r_out)   # attn.norm: relevance unchanged
    r = r.reshape(b, n, h, -1).transpose(1, 2)                                # (B, h, N, d)
    q, k, v = _f64(rec["qkv_out"]).reshape(b, n, 3, h, -1).permute(2, 0, 3, 1, 4)
    with torch.no_grad():
        q, k = _f64(attn.q_norm(q.to(rec["qkv_out"].dtype))), _f64(attn.k_norm(k.to(rec["qkv_out"].dtype)))
    r_a, r_v = matmul_relevance(_f64(rec["A"]), v, r)
    r_q, r_kt = matmul_relevance(q, k.transpose(-2, -1), r_a)                   # softmax and scale: unchanged
    r_qkv = torch.stack([r_q, r_kt.transpose(-2, -1), r_v]).permute(1, 3, 0, 2, 4).reshape(b, n, -1)
    return r_a, linear_relevance(_f64(rec["qkv_in"]), _f64(attn.qkv.weight), r_qkv)


def transformer_attribution(model, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(B, gh, gw) maps of ``classes`` (B,) for the batch ``x``: one forward pass, one backward pass for the
    attention gradients, and the relevance propagated by hand (``vitpet.lrp``)."""
    relevance_at_attention, grads = attribution_parts(model, x, classes)
    cams = [(g * r).clamp(min=0).mean(1, keepdim=True) for g, r in zip(grads, relevance_at_attention)]
    maps = rollout(cams, model.num_prefix_tokens, has_class_token(model), normalise_rows=False)  # as published
    return to_grid(maps.float(), patch_grid(model))


def attribution_parts(model, x: torch.Tensor, classes: torch.Tensor, keep_input_relevance: list | None = None):
    """Per block, first block first: the LRP relevance of the attention probabilities and the gradient of the
    classes' log-probabilities with respect to them, both (B, heads, N, N) float64. ``keep_input_relevance``, a
    list, receives the relevance of the first block's input tokens (B, N, D) (what the tests check is kept)."""
    reason = unsupported(model)
    if reason:
        raise UserError(reason)
    unfuse_attention(model)
    recorder = _Recorder(model)
    try:
        logits, grads = log_prob_gradients(model, x, classes, lambda: [rec["A"] for rec in recorder.blocks])
    finally:
        recorder.remove()
    r = torch.zeros_like(logits, dtype=torch.float64).scatter_(1, classes.view(-1, 1).to(logits.device), 1.0)
    if isinstance(model.head, torch.nn.Linear):  # without one (num_classes=0) the "class" is a pooled feature
        r = linear_relevance(_f64(recorder.top["head_in"]), _f64(model.head.weight), r)   # fc_norm: unchanged
    tokens = _f64(recorder.top["tokens"])                                            # after the final norm
    r_tokens = torch.zeros_like(tokens)
    if model.global_pool == "token":
        r_tokens[:, 0] = r
    else:  # the mean of the patch tokens: gradient x input
        patches = tokens[:, model.num_prefix_tokens:]
        s = _safe_divide(r, patches.mean(1))
        r_tokens[:, model.num_prefix_tokens:] = patches * s[:, None] / patches.shape[1]
    r = r_tokens
    relevance_at_attention = []
    for blk, rec in zip(reversed(model.blocks), reversed(recorder.blocks)):
        with torch.no_grad():  # the residual branches as added (LayerScale and drop path included)
            attn_branch, mlp_branch = _f64(blk.drop_path1(blk.ls1(rec["attn_out"]))), \
                _f64(blk.drop_path2(blk.ls2(rec["mlp_out"])))
        x_in = _f64(rec["x"])
        r_mid, r_mlp = add_relevance(x_in + attn_branch, mlp_branch, r)
        r_mlp = linear_relevance(_f64(rec["fc2_in"]), _f64(blk.mlp.fc2.weight), r_mlp)    # LayerScale: unchanged
        r_mid = r_mid + linear_relevance(_f64(rec["fc1_in"]), _f64(blk.mlp.fc1.weight), r_mlp)  # GELU, norm2: same
        r_in, r_attn = add_relevance(x_in, attn_branch, r_mid)
        r_a, r_qkv = _attention_relevance(blk, rec, r_attn)
        relevance_at_attention.append(r_a)
        r = r_in + r_qkv                                                                # norm1: unchanged
    if keep_input_relevance is not None:
        keep_input_relevance.append(r)
    return relevance_at_attention[::-1], [g.double() for g in grads]
