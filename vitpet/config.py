"""Every training knob in one dataclass; argparse groups are built from it and it is saved with each checkpoint.

The defaults are the recipe we expect to reach >= 0.95 val accuracy with ViT-B/16 on the pet data
(peers report 0.95 with SGD momentum 0.9, lr 1e-3, a small batch, 10-20 epochs, flips + mild colour jitter).
"""
import shlex
from dataclasses import dataclass
from pathlib import Path

from training.options import RunOptions, config_argv, none_or_float, option as _f

DEFAULT_MODEL = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
NUM_CLASSES = 37


@dataclass
class TrainConfig(RunOptions):
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
    clip_grad: float | None = _f(1.0, "max gradient norm (none to disable)", "optim", parse=none_or_float)
    color_jitter: float = _f(0.1, "colour jitter strength (mild)", "optim")
    # Runtime (the shared flags: training.options.RunOptions)
    output_dir: str = _f("runs/p1", "where logs, plots and checkpoints go", "runtime")


def add_explained_model_args(parser) -> None:
    """Which model the explanation tools (p1_visualize_pos.py, p1_visualize_attn.py, vitpet.pointing) explain;
    ``vitpet.explain.load_explained_model`` takes these flags as they are."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="CKPT", help="a .safetensors checkpoint written by p1_train.py")
    src.add_argument("--model", metavar="NAME", help="a timm ViT name (any family: patch 14/16, registers, no class token, CLIP, "
                                     "DINOv2), with its pretrained weights from the hub or --pretrained-file")
    parser.add_argument("--pretrained-file", default=None, metavar="FILE",
                        help="with --model: a local timm weights file (.safetensors/.bin), loaded offline through "
                             "timm's own file route; its head is kept")
    parser.add_argument("--img-size", type=int, default=None, metavar="S",
                        help="with --model: input size; timm resamples the position embeddings to the new grid "
                             "(default: the model's own)")


def reproduce_commands(train_config: dict, val_dir=None) -> tuple[str, str]:
    """(train, predict) shell commands for a checkpoint's run, as p1_publish.py and the report print them; the
    prediction runs on ``val_dir``, else the run's own val folder."""
    t = train_config
    val = val_dir or t.get("val_dir") or (str(Path(t["data_dir"]) / "val") if t.get("data_dir") else "VAL_DIR")
    return ("python3 p1_train.py " + shlex.join(config_argv(t, TrainConfig)),
            f"bash hw3_1.sh {shlex.quote(str(val))} pred.csv")


def format_versions(versions: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (versions or {}).items())
