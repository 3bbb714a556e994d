"""The commands in README.md's and docs/*.md's ```bash blocks exist as written: every repository script or module
they call is there, every flag they pass is in that script's ``--help``, every ``make`` target is in the Makefile.

Convention: a README block preceded by ``<!-- not run: REASON -->`` needs what a test cannot have (a GPU, the real
data, the internet, your own repository); its repository commands are still checked as above. An unmarked README
block may hold only commands the test can vouch for: repository scripts, ``make`` (each target also dry-run with
``make -n`` in a scratch copy) and ``pip install -r FILE`` of a file that exists. docs/ blocks are checked as marked
ones.
"""
import re
import shlex
import shutil
import subprocess
import sys
from functools import lru_cache

import pytest

from helpers import ROOT, script_env

NOT_RUN = re.compile(r"<!-- not run: .+ -->")
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}


def bash_blocks(path):
    """[(first line number, marked 'not run', [logical command lines])] of the file's ```bash blocks."""
    lines, blocks, i = path.read_text().splitlines(), [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            previous = next((l for l in reversed(lines[:i]) if l.strip()), "")
            start, body, i = i + 1, [], i + 1
            while lines[i].strip() != "```":
                body.append(lines[i].strip())
                i += 1
            text = "\n".join(l for l in body if not l.startswith("%"))  # Colab's %%bash cell magic
            commands = [c for c in text.replace("\\\n", " ").splitlines() if c.strip()]
            blocks.append((start + 1, bool(NOT_RUN.fullmatch(previous.strip())), commands))
        i += 1
    return blocks


def simple_commands(line):
    """Each simple command of a shell line as its words, without leading VAR=value assignments."""
    line = re.sub(r"<[\w ]+>", "PLACEHOLDER", line)  # <image_dir> in a usage line
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split, lexer.commenters = True, "#"
    words, commands = [], []
    for token in [*lexer, ";"]:
        if token in SEPARATORS:
            while words and re.fullmatch(r"\w+=.*", words[0]):
                words.pop(0)
            if words:
                commands.append(words)
            words = []
        else:
            words.append(token)
    return commands


def repo_target(words):
    """(kind, what, flags) for a command that runs this repository's code, else None. kind: script, module, shell,
    make."""
    name, args = words[0], words[1:]

    def flags_after(i):
        return [a.split("=")[0] for a in args[i + 1:] if a.startswith("--")]
    if name in ("python3", "python", "torchrun"):
        if "-m" in args:
            i = args.index("-m") + 1
            return "module", args[i], flags_after(i)
        i = next((i for i, a in enumerate(args) if a.endswith(".py")), None)
        return None if i is None else ("script", args[i], flags_after(i))
    if name == "bash" and args and args[0].endswith(".sh"):
        return "shell", args[0], flags_after(0)
    if name == "make":
        return "make", [a for a in args if not a.startswith("-") and "=" not in a], []
    return None


@lru_cache(maxsize=None)
def help_text(kind, what):
    argv = [sys.executable, "-m", what, "--help"] if kind == "module" else [sys.executable, what, "--help"]
    proc = subprocess.run(argv, cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv[1:])} failed:\n{proc.stderr}"
    return proc.stdout


def make_targets():
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def problems(words):
    """What is wrong with one command as the text writes it (empty when nothing is)."""
    target = repo_target(words)
    if target is None:
        return []
    kind, what, flags = target
    if kind == "make":
        return [f"no make target {t!r}" for t in what if t not in make_targets()]
    path = ROOT / (what.replace(".", "/") + ".py" if kind == "module" else what)
    if not path.is_file():
        return [f"no {kind} {what}"]
    if kind == "shell":
        return [f"{what} takes no flags ({', '.join(flags)})" for _ in flags[:1]]
    known = options(help_text(kind, what))
    return [f"{what} has no flag {f}" for f in flags if f.split("=")[0] not in known]


def options(help_text: str) -> set:
    """The option strings argparse lists in ``--help`` (lines ``  -h, --help`` or ``  --images IMAGES ...``), not
    every ``--word`` of the text: a flag named only in another flag's help is not a flag."""
    found = set()
    for line in help_text.splitlines():
        m = re.match(r" {1,4}(-\S.*?)(?: {2,}|$)", line)
        if m:
            found.update(part.split(" ")[0] for part in m.group(1).split(", "))
    return found


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_script_flag_and_target_exists(page):
    found = []
    for line_no, _, commands in bash_blocks(page):
        for line in commands:
            for words in simple_commands(line):
                found += [f"{page.name}:{line_no}: {line}: {p}" for p in problems(words)]
    assert not found, "\n".join(found)


def test_unmarked_readme_blocks_hold_only_what_a_test_can_vouch_for(tmp_path):
    for name in ("Makefile", "requirements.txt", "requirements-pinned.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    blocks = bash_blocks(ROOT / "README.md")
    assert any(marked for _, marked, _ in blocks) and any(not marked for _, marked, _ in blocks)
    for line_no, marked, commands in blocks:
        for line in commands:
            for words in simple_commands(line):
                if marked:
                    continue
                where = f"README.md:{line_no}: {line}"
                if words[:3] == ["pip", "install", "-r"]:
                    assert (ROOT / words[3]).is_file(), where
                    continue
                target = repo_target(words)
                assert target, f"{where}: mark the block <!-- not run: REASON --> or make it checkable"
                if target[0] == "make":  # a dry run in a scratch copy: the Makefile parses and the target resolves
                    proc = subprocess.run(["make", "-n", *target[1]], cwd=tmp_path, capture_output=True, text=True,
                                          timeout=60)
                    assert proc.returncode == 0, f"{where}: {proc.stderr}"


def test_a_wrong_flag_or_script_is_caught():
    assert problems(["python3", "p1_train.py", "--data-dir", "x", "--no-such-flag", "1"]) == [
        "p1_train.py has no flag --no-such-flag"]
    assert problems(["bash", "hw3_9.sh", "a", "b"]) == ["no shell hw3_9.sh"]
    assert problems(["python3", "-m", "catr.nothing", "--help"]) == ["no module catr.nothing"]
    assert problems(["make", "no-such-target"]) == ["no make target 'no-such-target'"]
    # a flag only mentioned in another flag's help text is not a flag of the script
    assert options("usage: x [-h]\n\noptions:\n  -h, --help  show\n  --images IMAGES [IMAGES ...]\n"
                   "                        like --not-a-flag\n") == {"-h", "--help", "--images"}
    assert simple_commands("CATR_BEAM=3 bash hw3_2.sh <image_dir> out && make demo  # note") == [
        ["bash", "hw3_2.sh", "PLACEHOLDER", "out"], ["make", "demo"]]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_exists(page):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    missing = [l for l in links if "://" not in l and not (page.parent / l).exists()]
    assert not missing, missing
