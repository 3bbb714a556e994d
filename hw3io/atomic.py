"""Outputs appear whole or not at all: write to a temp file beside the target, then rename.

Folders are created only when a file is written into them, so a run that fails early leaves nothing behind, and
files get the mode the user's umask gives (``mkstemp``'s 0600 would survive the rename).
"""
import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_writable_dir(directory) -> Path:
    """Check, before any long work, that files can be written into ``directory`` (created later if missing).

    The nearest existing ancestor must be a folder we can write in: a probe file is created there and removed, so
    read-only file systems are caught too. Nothing is left behind."""
    directory = Path(directory)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link cannot hold files
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot write to {directory}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write to {directory}: {e.strerror or e}") from None
    return directory


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's folder; on success rename it onto ``path`` with the umask's mode."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write to {path.parent}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_save_npy(path, array) -> None:
    """``np.save`` to exactly ``path`` (no ``.npy`` appended to the temp name), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
