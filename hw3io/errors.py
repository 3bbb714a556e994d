"""Bad input ends in one clear line and a non-zero exit, never a traceback."""
import sys

INSTALL_HINT = "install the requirements: `make setup` in the repository, or `pip install -r requirements.txt`"


def brief(e: BaseException, limit: int = 160) -> str:
    """``Type: first line`` of an exception for an error line, shortened at a word boundary with an ellipsis
    (never cut mid-word, as in "try aga)")."""
    text = " ".join(str(e).split("\n", 1)[0].split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + " ..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def describe_bytes(size: int, head: bytes) -> str:
    """What a file that is not the expected one holds, from its size and first bytes; the usual mistake, a sharing
    link that serves its web page, is named."""
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return f"{size} bytes of HTML: an HTML page (a drive's sharing page?), not a direct link to the file"
    return f"{size} bytes starting {head[:16]!r}"


class UserError(Exception):
    """An error caused by the user's input (paths, files, flags); printed as one line."""


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn UserError into ``error: ...`` on stderr and exit status 2. A missing third-party
    package (the scripts import them inside ``main``) gets one line saying how to install them."""
    try:
        return main(argv) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] in ("hw3io", "vitpet", "catr"):
            raise  # our own code is broken: that deserves the traceback
        print(f"error: Python package {e.name!r} is missing for {sys.executable}; {INSTALL_HINT}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


P1_MODULES = ("torch", "torchvision", "timm", "numpy", "PIL", "pandas", "matplotlib", "tqdm", "safetensors")
RUNTIME_MODULES = (*P1_MODULES, "tokenizers", "huggingface_hub")  # Problem 2 adds the BERT tokenizer and its hub


def require_packages(modules=RUNTIME_MODULES) -> None:
    """Fail in one line, without importing anything, when a runtime package is not installed."""
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"Python package(s) {', '.join(missing)} missing for {sys.executable}; {INSTALL_HINT}")
