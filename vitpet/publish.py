"""Where the graded Problem 1 model comes from: ``checkpoints/p1.url`` holds one line, ``URL SHA256``.

``publish`` records them after training; ``needs_download`` and ``accept_download`` are the two Python halves of
``hw3_1.sh``'s download (``wget`` moves the bytes, as the course requires). A download is used only after its
sha256 matches, so a failed, partial or tampered one is never used, and it goes to ``<checkpoint>.part``, which
the next try overwrites: nothing blocks a retry. ``publish`` downloads the link once first, so a link that does not
serve the file (a sharing page) is refused before it is recorded. Standard library only in hw3_1.sh's halves, so
they run before anything heavy.
"""
import hashlib
import os
import sys
from pathlib import Path

from hw3io.errors import UserError, describe_bytes

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


def file_kind(path) -> str:
    with open(path, "rb") as f:
        head = f.read(64)
    return describe_bytes(Path(path).stat().st_size, head)


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
        arrived = file_kind(part)
        part.unlink()
        raise UserError(f"the file downloaded from {url} is incomplete or not the published model: {arrived}, sha256 "
                        f"{got[:12]}..., expected {sha[:12]}...; it was discarded, run again to download it again")
    os.replace(part, checkpoint)
    return Path(checkpoint)


DOWNLOAD_TIMEOUT_S = 60  # per network read: a link that stalls this long is not one a grader's wget would finish


def url_sha256(url: str, expected_size: int) -> tuple[str, int, bytes]:
    """(sha256, size, first bytes) of what ``url`` serves, read once in blocks (a progress bar on the way) and never
    kept. At most ``expected_size`` plus 1 MiB is read: anything larger is not the file."""
    import urllib.request
    from hw3io import progress
    h, size, head = hashlib.sha256(), 0, b""
    limit = expected_size + (1 << 20)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
            progress(total=expected_size, unit="B", unit_scale=True, desc="checking the link", leave=False) as bar:
        for block in iter(lambda: response.read(1 << 20), b""):
            head = head or block[:64]
            h.update(block)
            size += len(block)
            bar.update(len(block))
            if size > limit:
                break
    return h.hexdigest(), size, head


def check_link(url: str, checkpoint, sha: str) -> None:
    """Download ``url`` once and refuse it unless it serves exactly ``checkpoint`` (its sha256)."""
    import urllib.error
    expected = Path(checkpoint).stat().st_size
    try:
        got, size, head = url_sha256(url, expected)
    except (urllib.error.URLError, OSError, ValueError) as e:
        from hw3io import brief
        raise UserError(f"could not download {url} to check it ({brief(e)}); check the link, or pass --no-check "
                        "to record it unchecked") from None
    if got != sha:
        raise UserError(f"{url} does not serve {checkpoint}: it sent {describe_bytes(size, head)} where the "
                        f"checkpoint has {expected} bytes; nothing recorded. Use the file's direct download link")


def publish(checkpoint, url: str, url_file, check: bool = True) -> dict:
    """Record ``url`` and the checkpoint's sha256 in ``url_file``, after downloading it once to check that it serves
    exactly that file (unless ``check`` is False); return what the report must state."""
    from hw3io.atomic import atomic_write_text
    from .model import read_checkpoint  # validates the file as a vitpet checkpoint
    if not url.startswith(("http://", "https://", "ftp://")):
        raise UserError(f"--url must be a direct http(s) link to the file, got {url!r}")
    _, config = read_checkpoint(checkpoint)
    sha = sha256_file(checkpoint)
    if check:
        check_link(url, checkpoint, sha)
    atomic_write_text(url_file, f"{url} {sha}\n")
    return {"sha256": sha, "url": url, "url_file": str(url_file), "config": config,
            "size_mb": Path(checkpoint).stat().st_size / 2**20}
