"""Seeds: the run's (model init, dropout), one per sample (augmentation), and the loaders' private generators."""
import contextlib
import hashlib
import os
import random
import signal

import numpy as np
import torch
from torch.utils.data import DataLoader


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and every CUDA device): the same on every rank, so weights start identical."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_deterministic(on: bool) -> None:
    """``--deterministic``: only deterministic kernels (an error names any op that has none), no cuDNN autotuning,
    and cuBLAS's fixed workspace, which it reads from the environment before its first call."""
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A seed per (run, epoch, sample): augmentation is the same whatever the worker count or resume point."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF


@contextlib.contextmanager
def sample_rng(seed: int, epoch: int, index: int):
    """Random transforms draw from Python's and torch's global CPU RNGs: seed them per sample, inside a fork so the
    training loop's own RNG stream (dropout) is untouched. Only the CPU generator: torch.manual_seed would also
    reseed every CUDA device, changing the GPU's dropout stream when workers=0."""
    state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            s = sample_seed(seed, epoch, index)
            random.seed(s)
            torch.default_generator.manual_seed(s)
            yield
    finally:
        random.setstate(state)


def ignore_stop_signals(worker_id: int) -> None:
    """A data-loader worker's start: Ctrl-C (SIGINT, sent to the terminal's whole process group) and SIGTERM
    (a scheduler signalling every process of the job) are for the main process, which finishes its step, saves and
    exits; a worker that died of them would end the run with 'DataLoader worker exited unexpectedly' instead.
    Workers still end with the main process (the loader's shutdown, or its watchdog when the parent is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(dataset, **kwargs) -> DataLoader:
    # A private generator: creating a loader iterator must not consume the global RNG (dropout's stream), or a
    # run resumed mid-epoch would draw different dropout masks. Augmentation is seeded per sample anyway.
    if kwargs.get("num_workers"):
        kwargs.setdefault("worker_init_fn", ignore_stop_signals)
    return DataLoader(dataset, generator=torch.Generator().manual_seed(0), **kwargs)
