"""The course's rules for the graded scripts, read off hw3_1.sh and hw3_2.sh themselves."""
import re

import pytest

from helpers import ROOT

FORBIDDEN = ("rm", "sudo", "cp", "mv", "mkdir", "cd", "pip", "pip3", "CUDA_VISIBLE_DEVICES", "curl")
# Paths a script may name: all inside the repository, anchored at the script's own folder ($repo). The model's
# path is the one the course allows to be hard-coded; the rest are the repo's own files.
ALLOWED_PATHS = {"checkpoints/p1_vit_b16.safetensors", ".venv/bin/python3", ".venv/.installed", "p1_fetch.py", "p1_inference.py",
                 "p2_caption_attn.py"}


def code_words(text: str) -> list[str]:
    """Shell words outside comments and quotes' contents kept (quotes stripped)."""
    words = []
    for line in text.splitlines():
        code = re.sub(r"(^|\s)#.*$", "", line)  # comments, the shebang included
        words += [w.strip("\"'();{}") for w in re.split(r"[\s|&;]+|\$\(|`", code) if w.strip("\"'();{}")]
    return words


def violations(text: str) -> list[str]:
    found = []
    for w in code_words(text):
        bare = w.split("=", 1)[-1] if re.match(r"^[A-Za-z_]\w*=", w) else w
        if bare in FORBIDDEN or w.startswith("CUDA_VISIBLE_DEVICES"):
            found.append(f"forbidden command {bare!r}")
        if re.search(r"python", bare) and not re.search(r"(^|/)python3\"?$", bare):
            found.append(f"Python run as {bare!r}, not python3")
        if "/" in bare and not bare.startswith("/dev/null"):
            path = re.sub(r"^\"?\$\{?repo\}?/", "", bare)
            if path == bare or path not in ALLOWED_PATHS:
                found.append(f"hard-coded path {bare!r}")
    return found


@pytest.mark.parametrize("script", ["hw3_1.sh", "hw3_2.sh"])
def test_graded_script_follows_the_course_rules(script):
    text = (ROOT / script).read_text()
    assert violations(text) == []
    assert "python3" in text
    assert len(text.splitlines()) <= 30  # the logic lives in Python


def test_p1_downloads_its_model_with_wget():
    words = code_words((ROOT / "hw3_1.sh").read_text())
    assert "wget" in words


@pytest.mark.parametrize("line, what", [
    ("rm -f \"$ckpt.part\"", "forbidden command 'rm'"),
    ("mkdir -p out", "forbidden command 'mkdir'"),
    ("here=$(cd \"$(dirname x)\" && pwd)", "forbidden command 'cd'"),
    ("CUDA_VISIBLE_DEVICES=0 python3 x.py", "forbidden command"),
    ("python p1_inference.py", "not python3"),
    ("python3.11 p1_inference.py", "not python3"),
    ("curl -o m.pt URL", "forbidden command 'curl'"),
    ("python3 p1_inference.py --images /home/me/hw3_data/p1_data/val", "hard-coded path"),
    ("python3 \"$repo/../data/x.py\"", "hard-coded path"),
])
def test_the_rule_check_catches_violations(line, what):
    found = violations("#!/usr/bin/env bash\n" + line + "\n")
    assert any(what in f for f in found), found


def test_comments_do_not_count():
    assert violations("# rm mkdir python /abs/path\nexec python3 \"$repo/p1_inference.py\"  # cd mv\n") == []
