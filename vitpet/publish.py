"""Where the graded Problem 1 model comes from: ``checkpoints/p1.url`` holds one line, ``URL SHA256``.

``publish`` records them after training; ``needs_download`` and ``accept_download`` are the two Python halves of
``hw3_1.sh``'s download (``wget`` moves the bytes, as the course requires). A download is used only after its
sha256 matches, so a failed, partial or tampered one is never used, and it goes to ``<checkpoint>.part``, which
the next try overwrites: nothing blocks a retry. Standard library only, so this runs before anything heavy.
"""
import hashlib
import os
import sys
from pathlib import Path

from hw3io.errors import UserError

URL_FILE = Path("checkpoints") / "p1.url"  # relative to the repository


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_sha256(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s.lower())


def parse_source(line: str, where: str) -> tuple[str, str | None]:
    """``URL [SHA256]`` -> (url, sha256 or None)."""
    parts = line.split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and not _is_sha256(parts[1])):
        raise UserError(f"{where} must hold 'URL SHA256' on one line, found {line.strip()[:120]!r}")
    return parts[0], (parts[1].lower() if len(parts) == 2 else None)


def read_source(url_file, url_override: str | None = None) -> tuple[str, str]:
    """(url, sha256) of the published model. ``url_override`` (``$P1_CHECKPOINT_URL``: ``URL`` or ``URL SHA256``)
    replaces the URL, e.g. a mirror of the same file; the sha256 still comes from ``url_file`` unless it gives one."""
    url = sha = None
    url_file = Path(url_file)
    if url_file.is_file():
        url, sha = parse_source(url_file.read_text(), str(url_file))
    if url_override:
        over_url, over_sha = parse_source(url_override, "P1_CHECKPOINT_URL")
        url, sha = over_url, over_sha or sha
    if url is None:
        raise UserError(f"no model recorded in {url_file}: train one, upload it and run p1_publish.py (see README), "
                        "or point P1_CHECKPOINT at a checkpoint file")
    if sha is None:
        raise UserError(f"no sha256 to check the download from {url} against: {url_file} must hold 'URL SHA256'")
    return url, sha


def needs_download(checkpoint, url_file, url_override=None) -> str | None:
    """The URL to fetch when ``checkpoint`` is missing or is not the recorded file; None when it is ready."""
    url, sha = read_source(url_file, url_override)
    checkpoint = Path(checkpoint)
    if checkpoint.is_file():
        if sha256_file(checkpoint) == sha:
            return None
        print(f"{checkpoint} is not the recorded model (sha256 differs); downloading it again", file=sys.stderr)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)  # wget -O writes there (a fresh clone may lack the folder)
    return url


def part_path(checkpoint) -> Path:
    return Path(f"{checkpoint}.part")


def accept_download(checkpoint, url_file, url_override=None) -> Path:
    """Move ``<checkpoint>.part`` onto ``checkpoint`` if its sha256 is the recorded one; otherwise remove it."""
    url, sha = read_source(url_file, url_override)
    part = part_path(checkpoint)
    if not part.is_file():
        raise UserError(f"no download at {part}")
    got = sha256_file(part)
    if got != sha:
        part.unlink()
        raise UserError(f"the file downloaded from {url} is incomplete or not the published model (sha256 "
                        f"{got[:12]}..., expected {sha[:12]}...); it was discarded, run again to download it again")
    os.replace(part, checkpoint)
    return Path(checkpoint)


def publish(checkpoint, url: str, url_file) -> dict:
    """Record ``url`` and the checkpoint's sha256 in ``url_file``; return what the report must state."""
    from hw3io.atomic import atomic_write_text
    from .model import read_checkpoint  # validates the file as a vitpet checkpoint
    if not url.startswith(("http://", "https://", "ftp://")):
        raise UserError(f"--url must be a direct http(s) link to the file, got {url!r}")
    _, config = read_checkpoint(checkpoint)
    sha = sha256_file(checkpoint)
    atomic_write_text(url_file, f"{url} {sha}\n")
    return {"sha256": sha, "url": url, "url_file": str(url_file), "config": config,
            "size_mb": Path(checkpoint).stat().st_size / 2**20}
