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
