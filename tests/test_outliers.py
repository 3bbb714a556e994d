import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from vitpet import outliers as O
from vitpet import plotting
from vitpet.attention import capture_attention, patch_grid
from vitpet.model import build_model

PLANTED = 21  # patch (row 2, col 5) of the 8x8 grid


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_model("vit_demo_patch8", pretrained=False).eval()


@pytest.fixture(scope="module")
def vit_registers():
    # class token + 4 registers: 5 prefix tokens before the 2x3 patches
    torch.manual_seed(0)
    return VisionTransformer(img_size=(32, 48), patch_size=16, embed_dim=32, depth=2, num_heads=2, reg_tokens=4,
                             no_embed_class=True, num_classes=0).eval()


def inputs(seed, size=(64, 64)):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(3, 3, *size, generator=g),
                      torch.zeros(1, 3, *size),  # every patch alike: the norms differ only by position
                      torch.rand(1, 1, *size, generator=g).expand(1, 3, *size) * 4 - 2])


def plant(model, index, size):
    """Add a vector of norm ``size`` (B,) to one patch's embedding; the residual stream carries it to the output,
    so that patch's token ends with an outlier norm. Returns the hook handle."""
    def hook(module, args, out):  # (B, P, D)
        out = out.clone()
        v = torch.ones(out.shape[-1]) / out.shape[-1] ** 0.5
        out[:, index] += size[:, None] * v
        return out
    return model.patch_embed.register_forward_hook(hook)


def manual_patch_norms(model, x, layer=-1):
    """Run the blocks by hand (no hooks) and take the patch tokens of block ``layer``'s output."""
    with torch.no_grad():
        t = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        for blk in model.blocks[:len(model.blocks) + layer + 1 if layer < 0 else layer + 1]:
            t = blk(t)
    return t[:, model.num_prefix_tokens:].norm(dim=-1)


@pytest.mark.parametrize("layer", [-1, 0])
def test_norms_are_the_blocks_patch_outputs_before_the_final_norm(vit, layer):
    x = inputs(0)
    norms = O.token_norms(vit, x, layer)
    assert norms.shape == (5, 64)
    assert torch.allclose(norms, manual_patch_norms(vit, x, layer), rtol=1e-5)
    assert all(len(b._forward_hooks) == 0 for b in vit.blocks)


def test_prefix_tokens_are_not_patches(vit_registers):
    m = vit_registers
    assert m.num_prefix_tokens == 5 and patch_grid(m) == (2, 3)
    x = inputs(1, (32, 48))
    norms = O.token_norms(m, x)
    assert norms.shape == (5, 6)
    assert torch.allclose(norms, manual_patch_norms(m, x), rtol=1e-5)
    # a huge register is no patch's business
    saved = m.reg_token.data.clone()
    try:
        m.reg_token.data[0, 0] = 1e3
        assert not O.high_norm_patches(O.token_norms(m, x)).any()
    finally:
        m.reg_token.data.copy_(saved)


def test_planted_high_norm_patch_is_the_only_one_flagged(vit):
    for seed in range(3):
        x = inputs(seed)
        clean = O.token_norms(vit, x)
        assert not O.high_norm_patches(clean).any()  # untouched: nothing flagged
        handle = plant(vit, PLANTED, 10 * clean.median(1).values)
        try:
            norms = O.token_norms(vit, x)
        finally:
            handle.remove()
        others = torch.cat([norms[:, :PLANTED], norms[:, PLANTED + 1:]], 1)
        ratio = norms[:, PLANTED] / others.median(1).values
        assert (ratio > 5).all() and (ratio < 20).all(), ratio  # the ~10x of Darcet et al., not a giant
        flags = O.high_norm_patches(norms)
        expected = torch.zeros_like(flags)
        expected[:, PLANTED] = True
        assert torch.equal(flags, expected)


def test_planted_patch_flagged_with_registers(vit_registers):
    m = vit_registers
    x = inputs(2, (32, 48))
    handle = plant(m, 4, 10 * O.token_norms(m, x).median(1).values)
    try:
        flags = O.high_norm_patches(O.token_norms(m, x))
    finally:
        handle.remove()
    assert flags.sum().item() == len(x) and flags[:, 4].all()


def test_both_rules_are_needed():
    # nearly equal norms (MAD ~ 0): only the ratio rule stops a 10% bump from being flagged
    flat = torch.full((1, 64), 10.0)
    flat[0, 3] = 11.0
    assert not O.high_norm_patches(flat).any()
    # a wide bulk: a token at 2.2x the median is only ~4 sigma out there, and only the MAD rule spares it
    g = torch.Generator().manual_seed(0)
    wide = (torch.randn(1, 256, generator=g) * 3 + 10).clamp(min=1)  # median ~10, MAD ~2
    wide[0, 7] = 2.2 * wide.median()
    assert not O.high_norm_patches(wide).any()
    # and a real outlier passes both
    wide[0, 7] = 10 * wide.median()
    assert O.high_norm_patches(wide)[0].nonzero().flatten().tolist() == [7]


def test_norms_from_the_attention_pass(vit):
    x = inputs(3)
    calls = []
    h = vit.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    try:
        with O.recording_norms(vit) as recorded:
            capture_attention(vit, x, [-1])
    finally:
        h.remove()
    assert len(calls) == 1 and len(recorded) == 1  # one forward pass serves both
    assert torch.allclose(recorded[0], O.token_norms(vit, x))
    assert all(len(b._forward_hooks) == 0 for b in vit.blocks)


def test_peak_on_high_norm():
    flags = torch.zeros(8, 8, dtype=torch.bool)
    flags.view(-1)[PLANTED] = True
    peaked = torch.rand(64)
    peaked[PLANTED] = 2.0
    assert O.peak_on_high_norm(peaked, flags.flatten())
    assert O.peak_on_high_norm(peaked.reshape(8, 8).numpy(), flags.numpy())  # grids and arrays too
    assert O.peak_note(peaked, flags) == O.HIGH_NORM_NOTE
    elsewhere = peaked.clone()
    elsewhere[PLANTED + 1] = 3.0
    assert not O.peak_on_high_norm(elsewhere, flags)
    assert O.peak_note(elsewhere, flags) == ""
    assert not O.peak_on_high_norm(peaked, torch.zeros(64, dtype=torch.bool))
    with pytest.raises(ValueError):
        O.peak_on_high_norm(peaked, flags[:4])


def test_mark_patches_outlines_each_flagged_patch():
    flags = np.zeros((4, 6), dtype=bool)
    flags[1, 4] = flags[3, 0] = True
    fig, ax = plt.subplots()
    try:
        ax.imshow(np.zeros((32, 48, 3)))
        assert plotting.mark_patches(ax, flags, (32, 48)) == 2
        assert len(ax.patches) == 2
        boxes = sorted((p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in ax.patches)
        # patch (row 3, col 0) and (row 1, col 4) of 8x8 pixels, pixel edges at -0.5
        assert boxes == [(-0.5, 23.5, 8.0, 8.0), (31.5, 7.5, 8.0, 8.0)]
        assert not any(p.get_fill() for p in ax.patches)
        assert plotting.mark_patches(ax, np.zeros((4, 6), bool), (32, 48)) == 0
        assert len(ax.patches) == 2
    finally:
        plt.close(fig)
