"""Safetensors files, as every checkpoint and state file here is stored: written atomically, read with one-line
errors. Callers check the ``format`` tag their own metadata carries."""
from pathlib import Path

from .atomic import atomic_path
from .errors import UserError, brief, describe_bytes


def save_tensors(path, tensors: dict, metadata: dict[str, str]) -> None:
    import safetensors.torch
    with atomic_path(path) as tmp:
        safetensors.torch.save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                                    metadata=metadata)


def read_tensors(path, what: str) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file; ``what`` names it in the errors ("checkpoint")."""
    import safetensors
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        with open(path, "rb"):  # what the system refuses (permissions, a folder, I/O) is said as it is
            pass
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except MemoryError:
        raise UserError(f"out of memory reading {what} {path} ({path.stat().st_size / 2**20:.0f} MiB)") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except Exception as e:  # safetensors raises its own error types for truncated/garbage files
        raise UserError(f"not a valid {what}: {path} is {file_kind(path)}, not a complete .safetensors file "
                        f"({brief(e, 80)})") from None


def file_kind(path: Path) -> str:
    """What a file that safetensors refused looks like, from its first bytes: the usual mix-ups named."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK"):
        return "a PyTorch .pth/.pt file (a zip archive)"
    if not head:
        return "empty"
    return describe_bytes(Path(path).stat().st_size, head)
