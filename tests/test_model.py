import pytest
import safetensors.torch
import torch

from hw3io import UserError
from vitpet.model import build_model, load_checkpoint, read_checkpoint, save_checkpoint


def test_checkpoint_round_trip(tiny_checkpoint):
    state, config = read_checkpoint(tiny_checkpoint)
    model, config2 = load_checkpoint(tiny_checkpoint)
    assert config == config2
    assert config["model"] == "vit_demo_patch8" and config["num_classes"] == 37 and config["img_size"] == 64
    assert config["val_acc"] == 0.5 and config["epoch"] == 3 and "torch" in config["versions"]
    assert config["data_config"]["input_size"] == [3, 64, 64]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    # Rebuilt model computes the same function as the saved one.
    torch.manual_seed(0)
    ref = build_model("vit_demo_patch8", num_classes=37, pretrained=False).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x), ref(x), atol=1e-6)


def test_checkpoint_is_not_a_pickle(tiny_checkpoint):
    head = tiny_checkpoint.read_bytes()[:16]
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # neither pickle nor torch zip
    assert safetensors.torch.load_file(str(tiny_checkpoint))  # plain safetensors


def test_bad_checkpoints(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="not a valid checkpoint"):
        load_checkpoint(tmp_path / "garbage.safetensors")
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(UserError, match="not a vitpet checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_truncated_checkpoint(tiny_checkpoint, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(UserError, match="not a valid checkpoint"):
        load_checkpoint(cut)


def test_pretrained_file_loads_backbone_and_resets_head(tmp_path):
    torch.manual_seed(1)
    src = build_model("vit_tiny_patch16_224", num_classes=1000, pretrained=False, img_size=32)
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = build_model("vit_tiny_patch16_224", num_classes=37, img_size=32, pretrained_file=str(path))
    assert torch.equal(model.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    assert model.head.weight.shape == (37, 192)
    with pytest.raises(UserError, match="not found"):
        build_model("vit_tiny_patch16_224", pretrained_file=str(tmp_path / "missing.safetensors"))


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown timm model"):
        build_model("no_such_model_xyz", pretrained=False)


def test_save_is_atomic(tiny_checkpoint, tmp_path):
    model, config = load_checkpoint(tiny_checkpoint)
    save_checkpoint(tmp_path / "a.safetensors", model, config)
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temp file left behind


def test_a_training_state_given_as_checkpoint_points_to_best(tmp_path):
    from training.state import STATE_FORMAT
    state = tmp_path / "last.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(state), metadata={"format": STATE_FORMAT})
    with pytest.raises(UserError, match="training state for --resume.*use best.safetensors"):
        load_checkpoint(state)
