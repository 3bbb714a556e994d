"""Progress bars that suit both a terminal and a log file."""
import sys

from tqdm import tqdm

LOG_INTERVAL_S = 30.0  # a redirected run (``make demo > log``) gets at most one progress line this often


class LineStream:
    """A log's view of a bar: each frame tqdm draws becomes a line of its own. tqdm starts frames with a carriage
    return and clears a closed bar with spaces; in a file those would glue the last frame to the next line (a
    failed run's log ending in ``checking images: 0%|...error: ...``)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for frame in text.replace("\r", "\n").split("\n"):
            if frame.strip():
                self.stream.write(frame.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def progress(iterable=None, *, file=None, **kwargs) -> tqdm:
    """``tqdm`` that redraws freely on a terminal but, when its stream is not one (a log, CI), writes a plain line
    at most every ``LOG_INTERVAL_S`` seconds instead of thousands of carriage-return updates."""
    file = file or sys.stderr
    interactive = getattr(file, "isatty", lambda: False)()
    if not interactive:
        file = file if isinstance(file, LineStream) else LineStream(file)
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", LOG_INTERVAL_S)
        kwargs.setdefault("ncols", 100)
    else:
        kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, file=file, **kwargs)


def report(bar: tqdm, text: str) -> None:
    """Print a result line beside a running bar: through tqdm on a terminal (so the bar is redrawn below it),
    plainly otherwise (tqdm's write would redraw the bar into the log for every line)."""
    if getattr(bar.fp, "isatty", lambda: False)():
        bar.write(text)
    else:
        print(text, flush=True)
