"""vitpet.relevance and the methods of p1_visualize_attn.py / vitpet.pointing: maps of the decision beside attention,
in one layout, scored for pointing and faithfulness."""
import re

import numpy as np
import pytest
import timm
import torch

from helpers import run
from vitpet.attention import capture_attention
from vitpet.explain import METHODS, method_maps
from vitpet.relevance import class_scores, predicted_classes, relevance


def two_head_vit():
    """One block, two heads of 16 dims; head 1's output is cut from the residual stream (its columns of the output
    projection are zero), so only head 0's path reaches the decision."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                              depth=1, num_heads=2, num_classes=5).eval()
    with torch.no_grad():
        model.blocks[0].attn.proj.weight[:, 16:] = 0
    return model


def test_relevance_follows_the_head_that_reaches_the_decision():
    model, x = two_head_vit(), torch.randn(2, 3, 32, 32)
    classes = predicted_classes(model, x)
    before = relevance(model, x, classes)
    attention_before = capture_attention(model, x)[0].mean(1)
    with torch.no_grad():  # head 1 now attends elsewhere: its queries and keys change, the decision does not
        qkv = model.blocks[0].attn.qkv.weight
        qkv[16:32] = torch.randn(16, 32) * 3   # head 1's queries
        qkv[48:64] = torch.randn(16, 32) * 3   # head 1's keys
    assert torch.equal(predicted_classes(model, x), classes)
    assert not torch.allclose(capture_attention(model, x)[0].mean(1), attention_before, atol=1e-3)
    assert torch.allclose(relevance(model, x, classes), before, atol=1e-6)


def test_relevance_equals_its_rule_recomputed_by_hand():
    """One block: R = I + E_h[(dlogp/dA * A)^+], the CLS row over the patches."""
    model, x = two_head_vit(), torch.randn(1, 3, 32, 32)
    cls = int(predicted_classes(model, x))
    attn = model.blocks[0].attn
    attn.fused_attn = False
    kept = []

    def keep(module, args, out):
        out.retain_grad()
        kept.append(out)
    h = attn.attn_drop.register_forward_hook(keep)
    try:
        model(x).double().log_softmax(-1)[0, cls].backward()
    finally:
        h.remove()
    a = kept[0]
    r = torch.eye(17) + (a.grad * a).clamp(min=0).mean(1)[0]
    assert torch.allclose(relevance(model, x, torch.tensor([cls]))[0].flatten(), r[0, 1:].float(), atol=1e-6)


def test_class_scores_are_float64_log_probabilities_and_probabilities():
    model, x = two_head_vit(), torch.randn(3, 3, 32, 32)
    logp, prob = class_scores(model, 2)(x), class_scores(model, 2, "prob")(x)
    assert logp.dtype == torch.float64 and logp.shape == (3, 1)
    assert torch.allclose(prob, logp.exp()) and torch.allclose(prob[:, 0].float(), model(x).softmax(-1)[:, 2])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_writes_the_attention_layout(tiny_checkpoint, pet_data, tmp_path, method):
    from p1_visualize_attn import main
    images = [str(p) for p in sorted((pet_data / "val").glob("*.jpg"))[:2]]
    main(["--checkpoint", str(tiny_checkpoint), "--images", *images, "--output-dir", str(tmp_path),
          "--method", method, "--masks", "16"])
    for p in images:
        stem = p.rsplit("/", 1)[-1][:-4]
        m = np.load(tmp_path / f"{stem}.npy")
        assert m.shape == (8, 8) and np.isfinite(m).all() and m.std() > 0, method
        assert (tmp_path / f"{stem}.png").stat().st_size > 0


def test_method_maps_batch_equals_one_at_a_time():
    model, x = two_head_vit(), torch.randn(3, 3, 32, 32)
    for method in ("relevance", "attribution", "occlusion"):
        batch = method_maps(model, x, method)
        one = torch.cat([method_maps(model, x[i:i + 1], method) for i in range(3)])
        assert torch.allclose(batch, one, atol=1e-6), method


def test_pointing_table_with_faithfulness(tiny_checkpoint, pet_data):
    proc = run(["python3", "-m", "vitpet.pointing", "--checkpoint", str(tiny_checkpoint), "--images",
                str(pet_data / "val"), "--faithfulness", "--limit", "3", "--masks", "16"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| deletion (lower: better) | insertion (higher: better) | randomisation (rank corr.) | images |" \
        in proc.stdout
    rows = re.findall(r"^\| ([a-z][^|]*?) \|(( [-0-9.]+ \|){6}) 3 \|$", proc.stdout, re.M)
    names = [r[0] for r in rows]
    assert [n.split(",")[0].split(" (")[0] for n in names] == ["attention"] * 5 + [
        "rollout", "relevance", "attribution", "rise", "occlusion", "image centre", "random point"]
    for name, cells, _ in rows[:10]:
        values = [float(v) for v in cells.split("|")[:-1]]
        assert all(0 <= v <= 1 for v in values[:5]) and -1 <= values[5] <= 1, (name, values)
    random_row = rows[-1][1].split("|")[:-1]
    assert random_row[3].strip() != "-" and random_row[5].strip() == "-"
