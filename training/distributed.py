"""torchrun-aware helpers: one code path for plain ``python3``, one GPU, or many processes."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from hw3io import UserError, pick_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def rank_device(device: str, local_rank: int, world_size: int) -> torch.device:
    """This process's device. Under torchrun every rank drives its own GPU, ``cuda:LOCAL_RANK``, whatever index
    ``--device cuda:N`` named (N would put every rank on one GPU); a single process honours ``cuda:N``."""
    dev = pick_device(device, local_rank)
    if dev.type == "cuda" and world_size > 1 and dev.index != local_rank:
        if local_rank == 0:
            print(f"note: --device {device} under torchrun: each rank uses its own GPU, cuda:LOCAL_RANK")
        dev = torch.device("cuda", local_rank)
    return dev


def _env_count(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise UserError(f"${name} is {value!r}, not a whole number: launch with torchrun, which sets it, or unset it")
    return n


def check_gpu_count(local_world_size: int, local_rank: int, gpus: int) -> None:
    """More ranks on this machine than visible GPUs would end in CUDA's 'invalid device ordinal' traceback on the
    extra ranks while the others wait for them. Every rank stops before joining the group; one of them says why."""
    if local_world_size > gpus:
        if local_rank == 0:
            raise UserError(f"torchrun started {local_world_size} processes on this machine but {gpus} GPU(s) "
                            f"are visible: use --nproc_per_node {gpus} (or fewer), or --device cpu")
        raise SystemExit(2)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); NCCL on GPUs, gloo on CPU. Only this
    reads torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE)."""
    world_size = _env_count("WORLD_SIZE", 1)
    rank = _env_count("RANK", 0)
    local_rank = _env_count("LOCAL_RANK", 0)
    if world_size > 1 and device != "cpu" and torch.cuda.is_available():
        check_gpu_count(_env_count("LOCAL_WORLD_SIZE", world_size), local_rank, torch.cuda.device_count())
    dev = rank_device(device, local_rank, world_size)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def device_name(info: DistInfo) -> str:
    """What trained the model, for the report: e.g. '4 x NVIDIA H100 80GB HBM3' or '1 x cpu'."""
    name = torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else "cpu"
    return f"{info.world_size} x {name}"


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum Python numbers across ranks (float64, so counts stay exact)."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start mid-epoch: ``set_start(k)`` skips this rank's first k samples,
    so a resumed run sees exactly the samples the interrupted one had not seen yet."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = start

    def __iter__(self):
        return iter(list(super().__iter__())[self.start:])

    def __len__(self):
        return self.num_samples - self.start


def shard_indices(n: int, info: DistInfo) -> range:
    """Every index exactly once across ranks (no padding): validation counts each image once."""
    return range(info.rank, n, info.world_size)
