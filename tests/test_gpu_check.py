"""scripts/gpu_check.py --cpu: the GPU machine's prepared check at toy sizes, so that it cannot rot between GPUs."""
import json

from helpers import run


def test_gpu_check_passes_at_toy_sizes_on_the_cpu(tmp_path):
    proc = run(["python3", "scripts/gpu_check.py", "--cpu", "--json", str(tmp_path / "rows.json")])
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    checks = " ".join(r[0] for r in rows)
    for part in ("--amp off", "--amp bf16", "--amp auto picks", "p1_inference.py", "torchrun 2 ranks", "SIGTERM",
                 "p2_train.py", "hw3_1.sh", "hw3_2.sh"):
        assert part in checks, checks
    assert all(r[3] for r in rows), rows
    assert "| check | result | expected | ok |" in proc.stdout


def gpu_check():
    import importlib
    import sys
    from helpers import ROOT
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return importlib.import_module("gpu_check")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_every_script_runs_under_the_checks_own_interpreter():
    """On the GPU machine python3 holds torch and there is no venv: the check's subprocesses must not pick another
    `python3` (a half-made .venv, a Python without torch)."""
    import os
    import sys
    from helpers import ROOT
    check = gpu_check()
    assert check.python("p1_train.py", "--epochs", 2) == [sys.executable, "p1_train.py", "--epochs", "2"]
    assert check.script_env()["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    assert '"python3"' not in (ROOT / "scripts" / "gpu_check.py").read_text()


def test_torchrun_ranks_split_the_batch_exactly_on_any_gpu_count():
    check = gpu_check()
    assert check.ddp_split(1) is None and check.ddp_split(0) is None
    for gpus in range(2, 17):
        ranks, per_rank = check.ddp_split(gpus)
        assert ranks * per_rank == check.BATCH and 2 <= ranks <= gpus, gpus
    assert check.ddp_split(3) == (2, 4) and check.ddp_split(7) == (4, 2) and check.ddp_split(12) == (8, 1)


def test_bf16_row_passes_a_correct_path_and_catches_a_broken_one():
    """A near-chance model's margins are tiny: the row compares logits, and predictions only where fp32's margin
    bounds them."""
    import torch
    check = gpu_check()
    g = torch.Generator().manual_seed(0)
    fp32 = torch.randn(64, 37, generator=g) * 0.3
    rounded = fp32.to(torch.bfloat16).float() * (1 + 0.01 * torch.randn(64, 37, generator=g))
    error, clear = check.bf16_check(fp32, rounded)
    assert error <= check.BF16_TOLERANCE and 0 < sum(clear) < 64
    top2 = fp32.topk(2, 1).values
    assert all(c == bool(d > 2 * check.BF16_TOLERANCE * s) for c, d, s in
               zip(clear, top2[:, 0] - top2[:, 1], fp32.abs().amax(1)))
    error, _ = check.bf16_check(fp32, torch.randn(64, 37, generator=g) * 0.3)  # a path computing something else
    assert error > check.BF16_TOLERANCE


def test_environment_line_on_a_faked_gpu_machine(monkeypatch):
    import torch
    check = gpu_check()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
    line, gpus = check.environment(check.GPU)
    assert gpus == 3 and line.startswith("3 x NVIDIA H100 80GB HBM3 (compute capability 9.0)")
    assert check.ddp_split(gpus) == (2, 4)
