"""catr/backbone.py, position_encoding.py, transformer.py, caption.py."""
import json
import math
from pathlib import Path

import pytest
import torch

from catr import CATRConfig, build_model, create_model
from catr.backbone import Backbone
from catr.position_encoding import PositionEmbeddingSine
from catr_tiny import tiny_config, tiny_model
from hw3io import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "catr_official_state_dict_shapes.json"


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return build_model(CATRConfig()).eval()


def test_state_dict_equals_official_keys_and_shapes(full_model):
    official = json.loads(FIXTURE.read_text())
    ours = {k: list(v.shape) for k, v in full_model.state_dict().items()}
    assert list(ours) == list(official)  # same keys, same order
    assert ours == official
    assert sum(math.prod(s) for s in ours.values()) == 84_392_954


def test_official_style_checkpoint_loads_strictly(full_model, tmp_path):
    path = tmp_path / "official.pth"
    torch.save({"model": full_model.state_dict(), "epoch": 3}, path)
    model = create_model(checkpoint=str(path))
    for (k, a), b in zip(model.state_dict().items(), full_model.state_dict().values()):
        assert torch.equal(a, b), k
    broken = {k: v for k, v in full_model.state_dict().items() if "mlp" not in k}
    torch.save({"model": broken}, tmp_path / "broken.pth")
    with pytest.raises(UserError, match="does not match"):
        create_model(checkpoint=str(tmp_path / "broken.pth"))


def test_weight_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="not found"):
        create_model(checkpoint=str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read CATR checkpoint"):
        create_model(checkpoint=str(tmp_path / "junk.pth"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setenv("CATR_CHECKPOINT", str(tmp_path / "junk.pth"))  # read by the scripts, not the library
    with pytest.raises(UserError, match="--checkpoint"):
        create_model(version="v3")


@pytest.mark.parametrize("hw", [(299, 299), (199, 299), (299, 130), (17, 33)])
def test_dilated_backbone_grid_is_ceil_16(hw):
    backbone = Backbone("resnet50", dilation=True).eval()
    x = torch.zeros(1, 3, *hw)
    feats, mask = backbone(x, torch.zeros(1, *hw, dtype=torch.bool))
    assert feats.shape[-2:] == (math.ceil(hw[0] / 16), math.ceil(hw[1] / 16)) == mask.shape[-2:]
    assert not mask.any()
    assert not any(k.endswith("num_batches_tracked") for k in backbone.state_dict())  # frozen BN buffers only


def test_sine_position_encoding_values():
    pe = PositionEmbeddingSine(8, normalize=True)
    pos = pe(torch.zeros(1, 3, 5, dtype=torch.bool))
    assert pos.shape == (1, 16, 3, 5)
    # channel 0 is sin(y_normalised), with y = row index + 1 scaled so the last row is 2*pi
    y = torch.tensor([1.0, 2.0, 3.0]) / (3 + 1e-6) * 2 * math.pi
    assert torch.allclose(pos[0, 0, :, 0], y.sin(), atol=1e-6)
    x = torch.arange(1, 6.0) / (5 + 1e-6) * 2 * math.pi
    assert torch.allclose(pos[0, 9, 0, :], x.cos(), atol=1e-6)  # first x channel pair: sin at 8, cos at 9


def test_cross_attention_equals_manual_recomputation():
    model = tiny_model()
    x = torch.randn(1, 3, 64, 80)
    memory, fmask, pos, grid = model.encode_image(x, torch.zeros(1, 64, 80, dtype=torch.bool))
    layer = model.transformer.decoder.layers[-1]
    seen = {}
    h = layer.multihead_attn.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    ids = torch.tensor([[2, 5, 9, 7]])
    try:
        _, attn = model.decode(ids, None, memory, fmask, pos, attn_layer=-1, attn_mode="heads")
    finally:
        h.remove()
    mha = layer.multihead_attn
    E, H = mha.embed_dim, mha.num_heads
    wq, wk, _ = mha.in_proj_weight.split(E)
    bq, bk, _ = mha.in_proj_bias.split(E)
    q = (seen["query"][:, 0] @ wq.T + bq).reshape(-1, H, E // H).transpose(0, 1)  # (H, T, d)
    k = (seen["key"][:, 0] @ wk.T + bk).reshape(-1, H, E // H).transpose(0, 1)    # (H, S, d)
    manual = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(E // H), dim=-1)
    assert attn.shape == (1, H, 4, grid[0] * grid[1])
    assert torch.allclose(attn[0], manual, atol=1e-5)
    _, mean = model.decode(ids, None, memory, fmask, pos, attn_layer=-1)
    assert torch.allclose(mean[0], manual.mean(0), atol=1e-5)


def test_decoder_is_causal():
    model = tiny_model()
    x = torch.randn(1, 3, 48, 48)
    enc = model.encode_image(x, torch.zeros(1, 48, 48, dtype=torch.bool))[:3]
    long, a_long = model.decode(torch.tensor([[2, 5, 9, 7, 11]]), None, *enc, attn_layer=0)
    short, a_short = model.decode(torch.tensor([[2, 5, 9]]), None, *enc, attn_layer=0)
    assert torch.allclose(long[:, :3], short, atol=1e-5) and torch.allclose(a_long[:, :3], a_short, atol=1e-6)


def test_tiny_config_builds_with_its_own_numbers():
    model = build_model(tiny_config())
    assert model.mlp.layers[-1].out_features == 24
    assert len(model.transformer.decoder.layers) == 2
