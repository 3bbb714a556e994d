"""COCO-format caption sets for training: one sample per caption (as official CATR), images padded per batch.

``load_coco_captions`` checks the whole file before training starts (a missing image, an empty caption or an
unknown image id is one clear error), and tokenizes every caption once: [CLS] ... [SEP] with the vocabulary's
own ids, cut to ``max_length`` tokens ([SEP] kept, one warning for all cut captions).
"""
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2 as T

from hw3io import UserError, load_rgb
from training.seeding import sample_rng
from .preprocess import resize


@dataclass
class CaptionSet:
    image_dir: Path
    files: list[str]              # file name per image index
    samples: list[tuple[int, list[int], str]]  # (image index, token ids, caption) per caption
    cut: int                      # captions cut to max_length


def load_coco_captions(annotations, image_dir, tokenizer, max_length: int) -> CaptionSet:
    """Read and validate a COCO captions file (``images``: id, file_name; ``annotations``: image_id, caption)."""
    annotations, image_dir = Path(annotations), Path(image_dir)
    try:
        coco = json.loads(annotations.read_text())
        images, anns = coco["images"], coco["annotations"]
        index = {int(im["id"]): k for k, im in enumerate(images)}
        files = [str(im["file_name"]) for im in images]
    except FileNotFoundError:
        raise UserError(f"caption file not found: {annotations}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"not a COCO captions file: {annotations} ({type(e).__name__}: {e})") from None
    if not image_dir.is_dir():
        raise UserError(f"image folder not found: {image_dir}")
    missing = [f for f in files if not (image_dir / f).is_file()]
    if missing:
        raise UserError(f"{annotations}: {len(missing)} image(s) missing from {image_dir}, e.g. {missing[0]}")
    samples, cut = [], 0
    for a in anns:
        image_id, caption = a.get("image_id"), a.get("caption")
        if image_id not in index:
            raise UserError(f"{annotations}: annotation {a.get('id')} names unknown image id {image_id!r}")
        if not isinstance(caption, str) or not caption.strip():
            raise UserError(f"{annotations}: annotation {a.get('id')} (image id {image_id}) has an empty caption")
        ids = tokenizer.encode(caption.strip())
        if len(ids) > max_length:
            ids, cut = ids[:max_length - 1] + [tokenizer.end_id], cut + 1
        samples.append((index[image_id], ids, caption.strip()))
    if not samples:
        raise UserError(f"{annotations}: no captions")
    if cut:
        print(f"warning: {cut} of {len(samples)} caption(s) in {annotations} are longer than --max-length "
              f"{max_length} tokens and were cut")
    return CaptionSet(image_dir, files, samples, cut)


def train_transform(max_dim: int, augment: str):
    """Official CATR's training transform ("catr": random rotation by a multiple of 90 degrees, colour jitter,
    horizontal flip) or none ("none"; flips and turns would contradict captions that say left, right, above).
    The image is resized to ``max_dim`` on its longer side either way. Draws from Python's and torch's global
    RNGs, which the dataset seeds per sample."""
    if augment == "none":
        return lambda img: resize(img, max_dim)
    jitter = T.ColorJitter(brightness=(0.5, 1.3), contrast=(0.8, 1.5), saturation=(0.2, 1.5))

    def official(img):
        img = resize(img.rotate(random.choice((0, 90, 180, 270)), expand=True), max_dim)
        img = jitter(img)
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if random.random() < 0.5 else img

    return official


class CaptionDataset(torch.utils.data.Dataset):
    """(image tensor normalised with mean = std = 0.5, token ids) per caption. Augmentation is seeded per
    (seed, epoch, sample), so a resumed run sees the same images as an uninterrupted one."""

    def __init__(self, data: CaptionSet, max_dim: int, augment: str = "none", seed: int = 0):
        self.data, self.seed, self.epoch = data, seed, 0
        self.transform = train_transform(max_dim, augment)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.data.samples)

    def __getitem__(self, i):
        k, ids, _ = self.data.samples[i]
        img = load_rgb(self.data.image_dir / self.data.files[k])
        with sample_rng(self.seed, self.epoch, i):
            img = self.transform(img)
        x = T.functional.normalize(T.functional.to_dtype(T.functional.to_image(img), torch.float32, scale=True),
                                   [0.5] * 3, [0.5] * 3)
        return x, torch.tensor(ids)


def collate(batch, pad_id: int):
    """Images padded to the batch's largest (mask True on padding, as DETR's NestedTensor); captions padded with
    ``pad_id`` (padding mask True on padding)."""
    xs, caps = zip(*batch)
    H, W = max(x.shape[1] for x in xs), max(x.shape[2] for x in xs)
    images = torch.stack([F.pad(x, (0, W - x.shape[2], 0, H - x.shape[1])) for x in xs])
    mask = torch.ones(len(xs), H, W, dtype=torch.bool)
    for m, x in zip(mask, xs):
        m[:x.shape[1], :x.shape[2]] = False
    L = max(len(c) for c in caps)
    ids = torch.full((len(caps), L), pad_id, dtype=torch.long)
    for row, c in zip(ids, caps):
        row[:len(c)] = c
    return images, mask, ids, ids == pad_id
