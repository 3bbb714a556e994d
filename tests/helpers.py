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


def script_repo(tmp_path) -> Path:
    """A copy of the graded scripts in a scratch repo (the packages linked in), so that hw3_1.sh's download into
    its own checkpoints/ folder and checkpoints/p1.url never touch this checkout."""
    import shutil
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ["hw3_1.sh", "hw3_2.sh", "p1_fetch.py", "p1_inference.py", "p1_publish.py", "p2_caption_attn.py"]:
        shutil.copy(ROOT / name, repo / name)
    for pkg in ["hw3io", "training", "vitpet", "catr"]:
        (repo / pkg).symlink_to(ROOT / pkg)
    (repo / "checkpoints").mkdir()
    return repo


def grader_env(home, **extra):
    """What a grader's shell has: PATH (python3 with the requirements) and a home with empty caches."""
    return {"PATH": script_env()["PATH"], "HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


def dump_dom(page: Path, script: str, budget_ms: int = 10000, timeout: int = 120) -> str | None:
    """The DOM of ``page`` after ``script`` (JavaScript inserted before ``</body>``, so it can click through the page
    and write what it saw into the DOM) ran in headless Chromium; None when no Chromium is installed. The probe is a
    copy beside the page, so relative links resolve as they do for the page."""
    import tempfile
    from report import render
    binary = render.find_chromium()
    if binary is None:
        return None
    probe = page.with_name("probe-" + page.name)
    probe.write_text(page.read_text().replace("</body>", f"<script>{script}</script></body>"))
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(render.chromium_args(binary, profile) + [f"--virtual-time-budget={budget_ms}",
                                                                       "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=timeout).stdout


NO_CHROMIUM = ("no headless Chromium installed (Debian: apt-get install chromium-headless-shell); .ci/run installs "
               "it")
