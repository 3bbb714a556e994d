"""vitpet/precision.py: bf16 agrees with fp32 and keeps the batch-size contract; a precision the device lacks gets
its one-line notice; p1_inference.py --precision runs each."""
import pytest
import torch

from helpers import run
from hw3io import UserError
from vitpet.data import ImageFolderDataset, build_transforms
from vitpet.model import load_checkpoint
from vitpet.precision import Autocast, speed_notice, with_precision

AMD_AVX2 = {"sse2", "avx", "avx2", "fma"}
XEON_AMX = AMD_AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}
ICELAKE = AMD_AVX2 | {"avx512f", "avx512_vnni"}  # VNNI, but no bf16 instructions


@pytest.fixture(scope="module")
def val_batch(trained):
    data, out, _ = trained
    model, cfg = load_checkpoint(out / "best.safetensors")
    ds = ImageFolderDataset(data / "val", build_transforms(cfg["data_config"], False), labelled=True)
    return model, torch.stack([ds[i][0] for i in range(len(ds))])


def test_bf16_agrees_with_fp32_and_is_really_bf16(val_batch):
    model, x = val_batch
    with torch.inference_mode():
        ref, got = model(x), with_precision(model, "bf16", "cpu")(x)
    assert got.dtype == torch.float32
    assert (ref.argmax(1) == got.argmax(1)).float().mean() >= 0.98
    assert 0 < (got - ref).abs().max() < 0.5  # really rounded to bf16, and close
    assert next(model.parameters()).dtype == torch.float32  # the model itself is untouched


def test_bf16_predictions_do_not_depend_on_the_batch(val_batch):
    model, x = val_batch
    m = with_precision(model, "bf16", "cpu")
    x = x[:12].clone()
    x[0] *= 40  # an outlier image must not change the others
    with torch.inference_mode():
        together = m(x)
        alone = torch.cat([m(x[i:i + 1]) for i in range(len(x))])
    assert torch.equal(together.argmax(1), alone.argmax(1))
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-2)


@pytest.mark.parametrize("precision, flags, expected", [
    ("bf16", AMD_AVX2, "lacks avx512_bf16 and amx_bf16"),
    ("bf16", ICELAKE, "lacks avx512_bf16 and amx_bf16"),
    ("bf16", XEON_AMX, None),
    ("int8", AMD_AVX2, "lacks VNNI"),
    ("int8", ICELAKE, None),
    ("int8", XEON_AMX, None),
    ("fp32", AMD_AVX2, None),
    ("bf16", None, None),  # flags unreadable (not Linux): nothing to go by, no guess
])
def test_a_precision_the_cpu_lacks_gets_one_notice(precision, flags, expected):
    note = speed_notice(precision, "cpu", flags=flags) if flags is not None else None
    if expected is None:
        assert note is None
    else:
        assert note.startswith("note: ") and expected in note and "\n" not in note


def test_bf16_on_a_gpu_without_native_bf16_gets_a_notice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # a T4
    assert "emulates bf16" in speed_notice("bf16", "cuda:0")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # an A100
    assert speed_notice("bf16", "cuda:0") is None


def test_unknown_precision_is_refused():
    with pytest.raises(UserError, match="fp32, bf16, int8"):
        with_precision(torch.nn.Linear(2, 2), "fp16", "cpu")
    assert isinstance(with_precision(torch.nn.Linear(2, 2), "bf16", "cpu"), Autocast)


def test_p1_inference_bf16_writes_fp32s_predictions(trained, tmp_path):
    data, out, _ = trained
    csvs = {}
    for precision in ("fp32", "bf16"):
        csvs[precision] = tmp_path / f"{precision}.csv"
        proc = run(["python3", "p1_inference.py", "--checkpoint", str(out / "best.safetensors"), "--images",
                    str(data / "val"), "--output", str(csvs[precision]), "--precision", precision, "--workers", "0"])
        assert proc.returncode == 0, proc.stderr[-2000:]
    fp32, bf16 = (p.read_text().splitlines() for p in csvs.values())
    assert fp32[0] == bf16[0] == "filename,label" and len(fp32) == len(bf16)
    assert sum(a == b for a, b in zip(fp32, bf16)) >= 0.97 * len(fp32)
