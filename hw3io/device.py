"""``--device auto``: the GPU when there is one, else the CPU."""
import os

import torch

from .errors import UserError


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
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
