"""Run the project's scripts as users do: a subprocess with python3 from this interpreter's bin folder."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def script_env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]  # so `python3` is this venv's
    return env


def run(args, timeout=600, **extra):
    return subprocess.run(args, cwd=ROOT, env=script_env(**extra), capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for f in fragments:
        assert f in errors[0], errors[0]
