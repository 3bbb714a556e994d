"""vitpet.lrp: Chefer et al.'s transformer attribution (CVPR 2021): its propagation rules, the relevance they keep,
and the map following the attention path that reaches the decision."""
import pytest
import timm
import torch

from hw3io import UserError
from vitpet.lrp import add_relevance, attribution_parts, linear_relevance, matmul_relevance, transformer_attribution
from vitpet.relevance import predicted_classes


def small_vit(depth=2, **kwargs):
    torch.manual_seed(0)
    kwargs = {"num_classes": 5, **kwargs}
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                             depth=depth, num_heads=2, **kwargs).eval()


def test_linear_rule_shares_relevance_along_positive_contributions():
    x = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 1.0, -1.0], [2.0, -1.0, 0.0]], dtype=torch.float64)
    r = linear_relevance(x, w, torch.tensor([[1.0, 4.0]], dtype=torch.float64))
    # output 0: positive contributions 1 (x0 w00) and 3 (x2 w02 is -3: none); x1 w01 = -2: none -> all to x0
    # output 1: x0 w10 = 2 and x1 w11 = 2 -> halves
    assert torch.allclose(r, torch.tensor([[1.0 + 2.0, 2.0, 0.0]], dtype=torch.float64))


def test_add_and_matmul_rules_keep_the_total():
    g = torch.Generator().manual_seed(0)
    a, b, r = (torch.randn(2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    ra, rb = add_relevance(a, b, r)
    assert torch.allclose(ra.sum((1, 2)) + rb.sum((1, 2)), r.sum((1, 2)))
    m, v = torch.rand(2, 5, 5, generator=g, dtype=torch.float64), torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    rm, rv = matmul_relevance(m, v, r)
    assert torch.allclose(rm.sum((1, 2)), r.sum((1, 2)) / 2) and torch.allclose(rv.sum((1, 2)), r.sum((1, 2)) / 2)


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_relevance_of_the_class_reaches_the_input_tokens_whole(pool):
    """LRP's conservation: the one unit of relevance started at the class arrives at the first block's input."""
    model, x = small_vit(global_pool=pool, class_token=pool == "token"), torch.randn(3, 3, 32, 32)
    kept = []
    relevance_at_attention, grads = attribution_parts(model, x, predicted_classes(model, x), kept)
    assert torch.allclose(kept[0].sum((1, 2)), torch.ones(3, dtype=torch.float64), atol=1e-9)
    n = 17 if pool == "token" else 16
    assert [r.shape for r in relevance_at_attention] == [g.shape for g in grads] == [(3, 2, n, n)] * 2


def test_each_blocks_relevance_meets_its_own_gradient():
    """Block 1's attention is cut from the residual stream (its output projection is zero): its relevance and its
    gradient are both zero and block 0's are not, in that order in both lists; the map is the published product
    of (I + E_h[(grad x relevance)^+]) over the blocks, first block first, read at the CLS row."""
    model, x = small_vit(qk_norm=True, init_values=0.5, reg_tokens=2), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.blocks[1].attn.proj.weight.zero_()
    classes = predicted_classes(model, x)
    relevance_at_attention, grads = attribution_parts(model, x, classes)
    assert relevance_at_attention[1].abs().max() == 0 and grads[1].abs().max() == 0
    assert relevance_at_attention[0].abs().max() > 0 and grads[0].abs().max() > 0
    joint = torch.eye(19, dtype=torch.float64)
    for g, r in zip(grads, relevance_at_attention):
        joint = (torch.eye(19, dtype=torch.float64) + (g * r).clamp(min=0).mean(1)) @ joint
    expected = joint[:, 0, 3:].reshape(2, 4, 4).float()  # class token, 2 registers, then the patches
    assert torch.allclose(transformer_attribution(model, x, classes), expected, atol=1e-7)
    assert (grads[0] * relevance_at_attention[0] < 0).any()  # the positive part matters here


def test_one_block_by_its_rules_written_out_per_head():
    """A block whose MLP adds nothing, with LayerScale and normalised queries and keys: the relevance arriving at its
    input, recomputed from timm's qkv layout (q, k, v thirds, heads contiguous) head by head with the tested
    rules, equals what ``attribution_parts`` propagates. Swapping q and k, skipping q_norm/k_norm or LayerScale
    each changes it."""
    model, x = small_vit(depth=1, qk_norm=True, init_values=0.5), torch.randn(2, 3, 32, 32)
    blk, attn = model.blocks[0], model.blocks[0].attn
    with torch.no_grad():
        blk.mlp.fc2.weight.zero_()
        blk.mlp.fc2.bias.zero_()
    classes = predicted_classes(model, x)
    kept = []
    attribution_parts(model, x, classes, kept)
    f64 = lambda t: t.detach().double()  # noqa: E731
    with torch.no_grad():
        tokens = model._pos_embed(model.patch_embed(x))          # the block's input
        normed = blk.norm1(tokens)
        qkv = attn.qkv(normed)
        attn_out = attn(normed)
        head_in = model.norm(blk(tokens))[:, 0]
    r = torch.zeros(2, 5, dtype=torch.float64).scatter_(1, classes.view(-1, 1), 1.0)
    r_tokens = torch.zeros(2, 17, 32, dtype=torch.float64)
    r_tokens[:, 0] = linear_relevance(f64(head_in), f64(model.head.weight), r)
    r_in, r_branch = add_relevance(f64(tokens), f64(blk.ls1(attn_out)), r_tokens)   # the MLP's share is zero
    with torch.no_grad():
        heads_in = torch.cat([(attn.q_norm(qkv[..., None, 16 * h:16 * h + 16].transpose(1, 2)) * attn.scale @
                               attn.k_norm(qkv[..., None, 32 + 16 * h:48 + 16 * h].transpose(1, 2)).transpose(-2, -1)
                               ).softmax(-1) @ qkv[..., None, 64 + 16 * h:80 + 16 * h].transpose(1, 2)
                              for h in range(2)], 1)                                      # (B, heads, N, 16)
    r_heads = linear_relevance(f64(heads_in.transpose(1, 2).reshape(2, 17, 32)), f64(attn.proj.weight), r_branch)
    r_qkv = torch.zeros(2, 17, 96, dtype=torch.float64)
    for h in range(2):
        q = f64(attn.q_norm(qkv[:, :, 16 * h:16 * h + 16]))
        k = f64(attn.k_norm(qkv[:, :, 32 + 16 * h:48 + 16 * h]))
        v = f64(qkv[:, :, 64 + 16 * h:80 + 16 * h])
        a = (q @ k.transpose(-2, -1) * attn.scale).softmax(-1)
        r_a, r_qkv[:, :, 64 + 16 * h:80 + 16 * h] = matmul_relevance(a, v, r_heads[:, :, 16 * h:16 * h + 16])
        r_qkv[:, :, 16 * h:16 * h + 16], r_kt = matmul_relevance(q, k.transpose(-2, -1), r_a)
        r_qkv[:, :, 32 + 16 * h:48 + 16 * h] = r_kt.transpose(-2, -1)
    expected = r_in + linear_relevance(f64(normed), f64(attn.qkv.weight), r_qkv)
    assert torch.allclose(kept[0], expected, atol=1e-9)


def test_attribution_follows_the_head_that_reaches_the_decision():
    """Head 1's output is cut from the residual stream: re-aiming its queries and keys moves its attention, not the
    decision, and must not move the map."""
    model, x = small_vit(depth=1), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.blocks[0].attn.proj.weight[:, 16:] = 0
    classes = predicted_classes(model, x)
    before = transformer_attribution(model, x, classes)
    with torch.no_grad():
        qkv = model.blocks[0].attn.qkv.weight
        qkv[16:32] = torch.randn(16, 32) * 3
        qkv[48:64] = torch.randn(16, 32) * 3
    assert torch.equal(predicted_classes(model, x), classes)
    assert before.shape == (2, 4, 4) and before.std() > 0
    assert torch.allclose(transformer_attribution(model, x, classes), before, atol=1e-9)
    with torch.no_grad():  # re-aiming head 0 does move it
        qkv[0:16] = torch.randn(16, 32) * 3
    assert not torch.allclose(transformer_attribution(model, x, classes), before, atol=1e-6)


def test_a_headless_model_explains_a_pooled_feature_and_keeps_its_relevance():
    model, x = small_vit(num_classes=0), torch.randn(2, 3, 32, 32)
    kept = []
    attribution_parts(model, x, predicted_classes(model, x), kept)
    assert torch.allclose(kept[0].sum((1, 2)), torch.ones(2, dtype=torch.float64), atol=1e-9)


def test_a_model_it_cannot_explain_is_one_error_and_no_pointing_row():
    from vitpet.pointing import method_rows
    model = small_vit(global_pool="map", class_token=False)
    with pytest.raises(UserError, match="pooling"):
        transformer_attribution(model, torch.randn(1, 3, 32, 32), torch.tensor([0]))
    assert not any(name.startswith("attribution") for name in method_rows(model, False, 16, 8, 0))
    assert any(name.startswith("attribution") for name in method_rows(small_vit(), False, 16, 8, 0))
    post_norm = timm.create_model("vit_base_patch16_rpn_224", pretrained=False, img_size=32, patch_size=8,
                                  embed_dim=32, depth=1, num_heads=2, num_classes=5)
    with pytest.raises(UserError, match="pre-norm Block, not ResPostBlock"):
        transformer_attribution(post_norm, torch.randn(1, 3, 32, 32), torch.tensor([0]))
    with pytest.raises(UserError, match="patch tokens only"):
        transformer_attribution(small_vit(global_pool="avg", pool_include_prefix=True), torch.randn(1, 3, 32, 32),
                                torch.tensor([0]))
