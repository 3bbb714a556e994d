"""Every ``python3 -m`` entry point keeps the scripts' contract: bad input is one ``error:`` line, never a
traceback."""
import pytest

from helpers import ROOT, assert_one_line_error, run

PACKAGES = ("hw3io", "training", "vitpet", "catr", "synth")


def entry_modules():
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for pkg in PACKAGES
                  for p in (ROOT / pkg).glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_every_entry_point_runs_through_run_cli():
    modules = entry_modules()
    assert {"synth.pets", "synth.captionworld", "catr.pointing", "vitpet.pointing", "catr.pretrain"} <= set(modules)
    for m in modules:
        text = (ROOT / (m.replace(".", "/") + ".py")).read_text()
        assert "run_cli(main)" in text.split('if __name__ == "__main__":')[1], m


@pytest.mark.parametrize("module, args, fragment", [
    ("synth.pets", ["{file}/out"], "cannot write"),
    ("synth.pets", ["{tmp}/out", "--train-per-class", "0"], "at least 1"),
    ("synth.captionworld", ["{file}/out", "--train", "2", "--val", "1"], "cannot write"),
    ("synth.captionworld", ["{tmp}/out", "--train", "0"], "at least 1"),
    ("catr.pointing", ["{tmp}/missing", "--objects", "{file}"], "no hw3_2.sh outputs"),
    ("vitpet.pointing", ["--checkpoint", "{tmp}/missing.safetensors", "--images", "{tmp}"], "not found"),
    ("catr.pretrain", ["--images", "{tmp}", "--objects", "{tmp}/missing.json", "--output", "{tmp}/c.safetensors"],
     "not found"),
])
def test_bad_input_is_one_error_line(tmp_path, module, args, fragment):
    file = tmp_path / "a_file"
    file.write_text("{}")
    proc = run(["python3", "-m", module, *[a.format(tmp=tmp_path, file=file) for a in args]], timeout=120)
    assert_one_line_error(proc, fragment)


@pytest.mark.parametrize("script", ["p1_train.py", "p2_train.py"])
def test_zero_epochs_is_one_error_line(script, tmp_path):
    data = (["--data-dir", "x"] if script == "p1_train.py" else
            ["--train-annotations", "x", "--train-images", "x", "--val-annotations", "x", "--val-images", "x"])
    proc = run(["python3", script, "--epochs", "0", "--output-dir", str(tmp_path / "run"), *data])
    assert_one_line_error(proc, "--epochs must be at least 1")
    assert not (tmp_path / "run").exists()


def test_help_says_what_is_required_and_quotes_only_measured_figures():
    import re
    help2 = " ".join(run(["python3", "p2_train.py", "--help"]).stdout.split())
    for flag in ("--train-annotations", "--train-images", "--val-annotations", "--val-images"):
        assert re.search(re.escape(flag) + r" \S+ [^-]*\(required\)", help2), flag
    help1 = " ".join(run(["python3", "p1_inference.py", "--help"]).stdout.split())
    docs = "".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    figures = re.findall(r"\d+(?:\.\d+)?x\b", help1)
    assert figures and all(f in docs for f in figures), figures  # each one measured and documented
    assert "bench/bench_p1_precision.py" in help1
