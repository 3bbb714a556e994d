"""``fit(cfg)``: the whole training run. Works under plain python3 or torchrun, and resumes exactly.

Exactness comes from three choices: the data order is a pure function of (seed, epoch) (DistributedSampler),
augmentation is seeded per (seed, epoch, sample) (ImageFolderDataset), and the learning rate is a pure
function of the step (timm's scheduler with ``step_update``). The state file then only has to carry the
weights, optimizer, scaler, RNGs and counters.
"""
import csv
import dataclasses
import io
import json
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from hw3io import UserError, atomic_write_text, default_workers, ensure_writable_dir
from . import distributed as D
from .config import TrainConfig
from .data import ImageFolderDataset, build_transforms
from .engine import classification_loss, evaluate, train_one_epoch
from .model import build_model, library_versions, load_checkpoint, resolve_model_data_config, save_checkpoint
from .state import apply_state, capture_rng, load_state, save_state

LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_acc", "lr")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_dtype_for(amp: str, device: torch.device):
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


# Our names -> timm's optimizer factory. timm's "sgd" is Nesterov; the recipe (and the peers' 0.95) is classical
# momentum, which timm calls "momentum".
TIMM_OPT = {"sgd": "momentum", "adamw": "adamw"}


def build_optimizer(cfg: TrainConfig, model, device):
    """timm's factory: biases, norms and everything in ``model.no_weight_decay()`` (pos_embed, cls_token) get no
    weight decay, and ``layer_decay`` gives each block its own ``lr_scale``, which timm's scheduler applies."""
    kwargs = {"fused": True} if cfg.opt == "adamw" and device.type == "cuda" else {}
    return create_optimizer_v2(model, opt=TIMM_OPT[cfg.opt], lr=cfg.lr, weight_decay=cfg.weight_decay,
                               momentum=cfg.momentum, layer_decay=cfg.layer_decay, **kwargs)


def resolve_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    if cfg.train_dir is None and cfg.data_dir is None:
        raise UserError("give --data-dir (holding train/ and val/) or --train-dir and --val-dir")
    train_dir = Path(cfg.train_dir or Path(cfg.data_dir) / "train")
    val_dir = Path(cfg.val_dir or Path(cfg.data_dir) / "val")
    return train_dir, val_dir


