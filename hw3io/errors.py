"""Bad input ends in one clear line and a non-zero exit, never a traceback."""
import re
import sys

INSTALL_HINT = "install the requirements: `make setup` in the repository, or `pip install -r requirements.txt`"

# The oldest releases the code runs on. torch 2.6 added torch.nn.utils.get_total_norm (training/engine.py's
# non-finite guard); the rest is older (torch.amp.GradScaler("cpu") 2.3, scaled_dot_product_attention 2.0,
# torch.load(weights_only=True) 1.13). timm 1.0: the line where ViT attention has fused_attn and attn_drop
# (vitpet/attention.py), pretrained_cfg_overlay and the augreg2 weights' tag all exist; older timm is untested.
MIN_VERSIONS = {"torch": (2, 6), "timm": (1, 0)}
TESTED = "tested with torch 2.14.1, timm 1.0.31"


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
        check_versions()
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


def release(version: str) -> tuple[int, ...]:
    """The release numbers of a version string: "2.14.1+cu130" -> (2, 14, 1), "2.6.0a0+git1a2b" -> (2, 6, 0)."""
    numbers = []
    for part in version.split("+")[0].split("."):
        digits = re.match(r"\d*", part).group()
        if not digits:
            break
        numbers.append(int(digits))
        if digits != part:
            break
    return tuple(numbers)


def check_versions(version=None) -> None:
    """One error line when the installed torch or timm is older than MIN_VERSIONS. Read from the packages'
    metadata (``version(name)``, by default importlib.metadata's), so nothing heavy is imported; a package that is
    not installed is left to its import's own "missing" line."""
    from importlib import metadata
    version = version or metadata.version
    installed = {}
    for name in MIN_VERSIONS:
        try:
            installed[name] = version(name)
        except metadata.PackageNotFoundError:
            pass
    old = [n for n, v in installed.items() if release(v) < MIN_VERSIONS[n]]
    if old:
        have = ", ".join(f"{n} {v}" for n, v in installed.items())
        need = ", ".join(f"{n} >= {'.'.join(map(str, m))}" for n, m in MIN_VERSIONS.items())
        raise UserError(f"{' and '.join(old)} too old for this code: installed {have}; required {need} ({TESTED}); "
                        "install a newer torch built for this machine's CUDA (pytorch.org), then "
                        "`pip install -r requirements.txt`")


P1_MODULES = ("torch", "torchvision", "timm", "numpy", "PIL", "pandas", "matplotlib", "tqdm", "safetensors")
RUNTIME_MODULES = (*P1_MODULES, "tokenizers", "huggingface_hub")  # Problem 2 adds the BERT tokenizer and its hub


def require_packages(modules=RUNTIME_MODULES) -> None:
    """Fail in one line, without importing anything, when a runtime package is not installed."""
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"Python package(s) {', '.join(missing)} missing for {sys.executable}; {INSTALL_HINT}")
