"""Test models for CATR: a tiny random-weight CATR of the same architecture family, a generated vocabulary,
five images named like the course's test images, and stand-ins for the perturbation explanations."""
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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


class FakePerturbation:
    """Stand-ins for ``explanations.perturbation`` (written elsewhere): the same signatures, simple bodies, and the
    calls recorded."""

    def __init__(self):
        self.calls = []

    def rise(self, score_fn, image, *, masks=1000, cells=8, p=0.5, batch=50, seed=0, baseline=None, valid=None,
             show_progress=False):
        self.calls.append(dict(method="rise", masks=masks, cells=cells, seed=seed, valid=valid, image=image))
        g = torch.Generator().manual_seed(seed)
        coarse = (torch.rand(masks, 1, cells, cells, generator=g) < p).float()
        m = F.interpolate(coarse, size=image.shape[-2:], mode="nearest")  # (N, 1, H, W)
        scores = score_fn(image[None] * m)  # (N, K)
        maps = torch.einsum("nk,nhw->khw", scores.float(), m[:, 0]) / masks
        return types.SimpleNamespace(maps=maps, seed=seed)  # as explanations.perturbation.RiseMaps holds them

    def occlusion(self, score_fn, image, *, cell, stride=None, batch=64, baseline=None, valid=None,
                  show_progress=False):
        self.calls.append(dict(method="occlusion", cell=cell, valid=valid, image=image))
        base = score_fn(image[None])[0]
        out = torch.zeros(len(base), *image.shape[-2:])
        for top in range(0, image.shape[-2], cell):
            for left in range(0, image.shape[-1], cell):
                hidden = image.clone()
                hidden[:, top:top + cell, left:left + cell] = 0
                out[:, top:top + cell, left:left + cell] = (base - score_fn(hidden[None])[0]).float()[:, None, None]
        return out

    @staticmethod
    def to_grid(pixel_maps, grid):
        return F.adaptive_avg_pool2d(torch.as_tensor(pixel_maps)[None], grid)[0]


def install_fake_explanations(monkeypatch) -> FakePerturbation:
    """Make ``from explanations.perturbation import rise, occlusion, to_grid`` give the stand-ins."""
    fake = FakePerturbation()
    module = types.ModuleType("explanations.perturbation")
    module.rise, module.occlusion, module.to_grid = fake.rise, fake.occlusion, fake.to_grid
    monkeypatch.setitem(sys.modules, "explanations", types.ModuleType("explanations"))
    monkeypatch.setitem(sys.modules, "explanations.perturbation", module)
    return fake
