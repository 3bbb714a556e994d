import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch a hub

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def pet_data(tmp_path_factory):
    """A small generated train/val pair in the homework's naming."""
    from vitpet.synthetic import make_dataset
    return make_dataset(tmp_path_factory.mktemp("pets"), train_per_class=6, val_per_class=2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random-initialised tiny ViT saved as a real checkpoint (no training needed for format tests)."""
    from vitpet.model import build_model, resolve_model_data_config, save_checkpoint
    torch.manual_seed(0)
    model = build_model("vit_demo_patch8", num_classes=37, pretrained=False)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, model, {"model": "vit_demo_patch8", "num_classes": 37, "img_size": 64,
                                  "data_config": resolve_model_data_config(model), "val_acc": 0.5, "epoch": 3})
    return path
