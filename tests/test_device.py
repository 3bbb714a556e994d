"""hw3io.device: --device auto, and the one line the graded scripts print when they fall back to the CPU."""
import subprocess
import warnings

import torch

from helpers import ROOT, script_env


def test_cpu_fallback_gives_torchs_reason(monkeypatch, capsys):
    from hw3io.device import cuda_unavailable_reason, pick_device
    message = ("CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).\n"
               "Please update your GPU driver.")

    def old_driver():
        warnings.warn(message)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", old_driver)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert cuda_unavailable_reason() == " ".join(message.split())
    assert pick_device("auto", say_cpu=True) == torch.device("cpu")
    note = "note: running on the CPU, which is far slower than a GPU: " + " ".join(message.split())
    assert capsys.readouterr().err == note + "\n"
    assert pick_device("auto") == torch.device("cpu") and capsys.readouterr().err == ""  # only where asked
    assert pick_device("cpu", say_cpu=True) == torch.device("cpu")
    assert capsys.readouterr().err == ""  # chosen, not fallen back to
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "has no CUDA support" in cuda_unavailable_reason()


def test_graded_script_says_it_runs_on_the_cpu(tiny_checkpoint, pet_data, tmp_path):
    proc = subprocess.run(["bash", "hw3_1.sh", str(pet_data / "val"), str(tmp_path / "pred.csv")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=script_env(P1_CHECKPOINT=str(tiny_checkpoint)))
    assert proc.returncode == 0, proc.stderr
    notes = [l for l in proc.stderr.splitlines() if l.startswith("note: running on the CPU")]
    if torch.cuda.is_available():
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].split(": ", 2)[2], proc.stderr  # with torch's reason
