"""vitpet.explain's ``--model NAME --pretrained-file FILE [--img-size S]`` route, for every timm ViT family a student
may explain: each family is a tiny random-init model of that family's shape, saved as a timm .safetensors, loaded back
through the scripts' flags (``main(argv)`` in-process), and its written maps are checked against the attention and
position embeddings recomputed by hand from the saved weights."""
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from timm.layers import resample_abs_pos_embed
from timm.models import get_pretrained_cfg, register_model

import p1_visualize_attn
import p1_visualize_pos
from helpers import assert_one_line_error, run
from hw3io import UserError
from vitpet import pointing

# family -> (the real timm name it shrinks, patch size, layer norm eps, class token, register tokens,
#            no_embed_class, pre-norm, LayerScale). The names must exist in timm: see test_families_are_real.
FAMILIES = {
    "patch16": ("vit_small_patch16_224", 16, 1e-6, True, 0, False, False, False),
    "patch14_layerscale": ("vit_small_patch14_dinov2", 14, 1e-6, True, 0, False, False, True),
    "reg4": ("vit_small_patch14_reg4_dinov2", 14, 1e-6, True, 4, True, False, True),
    "gap": ("vit_base_patch16_gap_224", 16, 1e-6, False, 0, False, False, False),
    "reg4_gap": ("vit_medium_patch16_reg4_gap_256", 16, 1e-6, False, 4, True, False, True),
    "clip": ("vit_base_patch16_clip_224", 16, 1e-5, True, 0, False, True, False),
}
GRID = 5  # patches per side; S = GRID * patch


def _register(family, real):
    # A registered name whose pretrained_cfg (mean/std, head, crop) is the real family's, at a tiny width and depth,
    # so the CLI's --model NAME builds exactly the saved architecture.
    def create(pretrained=False, **kwargs):
        return timm.create_model(real, pretrained=pretrained, embed_dim=32, depth=2, num_heads=2, **kwargs)
    create.__name__ = f"tiny_test_{family}"
    create.__module__ = __name__
    return register_model(create)


for _family, (_real, *_) in FAMILIES.items():
    _register(_family, _real)


def test_families_are_real():
    for real, patch, _, cls, regs, no_embed_class, pre_norm, ls in FAMILIES.values():
        assert timm.list_models(real) == [real]
        m = timm.create_model(real, pretrained=False, img_size=GRID * patch, embed_dim=32, depth=1, num_heads=2)
        assert (m.cls_token is not None, m.num_prefix_tokens, m.no_embed_class) == (cls, int(cls) + regs,
                                                                                    no_embed_class)
        assert isinstance(m.norm_pre, torch.nn.LayerNorm) == pre_norm
        assert hasattr(m.blocks[0].ls1, "gamma") == ls


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "pet.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(path)  # non-square: resize + crop
    return path


def saved_family(family, tmp_path, num_classes=3, seed=0):
    """Save a tiny random model of ``family`` as a timm weights file; returns (name, size, path, state)."""
    real, patch = FAMILIES[family][:2]
    name, size = f"tiny_test_{family}", GRID * patch
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, img_size=size, num_classes=num_classes)
    with torch.no_grad():  # timm's init (pos_embed std .02, LayerScale 1e-5) gives near-uniform attention
        for p in model.parameters():
            p.normal_(0, 0.5)
    path = tmp_path / f"{family}.safetensors"
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return name, size, path, state


def model_input(family, image, size):
    """The normalised input, built with timm's own transforms from the real family's pretrained_cfg."""
    cfg = resolve_data_config({"input_size": (3, size, size)}, pretrained_cfg=get_pretrained_cfg(
        FAMILIES[family][0]).to_dict())
    return create_transform(**cfg)(Image.open(image).convert("RGB"))[None]


