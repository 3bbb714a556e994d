"""CATR's evaluation preprocessing: RGB, longer side to 299 (PIL bicubic), normalise with mean = std = 0.5."""
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import normalize, to_tensor

MAX_DIM = 299


def resized_shape(size: tuple[int, int], max_dim: int = MAX_DIM) -> tuple[int, int]:
    """(W, H) after scaling the longer side to ``max_dim``: the original's float64 arithmetic truncated to int
    (its ``np.float`` is gone from NumPy >= 1.24; float64 is what it meant)."""
    shape = np.array(size, dtype=np.float64)
    return tuple(int(v) for v in (shape * (max_dim / shape.max())).astype(int))


def resize(img: Image.Image, max_dim: int = MAX_DIM) -> Image.Image:
    return img.resize(resized_shape(img.size, max_dim), Image.Resampling.BICUBIC)


def preprocess(img: Image.Image, max_dim: int = MAX_DIM):
    """RGB PIL image -> (resized PIL image, tensor (1, 3, H, W), mask (1, H, W) all False: one image, no padding)."""
    small = resize(img.convert("RGB"), max_dim)
    x = normalize(to_tensor(small), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])[None]
    return small, x, torch.zeros(1, *x.shape[-2:], dtype=torch.bool)
