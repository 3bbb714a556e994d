import numpy as np
import pytest
import torch

from helpers import assert_one_line_error, run
from hw3io import upsample
from vitpet import attention as A
from vitpet import explain, plotting
from vitpet.model import build_model


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_model("vit_demo_patch8", pretrained=False).eval()


def manual_attention(attn_module, x_in):
    """softmax(q k^T * scale) per head, recomputed from the block's qkv weights."""
    B, N, C = x_in.shape
    h = attn_module.num_heads
    qkv = x_in @ attn_module.qkv.weight.T + attn_module.qkv.bias
    q, k, _ = qkv.reshape(B, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
    return torch.softmax(q @ k.transpose(-2, -1) * (C // h) ** -0.5, dim=-1)


def test_captured_attention_equals_manual_recomputation(vit):
    x = torch.randn(2, 3, 64, 64)
    seen = {}
    handle = vit.blocks[-1].attn.register_forward_pre_hook(lambda m, args: seen.update(x=args[0].detach()))
    try:
        (captured,) = A.capture_attention(vit, x, [-1])  # the real forward pass feeds the hook too
    finally:
        handle.remove()
    expected = manual_attention(vit.blocks[-1].attn, seen["x"])
    assert captured.shape == (2, 3, 65, 65)
    assert torch.allclose(captured, expected, atol=1e-5)
    assert torch.allclose(captured.sum(-1), torch.ones(2, 3, 65), atol=1e-5)
    # Not some other block's attention:
    (first,) = A.capture_attention(vit, x, [0])
    assert not torch.allclose(first, captured, atol=1e-3)


def test_capture_switches_fused_attention_off_for_that_model_only(vit):
    other = build_model("vit_demo_patch8", pretrained=False)
    fused_before = [b.attn.fused_attn for b in other.blocks]
    A.capture_attention(vit, torch.randn(1, 3, 64, 64))
    assert not any(b.attn.fused_attn for b in vit.blocks)
    assert [b.attn.fused_attn for b in other.blocks] == fused_before
    assert all(len(b.attn.attn_drop._forward_hooks) == 0 for b in vit.blocks)  # hooks removed


def test_cls_head_mean_matches_reference(vit):
    x = torch.randn(1, 3, 64, 64)
    (attn,) = A.capture_attention(vit, x, [-1])
    maps = A.attention_maps(vit, x)
    ref = attn[0, :, 0, 1:].mean(0).reshape(8, 8)
    assert torch.allclose(maps[0], ref, atol=1e-6)
    per_head = A.attention_maps(vit, x, heads=True)
    assert per_head.shape == (1, 3, 8, 8) and torch.allclose(per_head.mean(1), maps, atol=1e-6)


def numpy_rollout(attns, npt):
    result = np.eye(attns[0].shape[-1])
    for a in attns:
        a = a.mean(0) + np.eye(a.shape[-1])
        a = a / a.sum(axis=1)[:, None]
        result = a @ result
    return result[0, npt:]


def test_rollout_matches_numpy_reference():
    g = torch.Generator().manual_seed(0)
    attns = [torch.softmax(torch.randn(1, 4, 5, 5, generator=g), -1) for _ in range(3)]
    ref = numpy_rollout([a[0].double().numpy() for a in attns], 1)
    got = A.rollout(attns, 1)[0].double().numpy()
    assert np.allclose(got, ref, atol=1e-6)
    full = A.rollout(attns, 0)[0]
    assert torch.allclose(full.sum(), torch.tensor(1.0), atol=1e-5)  # rows stay stochastic


@pytest.mark.parametrize("grid,size", [((8, 8), (64, 64)), ((6, 8), (48, 64)), ((14, 14), (224, 224))])
def test_planted_peak_lands_in_its_patch(grid, size):
    gh, gw = grid
    ph, pw = size[0] // gh, size[1] // gw
    for r, c in [(0, 0), (gh - 1, gw - 1), (gh // 2, 1)]:
        m = torch.zeros(gh, gw)
        m[r, c] = 1
        heat = upsample(m, size).numpy()
        y, x = np.unravel_index(heat.argmax(), heat.shape)
        assert r * ph <= y < (r + 1) * ph and c * pw <= x < (c + 1) * pw


def test_planted_peak_through_the_pipeline_on_non_square_image(tiny_checkpoint, tmp_path, monkeypatch):
    from PIL import Image
    Image.new("RGB", (150, 60), (90, 120, 30)).save(tmp_path / "wide.jpg")
    planted = torch.zeros(1, 8, 8)
    planted[0, 2, 5] = 1.0  # patch row 2, column 5: pixels y 16..23, x 40..47 of the 64x64 model input
    monkeypatch.setattr(explain, "attention_maps", lambda *a, **k: planted)
    drawn = {}
    real_plot = plotting.plot_attention

    def spy(original, view, heat, path, title, **kw):
        drawn.update(view=view, heat=heat, orig=original, boxes=real_plot(original, view, heat, path, title, **kw))
        return drawn["boxes"]

    monkeypatch.setattr(plotting, "plot_attention", spy)
    explain.visualize_attention([tmp_path / "wide.jpg"], tmp_path / "out", checkpoint=tiny_checkpoint)
    assert drawn["orig"].size == (150, 60)
    assert drawn["view"].shape == (64, 64, 3) and drawn["heat"].shape == (64, 64)  # the model's input, not 150x60
    y, x = np.unravel_index(drawn["heat"].argmax(), drawn["heat"].shape)
    assert 16 <= y < 24 and 40 <= x < 48
    assert np.array_equal(np.load(tmp_path / "out" / "wide.npy"), planted[0].numpy())
    # ... and in the PNG itself: the reddest pixel of the overlay panel sits in that patch.
    png = np.asarray(Image.open(tmp_path / "out" / "wide.png").convert("RGB")).astype(int)
    left, top, right, bottom = drawn["boxes"][2]
    panel = png[top:bottom, left:right]
    redness = panel[..., 0] - panel[..., 2]
    py, px = np.unravel_index(redness.argmax(), redness.shape)
    y, x = (py + 0.5) / panel.shape[0] * 64, (px + 0.5) / panel.shape[1] * 64
    assert 15 <= y <= 25 and 39 <= x <= 49


def test_pos_cosine_matches_numpy(vit):
    sim = A.pos_embed_cosine(vit).numpy()
    pe = vit.pos_embed[0, 1:].detach().double().numpy()
    ref = (pe @ pe.T) / np.outer(np.linalg.norm(pe, axis=1), np.linalg.norm(pe, axis=1))
    assert sim.shape == (64, 64) and np.allclose(sim, ref, atol=1e-5)
    assert np.allclose(np.diag(sim), 1, atol=1e-5)
    mosaic = plotting.pos_mosaic(sim, (8, 8))
    for r in range(8):
        for c in range(8):
            small = mosaic[r * 9:r * 9 + 8, c * 9:c * 9 + 8]
            assert np.unravel_index(small.argmax(), small.shape) == (r, c)


def test_scripts_end_to_end(tiny_checkpoint, pet_data, tmp_path):
    proc = run(["python3", "p1_visualize_pos.py", "--checkpoint", str(tiny_checkpoint),
                "--output", str(tmp_path / "p" / "pos.png")])
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "p" / "pos.npy").shape == (64, 64)
    assert (tmp_path / "p" / "pos.png").read_bytes()[:4] == b"\x89PNG"
    imgs = sorted((pet_data / "val").glob("*.jpg"))[:2]
    import p1_visualize_attn  # the flag variants in-process: one script start is enough to test the script
    for flags, shape in [([], (8, 8)), (["--heads"], (3, 8, 8)), (["--rollout"], (8, 8)), (["--layer", "0"], (8, 8))]:
        out = tmp_path / ("a" + "".join(flags))
        argv = ["--checkpoint", str(tiny_checkpoint), "--images", *map(str, imgs), "--output-dir", str(out), *flags]
        if flags:
            assert not p1_visualize_attn.main(argv)
        else:
            proc = run(["python3", "p1_visualize_attn.py", *argv])
            assert proc.returncode == 0, proc.stderr
        for img in imgs:
            assert np.load(out / f"{img.stem}.npy").shape == shape
            assert (out / f"{img.stem}.png").read_bytes()[:4] == b"\x89PNG"


def test_other_input_sizes(tmp_path):
    from vitpet.model import resolve_model_data_config, save_checkpoint
    model = build_model("vit_demo_patch8", pretrained=False, img_size=48)
    ckpt = tmp_path / "m48.safetensors"
    save_checkpoint(ckpt, model, {"model": "vit_demo_patch8", "num_classes": 37, "img_size": 48,
                                  "data_config": resolve_model_data_config(model)})
    sim = explain.visualize_pos(tmp_path / "pos.png", checkpoint=ckpt)
    assert sim.shape == (36, 36)
    from PIL import Image
    Image.new("RGB", (70, 50), (10, 200, 30)).save(tmp_path / "x.png")
    explain.visualize_attention([tmp_path / "x.png"], tmp_path / "o", checkpoint=ckpt, use_rollout=True)
    assert np.load(tmp_path / "o" / "x.npy").shape == (6, 6)


@pytest.mark.parametrize("kw", [{}, {"heads": True}, {"use_rollout": True}, {"layer": 1}])
def test_one_forward_pass_per_map(vit, kw):
    calls = []
    h = vit.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    try:
        A.attention_maps(vit, torch.randn(1, 3, 64, 64), **kw)
    finally:
        h.remove()
    assert len(calls) == 1


def test_heads_with_rollout_is_refused_in_one_line(tiny_checkpoint, pet_data, tmp_path):
    img = sorted((pet_data / "val").glob("*.jpg"))[0]
    proc = run(["python3", "p1_visualize_attn.py", "--checkpoint", str(tiny_checkpoint), "--images", str(img),
                "--output-dir", str(tmp_path / "out"), "--heads", "--rollout"])
    assert_one_line_error(proc, "--heads and --rollout cannot be combined")
    assert not (tmp_path / "out").exists()


def test_without_class_token_maps_are_the_mean_patch_query():
    # token 0 of a global-pool ViT is a register (here) or a patch, never a CLS query
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    m = VisionTransformer(img_size=(32, 48), patch_size=16, embed_dim=32, depth=2, num_heads=2, class_token=False,
                          reg_tokens=2, no_embed_class=True, global_pool="avg", num_classes=0).eval()
    x = torch.randn(1, 3, 32, 48)
    attns = A.capture_attention(m, x)
    maps = A.attention_maps(m, x)
    assert maps.shape == (1, 2, 3)  # the model's own non-square grid
    assert torch.allclose(maps[0], attns[-1][0, :, 2:, 2:].mean(1).mean(0).reshape(2, 3), atol=1e-6)
    rolled = A.attention_maps(m, x, use_rollout=True)
    full = np.eye(8)  # 2 registers + 6 patches
    for a in attns:
        a = a[0].double().numpy().mean(0) + np.eye(8)
        full = (a / a.sum(1, keepdims=True)) @ full
    assert np.allclose(rolled[0].numpy(), full[2:, 2:].mean(0).reshape(2, 3), atol=1e-6)
    assert A.map_name(m) == "mean patch-query attention (no class token)" and A.map_name(build_model(
        "vit_demo_patch8", pretrained=False)) == "CLS attention"
    assert A.pos_embed_cosine(m).shape == (6, 6)
