"""Model building and the self-describing ``.safetensors`` checkpoint.

A checkpoint holds the weights plus a JSON ``config`` in the safetensors metadata: the timm model name,
num_classes, image size, the resolved data config, metrics and library versions. ``load_checkpoint``
rebuilds the model from that alone; nothing is ever unpickled.
"""
import json
from pathlib import Path

import timm
from timm.data import resolve_data_config
from timm.models import register_model

from hw3io import UserError, brief, read_tensors, save_tensors
from training.runlog import library_versions
from .config import DEFAULT_MODEL, NUM_CLASSES
from .quantize import is_quantized

CHECKPOINT_FORMAT = "vitpet/1"


@register_model
def vit_demo_patch8(pretrained=False, **kwargs):
    """A tiny ViT (width 96, depth 4, 3 heads, patch 8) for the offline demo and tests; no weights exist."""
    if pretrained:
        raise UserError("vit_demo_patch8 has no pretrained weights; use --no-pretrained")
    kwargs.setdefault("img_size", 64)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, patch_size=8, embed_dim=96, depth=4,
                             num_heads=3, **kwargs)


def build_model(name: str = DEFAULT_MODEL, num_classes: int = NUM_CLASSES, img_size: int | None = None,
                pretrained: bool = True, pretrained_file: str | None = None, **kwargs):
    """``timm.create_model`` with our head; weights from timm's hub cache, a local file, or none."""
    if img_size is not None:
        kwargs["img_size"] = img_size
    if pretrained_file is not None:
        if not Path(pretrained_file).is_file():
            raise UserError(f"pretrained weights file not found: {pretrained_file}")
        # timm's own offline path: the file replaces the hub location; the head is re-initialised unless
        # num_classes (and the overlay's) match the file's head (file_num_classes).
        kwargs["pretrained_cfg_overlay"] = dict(kwargs.get("pretrained_cfg_overlay") or {}, file=str(pretrained_file))
        pretrained = True
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e) or "Unknown model" in repr(e):
            raise UserError(f"unknown timm model: {name}") from None
        if pretrained:
            raise UserError(f"could not load pretrained weights for {name} ({e}); pass --pretrained-file PATH "
                            "(a timm .safetensors/.bin) or --no-pretrained") from None
        raise
    except (OSError, ValueError) as e:  # hub unreachable, no cache, bad file
        if not pretrained:
            raise
        raise UserError(f"could not load pretrained weights for {name} ({brief(e, 200)}); when "
                        "offline pass --pretrained-file PATH (a timm .safetensors/.bin) or --no-pretrained") from None


def file_num_classes(name: str, pretrained_file) -> int:
    """Rows of the classifier a timm weights file carries (0 without one). Building with this many classes keeps
    the file's head and makes timm load it strictly: any other num_classes makes timm drop the head and load
    non-strictly, so a file of the wrong model would leave random weights without a word."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:
        cfg = None
    classifier = (cfg.classifier if cfg is not None and cfg.classifier else None) or "head"
    key = (classifier if isinstance(classifier, str) else classifier[0]) + ".weight"
    path = str(pretrained_file)
    if not Path(path).is_file():
        raise UserError(f"pretrained weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors import safe_open
            with safe_open(path, "pt") as f:  # reads the header only
                return f.get_slice(key).get_shape()[0] if key in f.keys() else 0
        from timm.models import load_state_dict
        state = load_state_dict(path)
        return int(state[key].shape[0]) if key in state else 0
    except Exception as e:  # noqa: BLE001 -- any unreadable file is one error line
        raise UserError(f"cannot read pretrained weights file {path} ({brief(e, 200)})") from None


def model_img_size(model) -> int:
    return int(model.patch_embed.img_size[0]) if hasattr(model, "patch_embed") else int(
        model.pretrained_cfg["input_size"][-1])


def resolve_model_data_config(model, img_size: int | None = None) -> dict:
    """timm's data config for ``model``; the input size is passed explicitly because a model created with
    ``img_size=S`` still carries a pretrained_cfg of 224."""
    size = img_size or model_img_size(model)
    cfg = resolve_data_config({"input_size": (3, size, size)}, model=model)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def save_checkpoint(path, model, config: dict) -> None:
    """Write weights + ``config`` (model name, num_classes, img_size, data_config, metrics) atomically."""
    if is_quantized(model):
        raise UserError("refusing to save an int8-quantized model: checkpoints hold the fp32 weights")
    save_tensors(path, _unwrap(model).state_dict(),
                 {"format": CHECKPOINT_FORMAT,
                  "config": json.dumps(dict(config, versions=library_versions("timm")))})


def read_checkpoint(path) -> tuple[dict, dict]:
    """(state_dict, config) of a checkpoint, with a one-line error for anything that is not one."""
    state, meta = read_tensors(path, "checkpoint")
    if meta.get("format", "").startswith("hw3-training-state"):
        raise UserError(f"{path} is a training state for --resume, not a model checkpoint: use best.safetensors "
                        "(or final.safetensors) from the same run folder")
    if meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise UserError(f"not a vitpet checkpoint (no config metadata): {path}; p1_train.py writes them "
                        "(best.safetensors, final.safetensors)")
    return state, json.loads(meta["config"])


def load_checkpoint(path, device="cpu"):
    """Rebuild the model a checkpoint describes and load its weights strictly. Returns (model, config)."""
    state, config = read_checkpoint(path)
    model = build_model(config["model"], num_classes=config["num_classes"], img_size=config["img_size"],
                        pretrained=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(f"checkpoint weights do not match its model {config['model']}: {brief(e, 200)}") from None
    return model.to(device).eval(), config


def _unwrap(model):
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile
