"""A tiny random-weight CATR of the same architecture family, a generated vocabulary and images: for tests.

``python3 -m catr.tiny OUT`` writes OUT/tiny_catr.pth (random weights + its config), OUT/vocab.txt and
OUT/images/ (five pictures named like the course's test images).
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .caption import build_model
from .config import CATRConfig

WORDS = ["a", "man", "woman", "riding", "bike", "sheep", "on", "the", "street", "grass", "with", "an", "umbrella",
         "girl", "ski", "##s", "##ing", ".", ","]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # BERT's order: [PAD]=0, [CLS]=2, [SEP]=3 here
IMAGES = {"bike.jpg": (640, 427), "girl.png": (480, 640), "sheep.jpg": (500, 375), "ski.jpg": (300, 300),
          "umbrella.png": (427, 640)}


def write_vocab(path) -> Path:
    path = Path(path)
    path.write_text("\n".join(SPECIAL + WORDS) + "\n")
    return path


def tiny_config(**kw) -> CATRConfig:
    cfg = dict(backbone="resnet50", dilation=True, hidden_dim=32, nheads=4, enc_layers=2, dec_layers=2,
               dim_feedforward=64, vocab_size=len(SPECIAL) + len(WORDS), max_position_embeddings=24)
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out", help="folder to write into")
    out = Path(p.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": tiny_model().state_dict(), "catr_config": tiny_config().to_dict()}, out / "tiny_catr.pth")
    write_vocab(out / "vocab.txt")
    write_images(out / "images")
    print(f"wrote {out / 'tiny_catr.pth'}, {out / 'vocab.txt'} and {len(IMAGES)} images in {out / 'images'}")


if __name__ == "__main__":
    main()
