"""``fit``: the one training run both problems use. Plain python3 or torchrun, one GPU or many, AMP, exact resume.

Exactness comes from three choices: the data order is a pure function of (seed, epoch) (``ResumableSampler``),
augmentation is seeded per (seed, epoch, sample) (``seeding.sample_rng``, used by the datasets), and the learning
rate is a pure function of the step (``StepSchedule``). The state file then only has to carry the weights,
optimizer, scaler, RNGs and counters.

A problem hands ``fit`` a :class:`Task`: its model, optimizer, training set and loss, and three hooks (evaluate,
end of epoch, end of run). The config it passes needs the shared runtime fields (:class:`training.options.RunOptions`)
and ``batch_size``, ``accum_steps``, ``epochs``, ``workers`` and ``clip_grad``.
"""
import dataclasses
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel

from hw3io import UserError, default_workers
from . import distributed as D
from .engine import train_one_epoch
from .precision import choose_amp, grad_scaler
from .runlog import library_versions, write_log, write_run_json
from .schedule import StepSchedule
from .seeding import make_loader, use_deterministic
from .state import apply_state, capture_rng, check_resumable, load_state, resume_path, save_state


@dataclass
class Task:
    """What a problem hands the fit loop."""
    model: torch.nn.Module             # the bare model: saved and evaluated; the loop wraps a copy for training
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], StepSchedule]   # steps per epoch -> the lr schedule
    train_set: torch.utils.data.Dataset       # with set_epoch(epoch), for per-sample augmentation seeds
    loss_fn: Callable                  # (model, batch, device) -> (mean loss, samples it averages)
    evaluate: Callable[[], dict]       # val metrics of the bare model after each epoch, in fp32 (all ranks)
    log_fields: tuple                  # log.csv's columns: epoch, train_loss, the metrics evaluate returns, lr
    identity: dict                     # what a resumed run must share beyond batch, accumulation, world size, seed
    describe: str                      # the start line's subject, e.g. "vit_base_patch16_224 at 224px"
    end_epoch: Callable[[int, dict, bool], None] = lambda epoch, row, improved: None  # rank 0: checkpoints
    end_run: Callable[[dict], dict] = lambda progress: {}  # rank 0, after the last epoch: extra run.json fields
    best_metric: str | None = None     # the metric whose improvement ``end_epoch`` is told about
    collate_fn: Callable | None = None
    versions: tuple = ()               # libraries beyond torch and torchvision recorded in run.json
    check_data: Callable[[], None] = lambda: None  # e.g. decode every image: after resume's settings check, so a
                                                   # refused resume is said at once, and before the first step