def attention_by_hand(family, state, x):
    """Every block's softmax(q k^T / sqrt(d)), (1, heads, N, N), from the saved weights alone."""
    _, patch, eps, _, _, no_embed_class, pre_norm, _ = FAMILIES[family]
    s = state
    norm = lambda t, k: F.layer_norm(t, t.shape[-1:], s[k + ".weight"], s[k + ".bias"], eps)  # noqa: E731
    lin = lambda t, k: t @ s[k + ".weight"].T + s[k + ".bias"]  # noqa: E731
    t = F.conv2d(x, s["patch_embed.proj.weight"], s.get("patch_embed.proj.bias"), stride=patch)  # none in CLIP
    t = t.flatten(2).transpose(1, 2)  # (1, P, D), row-major patches
    prefix = [s[k] for k in ("cls_token", "reg_token") if k in s]
    if no_embed_class:  # pos_embed covers the patches only
        t = torch.cat(prefix + [t + s["pos_embed"]], 1)
    else:
        t = torch.cat(prefix + [t], 1) + s["pos_embed"]
    if pre_norm:
        t = norm(t, "norm_pre")
    attns = []
    for i in range(2):
        b = f"blocks.{i}."
        h = norm(t, b + "norm1")
        B, N, C = h.shape
        q, k, v = lin(h, b + "attn.qkv").reshape(B, N, 3, 2, C // 2).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / (C // 2) ** 0.5, -1)  # (1, heads, N, N)
        attns.append(a)
        out = lin((a @ v).transpose(1, 2).reshape(B, N, C), b + "attn.proj")
        t = t + out * s.get(b + "ls1.gamma", 1.0)
        mlp = lin(F.gelu(lin(norm(t, b + "norm2"), b + "mlp.fc1")), b + "mlp.fc2")
        t = t + mlp * s.get(b + "ls2.gamma", 1.0)
    return attns


def expected_map(family, attn):
    """The CLS row over patches; without a class token the mean of the patch rows (what the figures promise)."""
    _, _, _, cls, regs = FAMILIES[family][:5]
    npt = int(cls) + regs
    rows = attn[0, :, 0, npt:] if cls else attn[0, :, npt:, npt:].mean(1)
    return rows.mean(0).reshape(GRID, GRID).numpy()


def rollout_by_hand(family, attns):
    _, _, _, cls, regs = FAMILIES[family][:5]
    npt = int(cls) + regs
    result = np.eye(attns[0].shape[-1])
    for a in attns:
        a = a[0].double().mean(0).numpy() + np.eye(a.shape[-1])
        result = (a / a.sum(1, keepdims=True)) @ result
    rows = result[0, npt:] if cls else result[npt:, npt:].mean(0)
    return rows.reshape(GRID, GRID)


def cosine(pe):
    pe = pe.double().numpy()
    pe = pe / np.linalg.norm(pe, axis=1, keepdims=True)
    return pe @ pe.T


@pytest.mark.parametrize("family", FAMILIES)
def test_maps_of_every_family_equal_a_recomputation_from_the_file(family, image, tmp_path):
    name, size, path, state = saved_family(family, tmp_path)
    src = ["--model", name, "--pretrained-file", str(path), "--img-size", str(size)]
    attns = attention_by_hand(family, state, model_input(family, image, size))
    for flags, expected in [([], expected_map(family, attns[-1])), (["--rollout"], rollout_by_hand(family, attns))]:
        out = tmp_path / ("attn" + "".join(flags))
        p1_visualize_attn.main([*src, "--images", str(image), "--output-dir", str(out), "--device", "cpu", *flags])
        got = np.load(out / "pet.npy")
        assert got.shape == (GRID, GRID)
        assert got.max() > 2 * got.min()  # peaked enough that a wrong row or slice could not pass
        assert np.allclose(got, expected, atol=1e-5), np.abs(got - expected).max()
    p1_visualize_pos.main([*src, "--output", str(tmp_path / "pos.png")])
    patch_pe = state["pos_embed"][0] if FAMILIES[family][5] else state["pos_embed"][0, FAMILIES[family][3] +
                                                                                      FAMILIES[family][4]:]
    assert np.allclose(np.load(tmp_path / "pos.npy"), cosine(patch_pe), atol=1e-5)


def test_no_class_token_is_said_in_the_title(image, tmp_path, monkeypatch):
    from vitpet import plotting
    titles = []
    monkeypatch.setattr(plotting, "plot_attention", lambda *a, **kw: titles.append(a[4]))
    for family in ("gap", "reg4"):
        name, size, path, _ = saved_family(family, tmp_path)
        p1_visualize_attn.main(["--model", name, "--pretrained-file", str(path), "--images", str(image),
                                "--output-dir", str(tmp_path / family), "--device", "cpu"])
    assert "mean patch-query attention (no class token)" in titles[0]
    assert "CLS attention" in titles[1]


@pytest.mark.parametrize("family", ["patch16", "reg4"])
def test_img_size_resamples_position_embeddings(family, tmp_path):
    name, size, path, state = saved_family(family, tmp_path)
    patch, no_embed_class = FAMILIES[family][1], FAMILIES[family][5]
    new = GRID + 2
    p1_visualize_pos.main(["--model", name, "--pretrained-file", str(path), "--img-size", str(new * patch),
                           "--output", str(tmp_path / "pos.png")])
    npt = 0 if no_embed_class else 1  # the rows of pos_embed that are not patches
    pe = resample_abs_pos_embed(state["pos_embed"], (new, new), (GRID, GRID), num_prefix_tokens=npt)[0, npt:]
    assert np.allclose(np.load(tmp_path / "pos.npy"), cosine(pe), atol=1e-5)


@pytest.mark.parametrize("family", ["gap", "reg4"])
def test_pointing_takes_a_timm_file(family, pet_data, tmp_path, capsys):
    name, size, path, _ = saved_family(family, tmp_path, num_classes=0)
    val = pet_data / "val"  # with the boxes.json the generator writes
    pointing.main(["--model", name, "--pretrained-file", str(path), "--img-size", str(size), "--images", str(val),
                   "--device", "cpu"])
    out = capsys.readouterr().out
    assert "attention, layer 1 (last: the homework's map)" in out and "rollout" in out and "relevance" in out


def test_a_file_of_another_model_is_refused_not_loaded_half(tmp_path):
    # Same shapes, other keys: a CLIP file has norm_pre and no patch-embedding bias. Any num_classes but the file's
    # would make timm drop the head and load non-strictly, drawing maps of a half-random plain ViT.
    _, _, path, _ = saved_family("clip", tmp_path)
    with pytest.raises(UserError, match="could not load pretrained weights for tiny_test_patch16"):
        p1_visualize_pos.main(["--model", "tiny_test_patch16", "--pretrained-file", str(path), "--img-size", "80",
                               "--output", str(tmp_path / "pos.png")])
    assert not (tmp_path / "pos.npy").exists()


def test_model_flags_without_model_are_one_error_line(tiny_checkpoint, pet_data, tmp_path):
    for flags in (["--img-size", "64"], ["--pretrained-file", str(tiny_checkpoint)]):
        with pytest.raises(UserError, match="go with --model NAME"):
            pointing.main(["--checkpoint", str(tiny_checkpoint), *flags, "--images", str(pet_data / "val")])
    proc = run(["python3", "p1_visualize_pos.py", "--checkpoint", str(tiny_checkpoint), "--pretrained-file",
                str(tiny_checkpoint), "--output", str(tmp_path / "pos.png")])
    assert_one_line_error(proc, "--pretrained-file and --img-size go with --model NAME")
    assert not (tmp_path / "pos.png").exists()


def test_file_head_is_read_from_safetensors_and_torch_files(tmp_path):
    from vitpet.model import file_num_classes
    _, _, path, state = saved_family("patch16", tmp_path, num_classes=3)
    torch.save(state, tmp_path / "w.bin")
    assert file_num_classes("tiny_test_patch16", path) == file_num_classes("tiny_test_patch16", tmp_path / "w.bin") == 3
    _, _, headless, _ = saved_family("reg4", tmp_path, num_classes=0)
    assert file_num_classes("vit_small_patch14_reg4_dinov2", headless) == 0
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read pretrained weights file"):
        file_num_classes("tiny_test_patch16", tmp_path / "junk.safetensors")
