"""Test models for CATR: a tiny random-weight CATR of the same architecture family, a generated vocabulary and
five images named like the course's test images."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from catr.caption import build_model
from catr.config import CATRConfig
from hw3io import SPECIAL_TOKENS, write_vocab as _write_vocab

WORDS = ["a", "man", "woman", "riding", "bike", "sheep", "on", "the", "street", "grass", "with", "an", "umbrella",
         "girl", "ski", "##s", "##ing", ".", ","]
IMAGES = {"bike.jpg": (640, 427), "girl.png": (480, 640), "sheep.jpg": (500, 375), "ski.jpg": (300, 300),
          "umbrella.png": (427, 640)}


def write_vocab(path) -> Path:
    return _write_vocab(path, WORDS)  # BERT's order: [PAD]=0, [CLS]=2, [SEP]=3 here


def tiny_config(**kw) -> CATRConfig:
    cfg = dict(backbone="resnet50", dilation=True, hidden_dim=32, nheads=4, enc_layers=2, dec_layers=2,
               dim_feedforward=64, vocab_size=len(SPECIAL_TOKENS) + len(WORDS), max_position_embeddings=24)
    cfg.update(kw)
    return CATRConfig(**cfg)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    model = build_model(tiny_config(**kw)).eval()
    with torch.no_grad():  # random features are nearly constant: spread the logits so captions vary
        model.mlp.layers[-1].weight.mul_(20)
    return model


def write_images(directory, seed=0) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (w, h) in IMAGES.items():
        img = Image.fromarray(rng.integers(60, 200, (h, w, 3), dtype=np.uint8))
        d = ImageDraw.Draw(img)
        x, y = rng.integers(0, w // 2), rng.integers(0, h // 2)
        d.ellipse((x, y, x + w // 3, y + h // 3), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        img.save(directory / name)
    return directory