class StopFlag:
    """SIGTERM/SIGINT (pre-emption, Ctrl-C) set a flag; the loop saves a state after the current step and exits.
    A context manager, so the previous handlers come back afterwards."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._set) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _set(self, signum, frame):
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None


def check_config(cfg) -> None:
    """Counts that must be positive, checked before anything is loaded (``--epochs 0`` would train nothing and
    leave no checkpoint)."""
    for name in ("epochs", "batch_size", "accum_steps"):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(cfg, name)}")


def launch(cfg, body: Callable) -> dict:
    """What every trainer's ``fit`` does around its ``body(cfg, info, stop)``, after its own ``check_config`` and
    folder checks: the worker count, deterministic mode, torchrun's process group (left again however the body
    ends) and the stop flag."""
    if cfg.workers is None:
        cfg = dataclasses.replace(cfg, workers=default_workers())
    use_deterministic(cfg.deterministic)
    info = D.init_distributed(cfg.device)
    try:
        with StopFlag() as stop:
            return body(cfg, info, stop)
    finally:
        D.cleanup()


def wrap_model(model, info: D.DistInfo, compile: bool):
    """The module the training steps run: DDP first, then ``torch.compile`` over it, as PyTorch's DDP notes advise:
    the compiler then splits the graph at DDP's bucket boundaries, so gradient all-reduces overlap the backward pass;
    a compiled model inside DDP hands over all its gradients at once, at the end of one backward graph."""
    if info.enabled:
        model = DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda" else None)
    if compile:
        model = torch.compile(model)
    return model


def fit(cfg, info: D.DistInfo, task: Task, stop: StopFlag) -> dict:
    """Train for ``cfg.epochs``, evaluate and log each epoch, keep ``last.safetensors`` resumable; returns the
    progress dict (history, train_seconds, best)."""
    out = Path(cfg.output_dir)
    sampler = D.ResumableSampler(task.train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    micro_per_step = cfg.batch_size * cfg.accum_steps
    steps_per_epoch = sampler.num_samples // micro_per_step
    if steps_per_epoch == 0:
        raise UserError(f"{len(task.train_set)} training samples are fewer than one optimizer step "
                        f"({cfg.batch_size} x {cfg.accum_steps} x {info.world_size} devices)")
    schedule = task.schedule(steps_per_epoch)
    amp_dtype, amp_why = choose_amp(cfg.amp, info.device)
    scaler = grad_scaler(info.device, amp_dtype)
    model, optimizer = task.model, task.optimizer
    identity = {"batch_size": cfg.batch_size, "accum_steps": cfg.accum_steps, "world_size": info.world_size,
                "seed": cfg.seed, **task.identity}

    progress = {"epoch": 0, "step": 0, "best": None, "history": [], "loss_sum": 0.0, "count": 0,
                "train_seconds": 0.0, "identity": identity}
    resume = resume_path(cfg.resume, out)
    if resume is not None:
        state = load_state(resume)
        check_resumable(resume, state["progress"].get("identity", {}), identity, state["config"].get("epochs"),
                        cfg.epochs)
        progress = apply_state(state, model=model, optimizer=optimizer, scaler=scaler, rank=info.rank)
        if info.is_main:
            print(f"resumed from {resume} at epoch {progress['epoch']} step {progress['step']}")
    task.check_data()
    schedule.set_step(progress["epoch"] * steps_per_epoch + progress["step"])
    train_model = wrap_model(model, info, cfg.compile)
    if info.is_main:
        print(f"training {task.describe} on {D.device_name(info)}: {len(task.train_set)} train samples, effective "
              f"batch {micro_per_step * info.world_size} ({cfg.batch_size} per device x {info.world_size} devices x "
              f"{cfg.accum_steps} accumulation), peak lr {schedule.peak:g}, {steps_per_epoch} steps/epoch, "
              f"amp {str(amp_dtype).removeprefix('torch.') if amp_dtype else 'off'} ({amp_why})", flush=True)

    clock = {"mark": time.time()}

    def save_last():
        now = time.time()  # wall time spent training, carried across resumes (the report's 'wall time')
        progress["train_seconds"] += now - clock["mark"]
        clock["mark"] = now
        rngs = D.all_gather_objects(capture_rng(), info)
        if info.is_main:
            save_state(out / "last.safetensors", model=model, optimizer=optimizer, scaler=scaler,
                       progress=progress, rngs=rngs, config=cfg.to_dict())

    stopping = {"now": False}

    def on_step(step, loss_sum, count):
        # One tiny all-reduce per step: the epoch's loss is summed in the same order whether or not the run was
        # interrupted (so a resumed log matches to the bit), and ranks, which get signals at slightly different
        # times, agree on stopping so that all of them save together.
        loss_sum, count, stops = D.all_reduce_sum([loss_sum, count, float(stop())], info)
        progress["loss_sum"] += loss_sum
        progress["count"] += int(count)
        progress["step"] = step
        stopping["now"] = stops > 0
        if (cfg.save_every and step % cfg.save_every == 0 and step < steps_per_epoch) or stopping["now"]:
            save_last()

    pin = info.device.type == "cuda"
    while progress["epoch"] < cfg.epochs:
        epoch, t0 = progress["epoch"], time.time()
        sampler.set_epoch(epoch)
        task.train_set.set_epoch(epoch)
        sampler.set_start(progress["step"] * micro_per_step)
        if progress["step"] < steps_per_epoch:  # == on resuming a state saved before its epoch's evaluation
            loader = make_loader(task.train_set, batch_size=cfg.batch_size, sampler=sampler,
                                 num_workers=cfg.workers, drop_last=True, pin_memory=pin, collate_fn=task.collate_fn)
            train_one_epoch(train_model, loader, optimizer, schedule, scaler, info=info, epoch=epoch,
                            step_in_epoch=progress["step"], steps_per_epoch=steps_per_epoch,
                            accum_steps=cfg.accum_steps, loss_fn=task.loss_fn, clip_grad=cfg.clip_grad or None,
                            amp_dtype=amp_dtype, on_step=on_step, should_stop=lambda: stopping["now"])
            if stopping["now"]:
                signum = stop.signum or signal.SIGTERM
                if info.is_main:
                    print(f"stopped by signal {signum}; state saved to {out / 'last.safetensors'}, "
                          "continue with --resume auto", flush=True)
                raise SystemExit(128 + signum)
            # Saved before evaluating: whatever fails there (a missing scorer, out of memory, a bad val image)
            # costs no training; --resume auto then evaluates this epoch without training it again.
            save_last()
        metrics = task.evaluate()
        row = {"epoch": epoch, "train_loss": progress["loss_sum"] / max(progress["count"], 1), **metrics,
               "lr": schedule.lr}
        progress["history"].append(row)
        improved = task.best_metric is not None and (progress["best"] is None
                                                     or row[task.best_metric] > progress["best"])
        if improved:
            progress["best"] = row[task.best_metric]
        progress.update(epoch=epoch + 1, step=0, loss_sum=0.0, count=0)
        if info.is_main:
            write_log(out / "log.csv", progress["history"], task.log_fields)
            task.end_epoch(epoch, dict(row, seconds=time.time() - t0), improved)
        save_last()

    if info.is_main:
        record = {"train_seconds": progress["train_seconds"], "device": D.device_name(info),
                  "world_size": info.world_size, "amp": str(amp_dtype) if amp_dtype else None,
                  **task.end_run(progress), "config": cfg.to_dict(), "versions": library_versions(*task.versions)}
        write_run_json(out / "run.json", record)
    D.barrier(info)
    return progress
