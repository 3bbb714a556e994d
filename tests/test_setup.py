"""The set-up a fresh machine runs (make setup) and what the graded scripts take from it: a venv is used only once
its install finished, and a failed install leaves none behind."""
import re
import shutil
import subprocess

from helpers import ROOT, script_env, script_repo

# Stands in for python3: makes a venv whose pip fails, as an offline `pip install torch==...` does.
FAKE_PYTHON = """#!/bin/sh
mkdir -p .venv/bin
printf '#!/bin/sh\\necho half-made venv >&2\\nexit 3\\n' > .venv/bin/python3
printf '#!/bin/sh\\necho pip: no network >&2\\nexit 1\\n' > .venv/bin/pip
chmod +x .venv/bin/python3 .venv/bin/pip
"""


def test_a_failed_install_leaves_no_venv(tmp_path):
    for name in ("Makefile", "requirements.txt", "requirements-pinned.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    proc = subprocess.run(["make", "setup", f"PY={fake}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "pip: no network" in proc.stderr
    assert "removed it" in proc.stderr
    assert not (tmp_path / ".venv").exists()


def test_graded_scripts_use_the_venv_only_once_its_install_finished(tmp_path):
    repo = script_repo(tmp_path)
    venv_python = repo / ".venv" / "bin" / "python3"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("#!/bin/sh\necho half-made venv >&2\nexit 3\n")
    venv_python.chmod(0o755)
    for script in ("hw3_1.sh", "hw3_2.sh"):
        args = ["bash", str(repo / script), str(tmp_path / "no-such-folder"), str(tmp_path / "out")]
        proc = subprocess.run(args, cwd=tmp_path, env=script_env(P1_CHECKPOINT=str(tmp_path / "p1.safetensors")),
                              capture_output=True, text=True, timeout=120)
        assert "half-made venv" not in proc.stderr and "error: " in proc.stderr, proc.stderr  # python3's own
        (repo / ".venv" / ".installed").touch()  # a finished install: now the venv is the one used
        proc = subprocess.run(args, cwd=tmp_path, env=script_env(P1_CHECKPOINT=str(tmp_path / "p1.safetensors")),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3 and "half-made venv" in proc.stderr
        (repo / ".venv" / ".installed").unlink()


def requirements(name):
    """{package: (operator, version)} of a requirements file, following ``-r`` includes."""
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found.update(requirements(line[3:].strip()))
        elif line:
            package, op, version = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(==|>=)\s*(\S+)", line).groups()
            found[package.lower().replace("_", "-")] = (op, version)
    return found


def test_requirements_keep_the_machines_torch_and_the_pins_satisfy_them():
    from hw3io.errors import MIN_VERSIONS, release
    loose, pinned = requirements("requirements.txt"), requirements("requirements-pinned.txt")
    assert "torch" not in loose and "torchvision" not in loose  # pip must not replace the CUDA build
    assert all(op == ">=" for op, _ in loose.values())
    assert all(op == "==" for op, _ in pinned.values()) and {"torch", "torchvision"} <= set(pinned)
    for package, (_, low) in loose.items():
        assert release(pinned[package][1]) >= release(low), package  # the tested set meets every lower bound
    assert release(pinned["torch"][1]) >= MIN_VERSIONS["torch"] and release(pinned["timm"][1]) >= MIN_VERSIONS["timm"]
    assert release(loose["timm"][1]) >= MIN_VERSIONS["timm"]
    # make setup installs the pinned set, and its stamp is redone when either file it reads changes
    assert set(requirements("requirements-dev.txt")) >= set(pinned)
    stamp_rule = re.search(r"^\$\(STAMP\): (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert stamp_rule == ["requirements-pinned.txt", "requirements-dev.txt"]
