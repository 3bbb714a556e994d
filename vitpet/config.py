"""Every training knob in one dataclass; argparse groups are built from it and it is saved with each checkpoint.

The defaults are the recipe we expect to reach >= 0.95 val accuracy with ViT-B/16 on the pet data
(peers report 0.95 with SGD momentum 0.9, lr 1e-3, a small batch, 10-20 epochs, flips + mild colour jitter).
"""
import argparse
import dataclasses
import shlex
from pathlib import Path
from dataclasses import dataclass, field

DEFAULT_MODEL = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
NUM_CLASSES = 37


def _f(default, help, group, **kw):
    return field(default=default, metadata=dict(help=help, group=group, **kw))


def _none_or_float(s: str):
    return None if s.lower() in ("none", "0", "off") else float(s)


@dataclass
class TrainConfig:
    # Data
    data_dir: str | None = _f(None, "folder holding train/ and val/", "data")
    train_dir: str | None = _f(None, "training images (default: DATA_DIR/train)", "data")
    val_dir: str | None = _f(None, "validation images (default: DATA_DIR/val); never trained on", "data")
    workers: int | None = _f(None, "data-loader worker processes (default: min(4, usable CPUs))", "data")
    # Model
    model: str = _f(DEFAULT_MODEL, "timm model name", "model")
    num_classes: int = _f(NUM_CLASSES, "number of classes", "model")
    img_size: int | None = _f(None, "input size (default: the model's own)", "model")
    pretrained: bool = _f(True, "start from timm's pretrained weights (--no-pretrained: random init)", "model")
    pretrained_file: str | None = _f(None, "local pretrained weights file (offline); implies pretrained", "model")
    drop_path: float = _f(0.1, "stochastic depth rate", "model")
    # Optimisation
    opt: str = _f("sgd", "optimizer", "optim", choices=("sgd", "adamw"))
    lr: float = _f(1e-3, "peak learning rate (Adam at 1e-2 collapses ViT to one class)", "optim")
    momentum: float = _f(0.9, "SGD momentum", "optim")
    weight_decay: float = _f(0.0, "weight decay (0 for SGD fine-tuning, ~0.05 for AdamW); never applied to "
                                  "biases, norms, pos_embed or cls_token", "optim")
    layer_decay: float | None = _f(None, "layer-wise lr decay, e.g. 0.75: block k of L trains at lr * decay^(L-k) "
                                         "(default: off)", "optim")
    epochs: int = _f(10, "training epochs", "optim")
    batch_size: int = _f(16, "per-device batch size", "optim")
    accum_steps: int = _f(1, "gradient accumulation micro-batches per optimizer step", "optim")
    warmup_epochs: float = _f(1.0, "linear warmup length in epochs", "optim")
    min_lr: float = _f(1e-6, "cosine schedule floor", "optim")
    label_smoothing: float = _f(0.1, "label smoothing of the training loss", "optim")
    clip_grad: float | None = _f(1.0, "max gradient norm (none to disable)", "optim", parse=_none_or_float)
    color_jitter: float = _f(0.1, "colour jitter strength (mild)", "optim")
    # Runtime
    output_dir: str = _f("runs/p1", "where logs, plots and checkpoints go", "runtime")
    seed: int = _f(0, "random seed (model init, data order, augmentation)", "runtime")
    device: str = _f("auto", "auto: cuda if available, else cpu", "runtime")
    amp: str = _f("auto", "mixed precision on CUDA (auto = bf16 where supported)", "runtime",
                  choices=("auto", "bf16", "fp16", "off"))
    compile: bool = _f(False, "torch.compile the model", "runtime")
    resume: str | None = _f(None, "a state file to continue from, or 'auto' (OUTPUT_DIR/last.safetensors)", "runtime")
    save_every: int = _f(0, "also save a resumable state every N optimizer steps (0: once per epoch)", "runtime")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _optional(tp):
    return tp.__args__[0] if hasattr(tp, "__args__") else tp


def add_config_args(parser: argparse.ArgumentParser, cls=TrainConfig) -> argparse.ArgumentParser:
    """One argparse group per ``group`` metadata; bools become ``--flag`` / ``--no-flag``."""
    groups = {}
    for f in dataclasses.fields(cls):
        g = f.metadata["group"]
        if g not in groups:
            groups[g] = parser.add_argument_group(g)
        flag = "--" + f.name.replace("_", "-")
        help = f.metadata["help"] + ("" if f.default is None else f" (default: {f.default})")
        if f.type is bool:
            groups[g].add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                   help=f.metadata["help"])
            continue
        tp = _optional(f.type)
        tp = f.metadata.get("parse", tp)
        groups[g].add_argument(flag, dest=f.name, type=tp, default=f.default, help=help,
                               choices=f.metadata.get("choices"))
    return parser


def config_from_args(args: argparse.Namespace, cls=TrainConfig):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def config_argv(config: dict, cls=TrainConfig) -> list[str]:
    """The p1_train.py flags that rebuild ``config`` (a saved ``to_dict()``): only those that differ from the
    defaults, so the command a report prints stays short. ``resume`` is never repeated."""
    argv = []
    for f in dataclasses.fields(cls):
        if f.name == "resume" or f.name not in config or config[f.name] == f.default:
            continue
        flag, value = "--" + f.name.replace("_", "-"), config[f.name]
        if f.type is bool:
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, "none" if value is None else str(value)]
    return argv


def reproduce_commands(train_config: dict, val_dir=None) -> tuple[str, str]:
    """(train, predict) shell commands for a checkpoint's run, as p1_publish.py and the report print them; the
    prediction runs on ``val_dir``, else the run's own val folder."""
    t = train_config
    val = val_dir or t.get("val_dir") or (str(Path(t["data_dir"]) / "val") if t.get("data_dir") else "VAL_DIR")
    return ("python3 p1_train.py " + shlex.join(config_argv(t)), f"bash hw3_1.sh {shlex.quote(str(val))} pred.csv")


def format_versions(versions: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (versions or {}).items())
