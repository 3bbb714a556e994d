"""The pointing game for Problem 1: does the CLS attention's maximum land on the object?

``python3 -m vitpet.pointing --checkpoint CKPT --images DIR --boxes BOXES`` (or ``--model NAME [--pretrained-file
FILE] [--img-size S]`` for a timm ViT) scores last-layer head-mean CLS attention (for a model without a class token:
the mean patch query's, see ``attention.query_to_patches``) and attention rollout against two baselines (the image
centre, a uniformly random point), three ways (``explanations.pointing``): strict (the peak inside the box), TorchRay's
tolerance (the peak within 15 px of the box, hit rate per pet class, the label of ``26_5064.jpg`` being 26, then
averaged over the classes) and mass in box (the share of the map inside it). As TorchRay plays it, everything is
measured on the original image (as displayed, after its EXIF orientation, as ``hw3io.load_rgb`` gives it), so the
15 px are original-image pixels: each map, which covers the model's view (eval resize + centre crop), is upsampled
onto the part of the original that the view shows (``view_region``, the inverse of ``view_geometry``) and is zero
elsewhere. The boxes (``{file name: [x, y, w, h]}`` in the image's stored pixels, as ``synth.pets`` writes them)
are turned by its EXIF orientation like its pixels (``explanations.targets``).
"""
import argparse
import sys
from pathlib import Path

import torch

from hw3io import UserError, list_images, load_rgb, place, progress, read_json, run_cli
from explanations.pointing import legend, save, score, spread, table
from explanations.targets import target_mask
from .attention import capture_attention, has_class_token, patch_grid, query_to_patches, rollout, to_grid
from . import lrp
from .data import build_view_transform, has_labels, parse_label
from .config import add_explained_model_args
from .explain import load_explained_model, view_and_input


# Transforms of the eval pipeline that leave pixel positions where they are.
NEUTRAL = {"ToTensor", "PILToTensor", "MaybeToTensor", "MaybePILToTensor", "Normalize", "ConvertImageDtype",
           "ToDtype", "ToImage"}


def view_geometry(data_config: dict, size: tuple[int, int]) -> tuple[float, float, int, int]:
    """(scale_x, scale_y, left, top): original pixel (x, y) lands at (x * sx - left, y * sy - top) in the view."""
    return _view(data_config, size)[:4]


def _view(data_config: dict, size: tuple[int, int]) -> tuple[float, float, int, int, tuple[int, int]]:
    """``view_geometry`` and the view's size (W, H), following the eval transforms ``build_view_transform`` builds
    for every crop mode of timm's data config: torchvision's Resize (shorter side to an int, or both sides) or
    timm's ResizeKeepRatio, then CenterCrop or timm's CenterCropOrPad (padding, when the crop is larger than the
    image, gives a negative offset). Any other transform is refused: a map placed by a guess would be silently
    wrong."""
    from PIL import Image
    from timm.data.transforms import ResizeKeepRatio
    from torchvision.transforms import CenterCrop, Resize
    w, h = size
    sx = sy = 1.0
    left = top = 0
    for t in build_view_transform(data_config).transforms:
        name = type(t).__name__
        if isinstance(t, Resize):
            if isinstance(t.size, int) or len(t.size) == 1:  # the shorter side to this length, aspect kept
                target = t.size if isinstance(t.size, int) else t.size[0]
                short, long = sorted((w, h))
                nw, nh = (target, int(target * long / short)) if w <= h else (int(target * long / short), target)
            else:
                nh, nw = t.size
        elif isinstance(t, ResizeKeepRatio):
            nh, nw = t.get_params(Image.new("L", (w, h)), t.size, t.longest)  # its own arithmetic, as it resizes
        elif isinstance(t, CenterCrop) or name == "CenterCropOrPad":
            ch, cw = t.size
            # both pad a side shorter than the crop first ((crop - side) // 2 before it), then crop the centre
            pad_left, pad_top = max(cw - w, 0) // 2, max(ch - h, 0) // 2
            left = int(round((max(w, cw) - cw) / 2.0)) - pad_left
            top = int(round((max(h, ch) - ch) / 2.0)) - pad_top
            w, h = cw, ch
            continue
        elif name in NEUTRAL:
            continue
        else:
            raise UserError(f"cannot place attention maps for the eval transform {name} (crop mode "
                            f"{data_config.get('crop_mode')!r}); pointing supports the crop modes center, squash "
                            "and border")
        sx, sy, w, h = sx * nw / w, sy * nh / h, nw, nh
    return sx, sy, left, top, (w, h)


