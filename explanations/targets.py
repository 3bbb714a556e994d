"""Pointing-game targets: boxes and COCO segmentations as boolean masks on the original image as displayed.

Which frame an annotation refers to: the image's stored pixel grid, the rows and columns of the file before any
EXIF orientation. That is COCO's frame (its ``width`` and ``height`` are the stored grid's, pycocotools rasterises
on it and COCO's loaders read images without turning them), and the generators' (``synth.pets`` and
``synth.captionworld`` save images without EXIF, so for them the stored and the displayed grid are one). The maps
live on the image as displayed, because ``hw3io.load_rgb`` applies the EXIF orientation before the model sees it;
so each target is rasterised on the stored grid, then turned by the same orientation as the pixels
(``hw3io.images.orient``). Maps and targets then share one frame, the displayed original, and the pointing game's
15 px are its pixels. A file that states a stored size (COCO's ``width`` and ``height``, an RLE's ``size``) other
than the image's own is refused in one line (it was made on another image, or on the turned one).

A shape is a box [x, y, w, h], or a COCO annotation ``coco_shape`` checked: its segmentation is polygons
([[x0, y0, x1, y1, ...], ...]), an uncompressed RLE ({"counts": [...], "size": [h, w]}, COCO's iscrowd form) or a
compressed RLE (counts a string), decoded by ``pycocotools.mask``; without one (missing or empty) its bbox stands
in. Boxes are rasterised by ``explanations.pointing.box_mask``'s pixel-centre rule. A target of several shapes (every
instance of a category in an image) is their union.
"""
import warnings
from pathlib import Path

import numpy as np

from hw3io.errors import UserError
from hw3io.images import orient, stored_frame
from .pointing import box_mask


def _numbers(values, n=None) -> list[float]:
    if not isinstance(values, list) or (n is not None and len(values) != n) or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"not {n or 'some'} numbers: {str(values)[:60]}")
    return [float(v) for v in values]


def coco_shape(annotation: dict, image_size=None) -> dict:
    """A COCO annotation -> ``{"segmentation", "bbox", "image_size"}``, its structure checked (ValueError if
    malformed); ``image_size``: the (W, H) its image entry states, or None. Polygons of fewer than 3 points are
    dropped (they enclose nothing); with none left the bbox stands in."""
    bbox = _numbers(annotation["bbox"], 4)
    seg = annotation.get("segmentation")
    if isinstance(seg, list):
        seg = [_numbers(p) for p in seg]
        if any(len(p) % 2 for p in seg):
            raise ValueError("a polygon with an odd number of coordinates")
        seg = [p for p in seg if len(p) >= 6] or None
    elif isinstance(seg, dict):
        size = _numbers(seg.get("size"), 2)
        counts = seg.get("counts")
        if isinstance(counts, list):
            _numbers(counts)
        elif not isinstance(counts, str):
            raise ValueError("an RLE without counts")
        seg = {"size": [int(v) for v in size], "counts": counts}
    elif seg is not None:
        raise ValueError(f"a segmentation that is neither polygons nor RLE: {str(seg)[:60]}")
    return {"segmentation": seg, "bbox": bbox, "image_size": tuple(image_size) if image_size else None}


def segmentation_mask(seg, size) -> np.ndarray:
    """COCO polygons or an RLE -> an (H, W) mask on a stored grid of (W, H) = ``size``, as pycocotools decodes it."""
    from pycocotools import mask as coco_mask
    w, h = size
    if isinstance(seg, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(seg, h, w))
    else:
        if list(seg["size"]) != [h, w]:
            raise ValueError(f"an RLE of size {seg['size'][1]}x{seg['size'][0]} (W x H)")
        rle = coco_mask.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else dict(seg)
    with warnings.catch_warnings():  # pycocotools' own NumPy 2 deprecation notice, nothing about our data
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco_mask.decode(rle).astype(bool)


def shape_mask(shape, size) -> np.ndarray:
    """One shape (a box [x, y, w, h] or a ``coco_shape``) -> its (H, W) mask on a stored grid of (W, H) =
    ``size``."""
    if isinstance(shape, dict):
        if shape["segmentation"] is not None:
            return segmentation_mask(shape["segmentation"], size)
        shape = shape["bbox"]
    x, y, bw, bh = shape
    return box_mask([(x, y, x + bw, y + bh)], size[::-1])


def target_mask(shapes, image) -> np.ndarray:
    """The union of ``shapes`` (annotated on the stored grid of the file ``image``) as an (H, W) mask on the image
    as displayed, the frame ``hw3io.load_rgb`` gives and the maps are placed in."""
    size, orientation = stored_frame(image)
    mask = np.zeros(size[::-1], bool)
    for shape in shapes:
        stated = shape.get("image_size") if isinstance(shape, dict) else None
        if stated and tuple(stated) != size:
            raise UserError(f"{Path(image).name} is {size[0]}x{size[1]} stored (EXIF orientation {orientation}), its "
                            f"annotations say {stated[0]}x{stated[1]}: annotations must refer to the stored pixels, "
                            "as COCO's do")
        try:
            mask |= shape_mask(shape, size)
        except ValueError as e:
            raise UserError(f"an annotation of {Path(image).name} ({size[0]}x{size[1]} stored) does not fit it: "
                            f"{e}") from None
    return orient(mask, orientation)
