"""``--device auto``: the GPU when there is one, else the CPU."""
import os
import sys
import warnings

import torch

from .errors import UserError


def cuda_unavailable_reason() -> str | None:
    """Why torch cannot use a GPU here, in torch's own words where it gives any (e.g. a driver older than the
    wheel's CUDA); None when it can."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            return None
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    said = [" ".join(str(w.message).split()) for w in caught if "CUDA" in str(w.message)]
    return said[0] if said else f"torch {torch.__version__} finds no CUDA GPU"


def pick_device(name: str = "auto", local_rank: int = 0, say_cpu: bool = False) -> torch.device:
    """``say_cpu``: when ``auto`` falls back to the CPU, say so on stderr in one line with the reason (the graded
    scripts: on a CPU the course's 10 minutes may not be enough)."""
    if name == "auto":
        reason = cuda_unavailable_reason()
        name = "cpu" if reason else "cuda"
        if reason and say_cpu:
            print(f"note: running on the CPU, which is far slower than a GPU: {reason}", file=sys.stderr)
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} asked for, but no CUDA GPU is available")
        return torch.device(name) if ":" in name else torch.device("cuda", local_rank)
    if name != "cpu":
        raise UserError(f"unknown device {name!r}: use auto, cuda, cuda:N or cpu")
    return torch.device(name)


def default_workers(limit: int = 4) -> int:
    """Data-loader workers: at most ``limit``, never more than the CPUs this process may use (PyTorch warns
    beyond that, and extra workers only compete with the main process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(limit, cpus))
