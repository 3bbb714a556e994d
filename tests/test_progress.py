"""Progress bars: free on a terminal, a line at most every LOG_INTERVAL_S seconds in a log."""
import io
import re
import time

from hw3io import progress, report
from hw3io.progress import LOG_INTERVAL_S


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _updates(stream, seconds=1.0, steps=20):
    bar = progress(total=steps, file=stream, desc="x")
    for i in range(steps):
        time.sleep(seconds / steps)
        bar.update(1)
        bar.set_postfix(loss=f"{i:.3f}", refresh=False)
        if i == steps // 2:
            report(bar, "halfway")
    bar.close()
    return stream.getvalue()


def test_a_log_gets_few_lines(capsys):
    assert LOG_INTERVAL_S >= 5
    out = _updates(io.StringIO())
    assert len(re.findall(r"\d+/\d+ \[", out)) <= 2, out  # first and last draw; no per-step redraws
    assert capsys.readouterr().out == "halfway\n"  # a plain line, without a redrawn bar around it


def test_a_log_gets_whole_lines_and_an_error_after_a_bar_starts_its_own():
    """A failed run's log must end in its error line, not in a bar's frame glued to it by a carriage return."""
    log = io.StringIO()
    bar = progress(total=5, file=log, desc="checking images", leave=False)
    bar.update(1)
    bar.close()
    log.write("error: 1 of 5 images do not decode\n")
    text = log.getvalue()
    assert "\r" not in text and text.splitlines()[-1] == "error: 1 of 5 images do not decode"
    assert text.splitlines()[0].startswith("checking images:")


def test_a_terminal_gets_live_updates():
    out = _updates(FakeTerminal())
    assert len(re.findall(r"\d+/\d+ \[", out)) >= 8  # redrawn every ~0.1 s


def test_progress_stays_the_function_whatever_imports_first():
    """hw3io.progress is both a submodule and the function hw3io exports lazily; a module importing the submodule by
    name first would leave ``from hw3io import progress`` giving the module (seen in the explanations package)."""
    import subprocess
    import sys
    code = ("import explanations.perturbation, explanations.faithfulness\n"
            "from hw3io import progress\nassert callable(progress), progress")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=str(__import__("helpers").ROOT))
    assert proc.returncode == 0, proc.stderr[-500:]
