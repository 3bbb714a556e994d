"""Pet image folders: file name -> label, datasets, and transforms from the model's timm data config."""
from pathlib import Path

import torch
from timm.data import create_transform
from torch.utils.data import Dataset

from hw3io import UserError, list_images, load_rgb
from training.seeding import sample_rng


def parse_label(path, num_classes: int | None = None) -> int:
    """``26_5064.jpg`` -> 26. Raises UserError naming the file when there is no valid label."""
    stem = Path(path).stem
    head, sep, _ = stem.partition("_")
    if not sep or not head.isdigit():
        raise UserError(f"file name has no integer label before '_': {Path(path).name}")
    label = int(head)
    if num_classes is not None and not 0 <= label < num_classes:
        raise UserError(f"label {label} of {Path(path).name} is outside 0..{num_classes - 1}")
    return label


def has_labels(paths) -> bool:
    """True when every file name carries a label (so accuracy can be reported)."""
    try:
        for p in paths:
            parse_label(p)
    except UserError:
        return False
    return True


CLASS_FILE = "classes.txt"


def read_class_names(path, num_classes: int) -> list[str]:
    """The class names of a ``classes.txt`` (one name a line, in label order); one error line when it cannot be read
    or holds another number of names. Training and the report both read the file through this."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read class names {path}: {e.strerror or e}") from None
    except ValueError as e:  # not UTF-8 text
        raise UserError(f"class names {path} are not text ({e})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != num_classes:
        raise UserError(f"{path} has {len(names)} class names for {num_classes} classes")
    return names


def find_class_names(train_dir, num_classes: int) -> list[str] | None:
    """The class names in label order from a ``classes.txt`` in the training folder or its parent, the data folder;
    None when there is none. The file names carry only numbers, so nothing else knows them."""
    train_dir = Path(train_dir)
    for folder in (train_dir, train_dir.parent):
        if (folder / CLASS_FILE).is_file():
            return read_class_names(folder / CLASS_FILE, num_classes)
    return None


class ImageFolderDataset(Dataset):
    """Images of one folder, with labels from file names (``labelled=True``) or without.

    Items are ``(image, target, index)``; ``target`` is -1 for unlabelled folders. With
    ``skip_unreadable`` a file that does not decode yields ``(None, target, index)`` so the caller
    can report it instead of crashing (use :func:`collate_skip`).
    """

    def __init__(self, directory, transform, labelled: bool, num_classes: int | None = None,
                 skip_unreadable: bool = False, seed: int = 0):
        self.paths = list_images(directory)
        self.targets = [parse_label(p, num_classes) for p in self.paths] if labelled else [-1] * len(self.paths)
        self.transform = transform
        self.skip_unreadable = skip_unreadable
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        try:
            img = load_rgb(self.paths[index])
        except UserError:
            if self.skip_unreadable:
                return None, self.targets[index], index
            raise
        with sample_rng(self.seed, self.epoch, index):
            x = self.transform(img)
        return x, self.targets[index], index


def collate_skip(batch):
    """Stack readable items; return the indices of the unreadable ones alongside."""
    good = [b for b in batch if b[0] is not None]
    bad = [b[2] for b in batch if b[0] is None]
    if good:
        x = torch.stack([b[0] for b in good])
        y = torch.tensor([b[1] for b in good])
        idx = torch.tensor([b[2] for b in good])
    else:
        x, y, idx = None, torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return x, y, idx, bad


def build_transforms(data_config: dict, is_training: bool, color_jitter: float = 0.1, scale=(0.5, 1.0)):
    """timm transforms from a resolved data config: the model decides size, mean, std, crop."""
    cfg = {k: data_config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
           if k in data_config}
    if is_training:
        return create_transform(**cfg, is_training=True, hflip=0.5, color_jitter=color_jitter, scale=scale,
                                auto_augment=None, re_prob=0.0)
    return create_transform(**cfg, is_training=False)


def build_view_transform(data_config: dict):
    """The eval geometry without normalisation: the image exactly as the model sees it, in [0, 1]."""
    cfg = dict(data_config, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return build_transforms(cfg, is_training=False)
