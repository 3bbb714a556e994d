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
    from synth.pets import make_dataset
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


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The tiny ViT trained from scratch for a few epochs by p1_train.py on generated data: (data, run, process)."""
    from helpers import run
    from synth.pets import make_dataset
    root = tmp_path_factory.mktemp("e2e")
    data = make_dataset(root / "data", train_per_class=16, val_per_class=4, seed=5)
    out = root / "run"
    proc = run(["python3", "p1_train.py", "--data-dir", str(data), "--model", "vit_demo_patch8", "--no-pretrained",
                "--epochs", "4", "--batch-size", "32", "--lr", "2e-3", "--opt", "adamw", "--weight-decay", "0.05",
                "--drop-path", "0", "--workers", "0", "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, out, proc
