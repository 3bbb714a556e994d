"""Maps of the ViT's decision itself, beside its attention: the log-probability of the explained class (the
prediction, or a class the caller names).

- ``relevance``: Chefer et al.'s generic rule for self-attention (ICCV 2021, "Generic Attention-model
  Explainability"): per block the gradient-weighted attention, positive part, head mean, Ā = E_h[(∇A ⊙ A)^+],
  propagated from the identity as R <- R + Ā R; the map is R's CLS row over the patches (for a model without a
  class token the mean patch row, as ``attention.query_to_patches`` reads attention). The gradient is that of the
  class's log-probability, not its raw logit: a logit's gradient carries a part shared by every class.
- ``class_scores``: the score function the black-box maps (RISE, occlusion) and the faithfulness curves call
  (``explanations``): a batch of perturbed images -> the explained class's log-probability or probability, in
  float64 (a confident model's changes are below float32's resolution of log-probabilities near 0).
"""
import torch

from .attention import has_class_token, patch_grid, query_to_patches, to_grid, unfuse_attention


@torch.no_grad()
def predicted_classes(model, x: torch.Tensor) -> torch.Tensor:
    """(B,) the model's prediction for each image of a batch: the class explained unless one is given."""
    return model(x).argmax(-1)


def class_scores(model, cls: int, kind: str = "log_prob"):
    """``images (N, C, H, W) -> (N, 1)`` float64 scores of class ``cls``: ``log_prob`` (to build maps) or ``prob``
    (to judge them by deletion and insertion, as RISE's protocol does)."""
    @torch.no_grad()
    def score(images: torch.Tensor) -> torch.Tensor:
        logits = model(images).double()
        out = logits.log_softmax(-1) if kind == "log_prob" else logits.softmax(-1)
        return out[:, cls:cls + 1]
    return score


def log_prob_gradients(model, x: torch.Tensor, classes: torch.Tensor, captured) -> tuple:
    """One forward pass of the batch with a graph, whatever the parameters' flags; returns its logits and the
    gradients of the summed log-probabilities of ``classes`` (B,) with respect to ``captured()``, the tensors the
    forward's hooks kept. Images do not interact in a ViT, so each image gets its own gradients."""
    with torch.enable_grad():
        logits = model(x.detach().requires_grad_(True))
        log_probs = logits.double().log_softmax(-1)
        target = log_probs.gather(1, classes.view(-1, 1).to(log_probs.device)).sum()
        return logits, torch.autograd.grad(target, captured())


def relevance(model, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(B, gh, gw) relevance maps of ``classes`` (B,) for the batch ``x``; images do not interact in a ViT, so one
    backward pass of the summed log-probabilities gives every image its own gradients."""
    unfuse_attention(model)
    attns = []
    handles = [blk.attn.attn_drop.register_forward_hook(lambda module, args, output: attns.append(output))
               for blk in model.blocks]
    try:
        _, grads = log_prob_gradients(model, x, classes, lambda: attns)
    finally:
        for handle in handles:
            handle.remove()
    b, _, n, _ = attns[0].shape
    r = torch.eye(n, dtype=torch.float64, device=x.device).expand(b, n, n)
    for a, g in zip(attns, grads):  # first block first: R <- R + Ā R
        cam = (g.double() * a.detach().double()).clamp(min=0).mean(1)  # (B, N, N)
        r = r + cam @ r
    maps = query_to_patches(r, model.num_prefix_tokens, has_class_token(model))
    return to_grid(maps.float(), patch_grid(model))