def write_log(path, history: list[dict], fields=LOG_FIELDS) -> None:
    """The epoch rows as CSV, rewritten whole (atomically) after every epoch."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: row[k] for k in fields})
    atomic_write_text(path, buf.getvalue())


def resume_path(resume, out: Path):
    """``--resume``: a state file, or "auto" for OUTPUT_DIR/last.safetensors when it exists (else a fresh start)."""
    if resume == "auto":
        last = out / "last.safetensors"
        return last if last.is_file() else None
    return resume


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


def fit(cfg: TrainConfig) -> dict:
    """Train, validate each epoch, keep best/last; returns the final summary dict."""
    if cfg.workers is None:
        cfg = dataclasses.replace(cfg, workers=default_workers())
    info = D.init_distributed(cfg.device)
    try:
        with StopFlag() as stop:
            return _fit(cfg, info, stop)
    finally:
        D.cleanup()


def make_loader(dataset, **kwargs) -> DataLoader:
    # A private generator: creating a loader iterator must not consume the global RNG (dropout's stream), or a
    # run resumed mid-epoch would draw different dropout masks. Augmentation is seeded per sample anyway.
    return DataLoader(dataset, generator=torch.Generator().manual_seed(0), **kwargs)


def _fit(cfg: TrainConfig, info: D.DistInfo, stop: StopFlag) -> dict:
    train_dir, val_dir = resolve_dirs(cfg)
    out = Path(cfg.output_dir)
    if info.is_main:
        ensure_writable_dir(out)
    seed_everything(cfg.seed)  # same on every rank: identical initial weights
    model = build_model(cfg.model, cfg.num_classes, cfg.img_size, pretrained=cfg.pretrained,
                        pretrained_file=cfg.pretrained_file, drop_path_rate=cfg.drop_path)
    data_config = resolve_model_data_config(model, cfg.img_size)
    img_size = data_config["input_size"][-1]
    model.to(info.device)

    train_ds = ImageFolderDataset(train_dir, build_transforms(data_config, True, cfg.color_jitter), labelled=True,
                                  num_classes=cfg.num_classes, seed=cfg.seed)
    val_ds = ImageFolderDataset(val_dir, build_transforms(data_config, False), labelled=True,
                                num_classes=cfg.num_classes)
    sampler = D.ResumableSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    micro_per_step = cfg.batch_size * cfg.accum_steps
    steps_per_epoch = sampler.num_samples // micro_per_step
    if steps_per_epoch == 0:
        raise UserError(f"{len(train_ds)} training images are fewer than one optimizer step "
                        f"({cfg.batch_size} x {cfg.accum_steps} x {info.world_size} devices)")
    val_loader = make_loader(Subset(val_ds, D.shard_indices(len(val_ds), info)), batch_size=cfg.batch_size * 2,
                         num_workers=cfg.workers, pin_memory=info.device.type == "cuda")

    optimizer = build_optimizer(cfg, model, info.device)
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = CosineLRScheduler(optimizer, t_initial=total_steps, lr_min=cfg.min_lr, warmup_lr_init=cfg.lr * 0.01,
                                  warmup_t=int(cfg.warmup_epochs * steps_per_epoch), t_in_epochs=False)
    amp_dtype = amp_dtype_for(cfg.amp, info.device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    progress = {"epoch": 0, "step": 0, "best_acc": -1.0, "history": [], "loss_sum": 0.0, "count": 0,
                "train_seconds": 0.0}
    resume = resume_path(cfg.resume, out)
    if resume is not None:
        progress = apply_state(load_state(resume), model=model, optimizer=optimizer, scaler=scaler, rank=info.rank)
        if info.is_main:
            print(f"resumed from {resume} at epoch {progress['epoch']} step {progress['step']}")
    scheduler.step_update(num_updates=progress["epoch"] * steps_per_epoch + progress["step"])

    train_model = model
    if cfg.compile:
        train_model = torch.compile(train_model)
    if info.enabled:
        train_model = DistributedDataParallel(train_model, device_ids=[info.device] if info.device.type == "cuda"
                                              else None)
    if info.is_main:
        print(f"training {cfg.model} at {img_size}px on {info.world_size} x {info.device.type}: "
              f"{len(train_ds)} train / {len(val_ds)} val images, effective batch {micro_per_step * info.world_size} "
              f"({cfg.batch_size} per device x {info.world_size} devices x {cfg.accum_steps} accumulation), "
              f"lr {cfg.lr:g} ({cfg.opt}), {steps_per_epoch} steps/epoch, amp {amp_dtype}")

    clock = {"mark": time.time()}

    def tick():
        """Wall time spent training, carried across resumes (the report's 'wall time')."""
        now = time.time()
        progress["train_seconds"] = progress.get("train_seconds", 0.0) + now - clock["mark"]
        clock["mark"] = now

    ckpt_config = {"model": cfg.model, "num_classes": cfg.num_classes, "img_size": img_size,
                   "train_device": D.device_name(info),
                   "data_config": data_config, "train_config": cfg.to_dict()}

    def save_last():
        tick()
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

    while progress["epoch"] < cfg.epochs:
        epoch = progress["epoch"]
        t0 = time.time()
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        sampler.set_start(progress["step"] * micro_per_step)
        loader = make_loader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                         drop_last=True, pin_memory=info.device.type == "cuda")
        train_one_epoch(train_model, loader, optimizer, scheduler, scaler, info=info, epoch=epoch,
                        step_in_epoch=progress["step"], steps_per_epoch=steps_per_epoch,
                        accum_steps=cfg.accum_steps, loss_fn=classification_loss(cfg.label_smoothing),
                        clip_grad=cfg.clip_grad,
                        amp_dtype=amp_dtype, on_step=on_step, should_stop=lambda: stopping["now"])
        if stopping["now"]:
            signum = stop.signum or signal.SIGTERM
            if info.is_main:
                print(f"stopped by signal {signum}; state saved to {out / 'last.safetensors'}, "
                      "continue with --resume auto")
            raise SystemExit(128 + signum)
        val = evaluate(model, val_loader, info=info, amp_dtype=amp_dtype)
        row = {"epoch": epoch, "train_loss": progress["loss_sum"] / max(progress["count"], 1),
               "val_loss": val["loss"], "val_acc": val["acc"], "lr": optimizer.param_groups[0]["lr"]}
        progress["history"].append(row)
        improved = val["acc"] > progress["best_acc"]
        if improved:
            progress["best_acc"] = val["acc"]
        progress.update(epoch=epoch + 1, step=0, loss_sum=0.0, count=0)
        if info.is_main:
            write_log(out / "log.csv", progress["history"])
            if improved:
                save_checkpoint(out / "best.safetensors", model,
                                dict(ckpt_config, val_acc=val["acc"], epoch=epoch))
            print(f"epoch {epoch}: train_loss {row['train_loss']:.4f} val_loss {val['loss']:.4f} "
                  f"val_acc {val['acc']:.4f} ({val['count']} images, {time.time() - t0:.0f}s)"
                  + (" *best*" if improved else ""))
        save_last()

    summary = {"best_acc": progress["best_acc"], "epochs": cfg.epochs, "output_dir": str(out)}
    if info.is_main:
        history = progress["history"]
        best_epoch = max(history, key=lambda r: r["val_acc"])["epoch"] if history else None
        atomic_write_text(out / "run.json", json.dumps({
            "best_val_acc": progress["best_acc"], "best_epoch": best_epoch, "train_seconds": progress["train_seconds"],
            "device": D.device_name(info), "world_size": info.world_size, "config": cfg.to_dict(),
            "versions": library_versions()}, indent=2) + "\n")
        save_checkpoint(out / "final.safetensors", model,
                        dict(ckpt_config, val_acc=progress["history"][-1]["val_acc"] if progress["history"] else None,
                             epoch=cfg.epochs - 1))
        _final_plots(out, progress["history"], val_ds, cfg, info)
        print(f"best val accuracy {progress['best_acc']:.4f}; checkpoint {out / 'best.safetensors'}")
    D.barrier(info)
    return summary


def _final_plots(out: Path, history, val_ds, cfg, info) -> None:
    """Loss/accuracy curves and the best model's confusion matrix on val."""
    from .plotting import plot_confusion, plot_curves
    if history:
        plot_curves(history, out / "curves.png")
    best, _ = load_checkpoint(out / "best.safetensors", device=info.device)
    loader = make_loader(val_ds, batch_size=cfg.batch_size * 2, num_workers=cfg.workers)
    val = evaluate(best, loader, info=D.DistInfo(device=info.device))
    targets = torch.tensor(val_ds.targets)[val["indices"]]
    plot_confusion(targets.numpy(), val["preds"].numpy(), cfg.num_classes, out / "confusion.png",
                   title=f"val confusion (acc {val['acc']:.4f})")
