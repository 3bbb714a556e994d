"""Image folders and robust RGB loading (EXIF orientation, any PIL mode)."""
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _is_image_entry(p: Path) -> bool:
    # A dangling symlink named *.jpg is an image the user meant: keep it, so it is reported as unreadable.
    return p.suffix.lower() in IMAGE_EXTENSIONS and (p.is_file() or (p.is_symlink() and not p.exists()))


def list_images(directory) -> list[Path]:
    """Image files directly in ``directory``, sorted by name; other files and sub-folders are ignored."""
    directory = Path(directory)
    if directory.is_file():
        raise UserError(f"{directory} is a file; give the folder that holds the images (e.g. {directory.parent})")
    if not directory.is_dir():
        raise UserError(f"image folder not found: {directory}")
    paths = sorted(p for p in directory.iterdir() if _is_image_entry(p))
    if not paths:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {directory}")
    return paths


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grey: PIL's convert('RGB') clips at 255, so rescale to 8 bits first.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels go over white, not over whatever colour they happen to store.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_rgb(path) -> Image.Image:
    """Decode ``path`` fully, apply its EXIF orientation and return an 8-bit RGB image."""
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None


def load_partial_rgb(path) -> Image.Image:
    """What PIL can decode of a truncated file (the missing rows filled in), for predictions that must cover every
    file of a graded folder; still a ``UserError`` when nothing decodes. Training never uses it: a truncated
    training image is refused."""
    from PIL import ImageFile
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        return load_rgb(path)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


ORIENTATION = 0x0112  # the EXIF tag load_rgb turns the pixels by


def stored_frame(path) -> tuple[tuple[int, int], int]:
    """(size (W, H) of the stored pixel grid, EXIF orientation 1-8) of an image: the grid its annotations refer to
    and the turn ``load_rgb`` gives it. Decoded fully, as ``load_rgb`` does, because a PNG may carry its EXIF after
    the pixels."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.size, int(img.getexif().get(ORIENTATION, 1))
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None


def orient(mask: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W) boolean mask on the stored pixel grid, turned by EXIF ``orientation`` exactly as ``load_rgb`` turns
    the image's pixels: by the same ``ImageOps.exif_transpose``, on the mask as a one-bit image."""
    img = Image.fromarray(np.ascontiguousarray(mask, dtype=bool))
    img.getexif()[ORIENTATION] = orientation
    return np.asarray(ImageOps.exif_transpose(img), dtype=bool)


def check_readable(paths) -> list[tuple[Path, str]]:
    """(path, reason) for every file in ``paths`` that does not decode."""
    bad = []
    for p in paths:
        try:
            load_rgb(p)
        except UserError as e:
            bad.append((Path(p), str(e)))
    return bad


def triage(paths) -> tuple[list[tuple[Path, str]], list[Path]]:
    """The files of ``paths`` that do not decode, split for the graded scripts, which always write what they can:
    (unreadable: (path, reason) with nothing to decode, partial: truncated files ``load_partial_rgb`` reads)."""
    unreadable, partial = [], []
    for path, reason in check_readable(paths):
        try:
            load_partial_rgb(path)
            partial.append(path)
        except UserError:
            unreadable.append((path, reason))
    return unreadable, partial
