"""vitpet/quantize.py: the opt-in int8 CPU path agrees with fp32, keeps the batch-size contract, is never saved."""
import pytest
import torch

from helpers import assert_one_line_error, run
from hw3io import UserError
from vitpet.data import ImageFolderDataset, build_transforms
from vitpet.model import load_checkpoint, save_checkpoint
from vitpet.publish import sha256_file
from vitpet.quantize import PerImageLinear, is_quantized, quantize_int8


@pytest.fixture(scope="module")
def val_batch(trained):
    data, out, _ = trained
    model, cfg = load_checkpoint(out / "best.safetensors")
    ds = ImageFolderDataset(data / "val", build_transforms(cfg["data_config"], False), labelled=True)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    return model, x, torch.tensor(ds.targets)


def test_int8_agrees_with_fp32_on_a_trained_model(val_batch):
    model, x, y = val_batch
    q = quantize_int8(model)
    with torch.inference_mode():
        ref, got = model(x), q(x)
    agree = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    assert agree >= 0.99, agree
    assert abs((got.argmax(1) == y).float().mean() - (ref.argmax(1) == y).float().mean()) <= 0.01
    assert 0 < (got - ref).abs().max() < 0.5  # really quantized, and close
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert sum(isinstance(m, PerImageLinear) for m in q.modules()) == linears - 1  # all but the classifier
    assert not is_quantized(model) and not any(isinstance(m, PerImageLinear) for m in model.modules())


def test_int8_predictions_do_not_depend_on_the_batch(val_batch):
    model, x, _ = val_batch
    q = quantize_int8(model)
    x = x[:12].clone()
    x[0] *= 40  # an outlier image: with one scale per batch it would coarsen every other image's activations
    with torch.inference_mode():
        together = q(x)
        alone = torch.cat([q(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-4)


def test_a_quantized_model_is_never_saved(val_batch, trained, tmp_path):
    model, _, _ = val_batch
    with pytest.raises(UserError, match="int8"):
        save_checkpoint(tmp_path / "q.safetensors", quantize_int8(model), {"model": "x"})
    assert not (tmp_path / "q.safetensors").exists()
    data, out, _ = trained
    before = sha256_file(out / "best.safetensors")
    proc = run(["python3", "p1_inference.py", "--checkpoint", str(out / "best.safetensors"), "--images",
                str(data / "val"), "--output", str(tmp_path / "p.csv"), "--precision", "int8", "--workers", "0"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "accuracy" in proc.stdout and sha256_file(out / "best.safetensors") == before


def test_int8_on_a_gpu_is_refused_in_one_line(trained, tmp_path):
    data, out, _ = trained
    proc = run(["python3", "p1_inference.py", "--checkpoint", str(out / "best.safetensors"), "--images",
                str(data / "val"), "--output", str(tmp_path / "p.csv"), "--precision", "int8", "--device", "cuda"])
    assert_one_line_error(proc, "--precision int8 runs on the CPU only")
    assert not (tmp_path / "p.csv").exists()
