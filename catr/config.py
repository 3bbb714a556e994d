"""CATR's architecture numbers; the defaults are those of all three official checkpoints (v1, v2, v3)."""
from dataclasses import asdict, dataclass, replace

from training.options import RunOptions, option as _f


@dataclass
class CATRConfig:
    backbone: str = "resnet101"        # torchvision ResNet name, or "convnet" (catr.backbone.ConvNet, from scratch)
    dilation: bool = True              # last stage dilated: stride 16, feature map ceil(H/16) x ceil(W/16)
    position_embedding: str = "sine"
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    vocab_size: int = 30522            # BERT uncased
    max_position_embeddings: int = 128  # longest caption, [CLS] included
    layer_norm_eps: float = 1e-12       # BERT's value, used by the word-embedding LayerNorm
    pad_token_id: int = 0               # BERT [PAD]
    max_dim: int = 299                  # preprocessing: the longer image side is resized to this

    def to_dict(self):
        return asdict(self)


# Architecture per preset. "catr" is the official one (the released checkpoints'); "tiny" trains the caption
# world on two CPU cores in minutes: a small CNN at 128 px (stride 8, last stage dilated, so a cell sees a whole
# object; pretrained by catr.pretrain, as the official ResNet is on ImageNet) under a 2-layer decoder and no
# encoder layer (one measured no better in 4 epochs and cost a third more time); no dropout (attention dropout
# doubled the step time on the CPU).
ARCHITECTURES = {
    "catr": {},
    "tiny": dict(backbone="convnet", hidden_dim=64, nheads=4, enc_layers=0, dec_layers=2, dim_feedforward=256,
                 dropout=0.0, max_position_embeddings=32, max_dim=128),
}

# Training recipe per preset; every entry can be overridden by its p2_train.py flag (workers None: the machine's
# default). "catr" is official CATR's
# main.py: AdamW, lr 1e-4, backbone 1e-5, weight decay 1e-4, batch 32, clip 0.1, 30 epochs, lr x0.1 at epoch 20,
# its augmentation, max length 128.
RECIPES = {
    "catr": dict(epochs=30, batch_size=32, lr=1e-4, lr_backbone=1e-5, weight_decay=1e-4, clip_grad=0.1,
                 max_length=128, schedule="step", lr_drop=20, warmup_epochs=0.0, augment="catr", workers=None),
    "tiny": dict(epochs=8, batch_size=8, lr=1e-3, lr_backbone=1e-3, weight_decay=1e-4, clip_grad=1.0,
                 max_length=32, schedule="cosine", lr_drop=0, warmup_epochs=1.0, augment="none", workers=0),
}


def _preset(name):
    return ", ".join(f"{p}: {r[name]}" for p, r in RECIPES.items())


@dataclass
class CaptionTrainConfig(RunOptions):
    """p2_train.py's flags. ``None`` means "the preset's value" (resolved by ``resolved()``)."""
    train_annotations: str = _f(None, "COCO captions JSON of the training set", "data", required=True)
    train_images: str = _f(None, "folder of the training images", "data", required=True)
    val_annotations: str = _f(None, "COCO captions JSON of the validation set", "data", required=True)
    val_images: str = _f(None, "folder of the validation images", "data", required=True)
    vocab: str | None = _f(None, "vocab.txt, BERT format (default: BERT uncased's from the Hugging Face hub)", "data")
    workers: int | None = _f(None, "data-loader worker processes (catr: min(4, usable CPUs); tiny: 0, loading in "
                                   "the training process, which beats sharing two cores)", "data")
    max_length: int | None = _f(None, f"longest caption in tokens, [CLS] and [SEP] included; longer ones are cut "
                                      f"({_preset('max_length')})", "data")
    augment: str | None = _f(None, f"training augmentation ({_preset('augment')})", "data", choices=("catr", "none"))
    caption_eval_images: int = _f(200, "val images captioned greedily each epoch for the caption metrics", "data")
    preset: str = _f("catr", "architecture and recipe: catr (official) or tiny (CPU, minutes)", "model",
                     choices=tuple(RECIPES))
    init: str | None = _f(None, "start from these weights: v1, v2, v3 (official release, downloaded once) or a "
                                "checkpoint file (official or ours; its architecture is used)", "model")
    backbone_weights: str | None = _f(None, "start the backbone from this file: for tiny, a ConvNet written by "
                                            "python3 -m catr.pretrain (without it the ConvNet starts at random and "
                                            "learns colours but hardly shapes); for catr, torchvision's ImageNet "
                                            "weights are used unless this is 'none' (a random ResNet: offline, "
                                            "for trying the pipeline; it will caption poorly)", "model")
    epochs: int | None = _f(None, f"training epochs ({_preset('epochs')})", "optim")
    batch_size: int | None = _f(None, f"per-device batch size ({_preset('batch_size')})", "optim")
    accum_steps: int = _f(1, "gradient accumulation micro-batches per optimizer step", "optim")
    lr: float | None = _f(None, f"learning rate of the transformer and head ({_preset('lr')})", "optim")
    lr_backbone: float | None = _f(None, f"learning rate of the backbone, 0 freezes it ({_preset('lr_backbone')})",
                                   "optim")
    weight_decay: float | None = _f(None, f"AdamW weight decay ({_preset('weight_decay')})", "optim")
    clip_grad: float | None = _f(None, f"max gradient norm ({_preset('clip_grad')})", "optim")
    schedule: str | None = _f(None, f"lr schedule: step (x0.1 every LR_DROP epochs) or cosine ({_preset('schedule')})",
                              "optim", choices=("step", "cosine"))
    lr_drop: int | None = _f(None, f"epochs between x0.1 lr drops of the step schedule ({_preset('lr_drop')})", "optim")
    warmup_epochs: float | None = _f(None, f"linear warmup in epochs ({_preset('warmup_epochs')})", "optim")
    output_dir: str = _f("runs/p2", "where the log, checkpoint.pth, vocab.txt and the resume state go", "runtime")

    def resolved(self) -> "CaptionTrainConfig":
        """A copy with every ``None`` recipe entry filled from the preset."""
        recipe = RECIPES[self.preset]
        return replace(self, **{k: v for k, v in recipe.items() if getattr(self, k) is None})