def view_region(data_config: dict, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of an original image of (W, H) = ``size`` that the model's view shows, (x0, y0, x1, y1) in original
    pixels: ``view_geometry`` inverted. It overhangs the image where the view is padded."""
    sx, sy, left, top, (w, h) = _view(data_config, size)
    return left / sx, top / sy, (left + w) / sx, (top + h) / sy


def place_on_original(grids: torch.Tensor, data_config: dict, size: tuple[int, int]) -> torch.Tensor:
    """(..., gh, gw) maps of the model's view -> (..., H, W) on the original image of (W, H) = ``size``: upsampled
    onto the region the view shows (``view_region``) and zero outside it, where the model saw nothing. Attention
    maps are positive (softmax), so the peak always lies in the region."""
    return place(grids, view_region(data_config, size), size)


def pet_classes(images) -> list:
    """The class of each image for the tolerance score's class mean: its label, or one class for all when a
    file name carries none."""
    return [parse_label(p) for p in images] if has_labels(images) else ["all"] * len(images)


def method_rows(model, faithfulness: bool, masks: int, cells: int, seed: int) -> dict:
    """Table label -> ``explain.method_maps`` arguments. Every label starts with its method's name; the slow
    black-box methods only with ``faithfulness``."""
    depth = len(model.blocks)
    rows = {f"attention, layer {k}" + (" (last: the homework's map)" if k == depth - 1 else ""):
            dict(method="attention", layer=k) for k in range(depth)}
    rows["attention, mean of the layers"] = dict(method="attention", layer=None)
    rows["rollout"] = dict(method="rollout")
    rows["relevance (Chefer et al. 2021)"] = dict(method="relevance")
    if lrp.unsupported(model) is None:  # e.g. attention pooling: no row rather than no table
        rows["attribution (Chefer et al. CVPR 2021, LRP)"] = dict(method="attribution")
    if faithfulness:
        rows[f"rise ({masks} masks, {cells}x{cells} cells, seed {seed})"] = dict(method="rise", masks=masks,
                                                                                 cells=cells, seed=seed)
        rows["occlusion (one patch at a time)"] = dict(method="occlusion")
    return rows


def row_maps(model, x: torch.Tensor, classes: torch.Tensor, spec: dict) -> torch.Tensor:
    """(B, gh, gw) maps of one table row for a batch; ``layer=None`` is the mean of every layer's head-mean map."""
    from .explain import method_maps
    if spec.get("layer", 0) is None:
        attns = capture_attention(model, x)
        npt, cls = model.num_prefix_tokens, has_class_token(model)
        return to_grid(torch.stack([query_to_patches(a, npt, cls).mean(1) for a in attns]).mean(0), patch_grid(model))
    return method_maps(model, x, classes=classes, **spec)


def pointing_game(model, data_config: dict, images, boxes: dict, device="cpu", batch_size: int = 32,
                  faithfulness: bool = False, masks: int = 1000, cells: int = 8, seed: int = 0, steps: int = 16,
                  show_progress: bool = False) -> dict:
    """Scores (``explanations.pointing.score``) of every method's maps (``method_rows``), with the centre and random
    baselines, on the original images. With ``faithfulness`` also RISE and occlusion, and per row the deletion and
    insertion areas (``explanations.faithfulness``, the explained class's probability, ``steps`` steps) and the
    rank correlation with the same method's maps from a randomised copy of the model (``explanations.sanity``);
    the random baseline row gets a random ranking's areas. Every map explains the model's prediction."""
    from explanations.faithfulness import deletion_insertion, random_baseline_areas
    from explanations.sanity import randomized_copy, rank_correlation
    from .relevance import class_scores, predicted_classes
    rows = method_rows(model, faithfulness, masks, cells, seed)
    grids = {name: [] for name in rows}
    curves = {name: {"deletion": [], "insertion": []} for name in [*rows, "random"]}
    random_model = randomized_copy(model, seed=seed + 1) if faithfulness else None
    random_grids = {name: [] for name in rows}
    for i in progress(range(0, len(images), batch_size), desc="maps", unit="batch", disable=not show_progress):
        x = torch.stack([view_and_input(load_rgb(p), data_config)[1] for p in images[i:i + batch_size]]).to(device)
        classes = predicted_classes(model, x)
        for name, spec in rows.items():
            maps = row_maps(model, x, classes, spec)
            grids[name] += list(maps.cpu())
            if not faithfulness:
                continue
            random_grids[name] += list(row_maps(random_model, x, classes, spec).cpu())
            for image, cls, heat in zip(x, classes.tolist(), maps):
                areas = deletion_insertion(class_scores(model, cls, "prob"), image, heat[None], steps=steps)
                curves[name]["deletion"].append(float(areas["deletion_auc"][0]))
                curves[name]["insertion"].append(float(areas["insertion_auc"][0]))
        if faithfulness:
            for k, (image, cls) in enumerate(zip(x, classes.tolist())):
                areas = random_baseline_areas(class_scores(model, cls, "prob"), image, seed=seed + i + k, steps=steps)
                curves["random"]["deletion"].append(float(areas["deletion_auc"][0]))
                curves["random"]["insertion"].append(float(areas["insertion_auc"][0]))
    results = score_maps(grids, data_config, images, boxes)
    if faithfulness:
        for name in [*rows, "random"]:
            target = results[name] if name in rows else results[next(iter(rows))]
            key = "" if name in rows else "random_"
            target[f"{key}deletion"] = sum(curves[name]["deletion"]) / len(images)
            target[f"{key}insertion"] = sum(curves[name]["insertion"]) / len(images)
        for name in rows:
            results[name]["randomisation"] = rank_correlation(torch.stack(grids[name]), torch.stack(random_grids[name]))
    return results


def score_maps(grids: dict, data_config: dict, images, boxes: dict) -> dict:
    """``grids``: name -> one (gh, gw) map of the model's view per image -> name -> scores on the original images
    against ``boxes`` ({file name: [x, y, w, h]} in stored pixels)."""
    heats, objects = {name: [] for name in grids}, []
    for k, path in enumerate(images):
        objects.append(target_mask([boxes[Path(path).name]], path))  # on the image as displayed, as load_rgb gives
        size = objects[-1].shape[::-1]
        for name, maps in grids.items():
            heats[name].append(place_on_original(maps[k], data_config, size).numpy())
    classes = pet_classes(images)
    return {name: score(h, objects, classes) for name, h in heats.items()}


def format_table(results: dict) -> str:
    return table(results, next(iter(results.values())), "images")


def read_boxes(path) -> dict:
    """``{file name: [x, y, w, h]}``, checked: a malformed entry is one error line, not a traceback later."""
    boxes = read_json(path, "boxes file")
    if not isinstance(boxes, dict):
        raise UserError(f"boxes file {path} is not {{file name: [x, y, w, h]}}")
    for name, box in boxes.items():
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise UserError(f"boxes file {path}: the box of {name} is not [x, y, w, h]: {str(box)[:80]}")
    return boxes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_explained_model_args(p)
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--boxes", default=None, help="JSON {file name: [x, y, w, h]} in the images' stored pixels "
                   "(default: IMAGES/boxes.json)")
    p.add_argument("--faithfulness", action="store_true",
                   help="also RISE and occlusion maps, and for every row deletion and insertion areas and the rank "
                        "correlation with a randomised model's maps (slow: about 3 forward passes per mask per image)")
    p.add_argument("--limit", type=int, default=None, help="score N images spread over the folder (default: all)")
    p.add_argument("--masks", type=int, default=1000, help="rise: random masks per image (default: 1000)")
    p.add_argument("--cells", type=int, default=8, help="rise: masks of CELLS x CELLS cells (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks, the random rankings and the randomised "
                   "model (default: 0)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    p.add_argument("--json", default=None, help="also write the table's numbers here (hw3_report.py --p1-pointing)")
    a = p.parse_args(argv)
    from hw3io import pick_device
    boxes_path = Path(a.boxes or Path(a.images) / "boxes.json")
    boxes = read_boxes(boxes_path)
    images = [p for p in list_images(a.images) if p.name in boxes]
    if not images:
        raise UserError(f"no image of {a.images} has a box in {boxes_path}")
    images = spread(images, a.limit)
    device = pick_device(a.device)
    model, data_config = load_explained_model(a.checkpoint, a.model, device, a.pretrained_file, a.img_size)
    results = pointing_game(model, data_config, images, boxes, device, faithfulness=a.faithfulness, masks=a.masks,
                            cells=a.cells, seed=a.seed, show_progress=True)
    print(format_table(results))
    print(legend(next(iter(results.values()))))
    if a.json:
        save(a.json, results, next(iter(results.values())), "images")


if __name__ == "__main__":
    sys.exit(run_cli(main))
