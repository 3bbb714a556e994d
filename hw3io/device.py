"""``--device auto``: the GPU when there is one, else the CPU."""
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
