"""hw3io.atomic: outputs appear whole, with the umask's mode, and folders only once something is written."""
import os
import stat

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from hw3io import UserError, atomic_save_npy, atomic_write_text, ensure_writable_dir, save_figure


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_get_the_umask_mode(tmp_path, umask_022, tiny_checkpoint):
    from vitpet.inference import write_predictions
    from vitpet.model import load_checkpoint, save_checkpoint
    write_predictions(pd.DataFrame({"filename": ["a.jpg"], "label": [1]}), tmp_path / "p.csv")
    fig, _ = plt.subplots()
    save_figure(fig, tmp_path / "f.png")
    atomic_save_npy(tmp_path / "m.npy", torch.zeros(2).numpy())
    model, cfg = load_checkpoint(tiny_checkpoint)
    save_checkpoint(tmp_path / "c.safetensors", model, cfg)
    for name in ["p.csv", "f.png", "m.npy", "c.safetensors"]:
        assert mode(tmp_path / name) == 0o644, name
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.txt", "x")
    assert mode(tmp_path / "private.txt") == 0o600


def test_checking_a_folder_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert ensure_writable_dir(target) == target
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(target / "x.txt", "x")  # created when something is written
    assert (target / "x.txt").read_text() == "x"


def test_unwritable_targets_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        ensure_writable_dir(tmp_path / "file" / "sub")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UserError, match="cannot write"):
        ensure_writable_dir(tmp_path / "dangling" / "sub")
    with pytest.raises(UserError, match="cannot write"):
        atomic_write_text(tmp_path / "file" / "x.txt", "x")
