"""``fit(cfg)``: fine-tune a timm ViT on the pet folders through the shared fit loop (``training.loop``): plain
python3 or torchrun, AMP, exact resume. This module builds what is Problem 1's: model, data, optimizer, the fp32 val
accuracy that picks ``best.safetensors``, and the final files."""
from functools import partial
from pathlib import Path

import torch
from timm.optim import create_optimizer_v2
from torch.utils.data import Subset

from hw3io import UserError, atomic_write_text, ensure_writable_dir, list_images
from training import distributed as D
from training.engine import classification_loss, evaluate
from training.images import check_images
from training.loop import StopFlag, Task, check_config, fit as fit_loop, launch
from training.schedule import StepSchedule
from training.seeding import make_loader, seed_everything
from .config import TrainConfig
from .data import CLASS_FILE, ImageFolderDataset, build_transforms, find_class_names
from .model import build_model, load_checkpoint, resolve_model_data_config, save_checkpoint

LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_acc", "lr")

# Our names -> timm's optimizer factory. timm's "sgd" is Nesterov; the recipe (and the peers' 0.95) is classical
# momentum, which timm calls "momentum".
TIMM_OPT = {"sgd": "momentum", "adamw": "adamw"}


def build_optimizer(cfg: TrainConfig, model, device):
    """timm's factory: biases, norms and everything in ``model.no_weight_decay()`` (pos_embed, cls_token) get no
    weight decay, and ``layer_decay`` gives each block its own ``lr_scale``, which the schedule applies."""
    kwargs = {"fused": True} if cfg.opt == "adamw" and device.type == "cuda" else {}
    return create_optimizer_v2(model, opt=TIMM_OPT[cfg.opt], lr=cfg.lr, weight_decay=cfg.weight_decay,
                               momentum=cfg.momentum, layer_decay=cfg.layer_decay, **kwargs)


def build_schedule(cfg: TrainConfig, optimizer, steps_per_epoch: int) -> StepSchedule:
    return StepSchedule(optimizer, total=cfg.epochs * steps_per_epoch, warmup=int(cfg.warmup_epochs * steps_per_epoch),
                        kind="cosine", min_factor=cfg.min_lr / cfg.lr)


def resolve_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    if cfg.train_dir is None and cfg.data_dir is None:
        raise UserError("give --data-dir (holding train/ and val/) or --train-dir and --val-dir")
    train_dir = Path(cfg.train_dir or Path(cfg.data_dir) / "train")
    val_dir = Path(cfg.val_dir or Path(cfg.data_dir) / "val")
    return train_dir, val_dir


def fit(cfg: TrainConfig) -> dict:
    """Train, validate each epoch (fp32), keep best/last/final; returns the summary dict."""
    check_config(cfg)
    train_dir, val_dir = resolve_dirs(cfg)
    for folder in (train_dir, val_dir):  # a wrong --data-dir is said before weights are downloaded or loaded
        list_images(folder)
    # Read here, before torchrun's ranks start: a bad classes.txt raised on the main rank alone would leave the
    # others waiting for it at the first collective.
    names = find_class_names(train_dir, cfg.num_classes)
    return launch(cfg, partial(_fit, class_names=names))


def write_class_names(out: Path, names: list[str] | None) -> None:
    """``classes.txt`` beside the checkpoint, so the report names classes without being told where; a data folder
    without one removes an older run's from a reused output folder, which would name the wrong classes."""
    if names is None:
        (out / CLASS_FILE).unlink(missing_ok=True)
    else:
        atomic_write_text(out / CLASS_FILE, "\n".join(names) + "\n")


def _fit(cfg: TrainConfig, info: D.DistInfo, stop: StopFlag, class_names: list[str] | None) -> dict:
    train_dir, val_dir = resolve_dirs(cfg)
    out = Path(cfg.output_dir)
    if info.is_main:
        ensure_writable_dir(out)
        write_class_names(out, class_names)
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
    val_loader = make_loader(Subset(val_ds, D.shard_indices(len(val_ds), info)), batch_size=cfg.batch_size * 2,
                             num_workers=cfg.workers, pin_memory=info.device.type == "cuda")
    optimizer = build_optimizer(cfg, model, info.device)
    ckpt_config = {"model": cfg.model, "num_classes": cfg.num_classes, "img_size": img_size,
                   "train_device": D.device_name(info), "data_config": data_config, "train_config": cfg.to_dict()}

    def val_metrics():
        val = evaluate(model, val_loader, info=info)
        return {"val_loss": val["loss"], "val_acc": val["acc"], "val_count": val["count"]}

    def end_epoch(epoch, row, improved):
        if improved:
            save_checkpoint(out / "best.safetensors", model, dict(ckpt_config, val_acc=row["val_acc"], epoch=epoch))
        print(f"epoch {epoch}: train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
              f"val_acc {row['val_acc']:.4f} ({row['val_count']} images, {row['seconds']:.0f}s)"
              + (" *best*" if improved else ""), flush=True)

    def end_run(progress):
        history = progress["history"]
        save_checkpoint(out / "final.safetensors", model,
                        dict(ckpt_config, val_acc=history[-1]["val_acc"] if history else None, epoch=cfg.epochs - 1))
        if history:
            _final_plots(out, history, val_ds, cfg, info)
            print(f"best val accuracy {progress['best']:.4f}; checkpoint {out / 'best.safetensors'}")
        best_epoch = max(history, key=lambda r: r["val_acc"])["epoch"] if history else None
        return {"best_val_acc": progress["best"], "best_epoch": best_epoch}

    task = Task(model=model, optimizer=optimizer, schedule=lambda spe: build_schedule(cfg, optimizer, spe),
                train_set=train_ds, loss_fn=classification_loss(cfg.label_smoothing), evaluate=val_metrics,
                log_fields=LOG_FIELDS, best_metric="val_acc", end_epoch=end_epoch, end_run=end_run,
                identity={"model": cfg.model, "img_size": img_size, "num_classes": cfg.num_classes,
                          "train_dir": str(train_dir.resolve()), "val_dir": str(val_dir.resolve())},
                describe=f"{cfg.model} at {img_size}px ({len(val_ds)} val images, {cfg.opt})", versions=("timm",),
                check_data=lambda: check_images(train_ds.paths + val_ds.paths, workers=cfg.workers, info=info,
                                                skip_hint="Move them out of the folder to train without them."))
    progress = fit_loop(cfg, info, task, stop)
    return {"best_acc": progress["best"], "epochs": cfg.epochs, "output_dir": str(out)}


def _final_plots(out: Path, history, val_ds, cfg, info) -> None:
    """Loss/accuracy curves and the best model's confusion matrix on val."""
    from .plotting import plot_confusion, plot_curves
    plot_curves(history, out / "curves.png")
    best, _ = load_checkpoint(out / "best.safetensors", device=info.device)
    loader = make_loader(val_ds, batch_size=cfg.batch_size * 2, num_workers=cfg.workers)
    val = evaluate(best, loader, info=D.DistInfo(device=info.device))
    targets = torch.tensor(val_ds.targets)[val["indices"]]
    plot_confusion(targets.numpy(), val["preds"].numpy(), cfg.num_classes, out / "confusion.png",
                   title=f"val confusion (acc {val['acc']:.4f})")
