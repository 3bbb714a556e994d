"""The two explanation pipelines behind p1_visualize_pos.py and p1_visualize_attn.py, and the model loader they share
with ``python3 -m vitpet.pointing``."""
import json
from pathlib import Path

import numpy as np
import torch

from hw3io import UserError, atomic_save_npy, atomic_write_text, ensure_writable_dir, load_rgb, progress, upsample
from .attention import all_layer_maps, attention_maps, map_name, patch_grid, pos_embed_cosine
from .data import build_view_transform
from .model import build_model, file_num_classes, load_checkpoint, resolve_model_data_config
from . import outliers, plotting


def load_explained_model(checkpoint=None, model_name=None, device="cpu", pretrained_file=None, img_size=None):
    """A fine-tuned checkpoint, or a timm model with its pretrained weights: from the hub, or offline from
    ``pretrained_file`` through timm's own file route, keeping the file's head and loading it strictly. With
    ``img_size`` timm resamples the position embeddings. Returns (model, data_config)."""
    if model_name is None and (pretrained_file is not None or img_size is not None):
        raise UserError("--pretrained-file and --img-size go with --model NAME (a checkpoint rebuilds its own model)")
    if checkpoint is not None:
        model, config = load_checkpoint(checkpoint, device=device)
        return model, config["data_config"]
    if model_name is None:
        raise UserError("give --checkpoint CKPT or --model NAME")
    if pretrained_file is None:
        model = build_model(model_name, pretrained=True, img_size=img_size)
    else:
        n = file_num_classes(model_name, pretrained_file)
        model = build_model(model_name, num_classes=n, img_size=img_size, pretrained_file=pretrained_file,
                            pretrained_cfg_overlay=dict(num_classes=n))
    # the size goes in explicitly: a model created with img_size=S still carries its pretrained_cfg's input size
    return model.to(device).eval(), resolve_model_data_config(model, img_size)


def visualize_pos(output, checkpoint=None, model_name=None, pretrained_file=None, img_size=None) -> np.ndarray:
    """Write the gh x gw grid of cosine maps to ``output`` and the (P, P) matrix beside it (.npy); the grid is the
    model's own (``patch_embed.grid_size``), so non-square and resampled grids plot as they are."""
    output = Path(output)
    ensure_writable_dir(output.parent)
    model, _ = load_explained_model(checkpoint, model_name, pretrained_file=pretrained_file, img_size=img_size)
    sim = pos_embed_cosine(model).cpu().numpy()
    grid = patch_grid(model)
    plotting.plot_pos_similarity(sim, grid, output,
                                 title=f"cosine similarity of position embeddings ({grid[0]}x{grid[1]} patches)")
    atomic_save_npy(output.with_suffix(".npy"), sim)
    return sim


def view_and_input(img, data_config):
    """The eval-transformed image in [0, 1] (C, H, W) and the normalised model input built from it."""
    view = build_view_transform(data_config)(img)
    mean = torch.tensor(data_config["mean"])[:, None, None]
    std = torch.tensor(data_config["std"])[:, None, None]
    return view, (view - mean) / std


METHODS = ("attention", "rollout", "relevance", "attribution", "rise", "occlusion")


def method_maps(model, x: torch.Tensor, method: str, *, layer: int = -1, heads: bool = False, classes=None,
                masks: int = 1000, cells: int = 8, seed: int = 0, show_progress: bool = False) -> torch.Tensor:
    """Maps of a batch ``x`` (B, C, H, W) on the patch grid, (B, gh, gw) ((B, heads, gh, gw) for attention with
    ``heads``), all in one layout whatever the method:

    - ``attention``: block ``layer``'s CLS attention (the homework's map), ``rollout``: Abnar & Zuidema's rollout;
    - ``relevance``, ``attribution``, ``rise`` and ``occlusion`` explain the decision, the log-probability of
      ``classes`` (B,) (default: the predictions): Chefer et al.'s gradient-weighted relevance (``vitpet.relevance``)
      and their LRP-based transformer attribution (``vitpet.lrp``); RISE with the
      centred estimator (``masks`` random masks of ``cells`` x ``cells`` cells, mask seed ``seed``) and occlusion of
      one patch at a time (``explanations.perturbation``), both pooled from pixels onto the patch grid."""
    from .relevance import class_scores, predicted_classes, relevance
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    if heads and method != "attention":
        raise UserError(f"--heads is for attention maps; {method} has one map per image")
    if method in ("attention", "rollout"):
        return attention_maps(model, x, layer=layer, heads=heads, use_rollout=method == "rollout")
    classes = predicted_classes(model, x) if classes is None else torch.as_tensor(classes)
    if method == "relevance":
        return relevance(model, x, classes)
    if method == "attribution":
        from .lrp import transformer_attribution
        return transformer_attribution(model, x, classes)
    from explanations.perturbation import occlusion, rise, to_grid
    grid, out = patch_grid(model), []
    for image, cls in zip(x, classes.tolist()):
        score = class_scores(model, cls)
        if method == "rise":
            pixels = rise(score, image, masks=masks, cells=cells, seed=seed, show_progress=show_progress).maps
        else:
            pixels = occlusion(score, image, cell=int(model.patch_embed.patch_size[0]), show_progress=show_progress)
        out.append(to_grid(pixels, grid)[0].float())
    return torch.stack(out)


def visualize_attention(images, output_dir, checkpoint=None, model_name=None, layer=-1, heads=False,
                        use_rollout=False, device="cpu", pretrained_file=None, img_size=None, method="attention",
                        masks=1000, cells=8, seed=0, all_layers=False, html=False) -> list[Path]:
    """One PNG (+ raw map .npy, (gh, gw) or (heads, gh, gw)) per image; returns the PNG paths. The attention map is
    the CLS row, or for a model without a class token the mean patch row (``attention.query_to_patches``); the other
    ``method``s are those of ``method_maps``. ``all_layers`` (attention only) also saves <stem>.layers.npy, every
    block's per-head maps (layers, heads, gh, gw); ``html`` a <stem>.json describing the maps (``explorer_meta``)
    and the folder's index.html (``hw3io.explorer``)."""
    if use_rollout:
        if method not in ("attention", "rollout"):
            raise UserError(f"--rollout and --method {method} name two methods: give one")
        method = "rollout"
    if heads and method == "rollout":
        raise UserError("--heads and --rollout cannot be combined: rollout multiplies head-mean attention through "
                        "the layers, so it has no per-head maps (use --heads with --layer K instead)")
    if method not in METHODS:  # before any file is read; method_maps says the same for its other callers
        raise UserError(f"unknown --method {method!r}: one of {', '.join(METHODS)}")
    if heads and method != "attention":
        raise UserError(f"--heads is for attention maps; --method {method} has one map per image")
    if all_layers and method != "attention":
        raise UserError(f"--all-layers keeps every layer's attention maps; --method {method} has none")
    output_dir = ensure_writable_dir(output_dir)
    missing = [str(p) for p in images if not Path(p).is_file()]
    if missing:
        raise UserError(f"image(s) not found: {', '.join(missing)}")
    originals = [load_rgb(p) for p in images]  # every bad file fails here, before anything is written
    model, data_config = load_explained_model(checkpoint, model_name, device, pretrained_file, img_size)
    depth = len(model.blocks)
    if not -depth <= layer < depth:
        raise UserError(f"--layer {layer} out of range for a {depth}-layer model (0..{depth - 1} or -1..-{depth})")
    which = {"attention": f"{map_name(model)}, layer {layer % depth}", "rollout": f"{map_name(model)}, rollout",
             "relevance": "relevance (Chefer et al. 2021) of the predicted class",
             "attribution": "transformer attribution (Chefer et al. CVPR 2021, LRP) of the predicted class",
             "rise": f"RISE ({masks} masks, {cells}x{cells} cells, seed {seed}) of the predicted class",
             "occlusion": "occlusion (one patch at a time) of the predicted class"}[method]
    written = []
    for path, original in zip(progress(images, desc=method, unit="image", disable=method not in ("rise", "occlusion")),
                              originals):
        view, x = view_and_input(original, data_config)
        with outliers.recording_norms(model) as norms:  # the first pass of every method sees the image as it is
            maps = method_maps(model, x[None].to(device), method, layer=layer, heads=heads, masks=masks,
                               cells=cells, seed=seed)[0].cpu()
        first = norms[0] if norms else outliers.token_norms(model, x[None].to(device))
        flags = outliers.high_norm_patches(first)[0].reshape(patch_grid(model)).cpu().numpy()
        size = tuple(view.shape[-2:])
        view_np = view.permute(1, 2, 0).numpy()
        out = output_dir / f"{Path(path).stem}.png"
        title = f"{Path(path).name}: {which}" + ((", per head" if heads else ", head mean")
                                                 if method in ("attention", "rollout") else "")
        note = outliers.peak_note(maps.mean(0) if heads else maps, flags)
        title += f"\n{note}" if note else ""
        if heads:
            plotting.plot_head_maps(view_np, upsample(maps, size).numpy(), out, title, flags=flags)
        else:
            plotting.plot_attention(original, view_np, upsample(maps, size).numpy(), out, title, flags=flags,
                                    what=method)
        atomic_save_npy(out.with_suffix(".npy"), maps.numpy())
        if all_layers:
            with torch.no_grad():
                layers = all_layer_maps(model, x[None].to(device))[0].cpu()  # (layers, heads, gh, gw)
            atomic_save_npy(out.with_suffix(".layers.npy"), layers.numpy())
        if html:
            meta = explorer_meta(path, original.size, data_config, title.split("\n")[0], map_name(model), method,
                                 layer % depth if method == "attention" else None, heads, all_layers)
            atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
        written.append(out)
    if html:
        from hw3io.explorer import write_explorer
        written.append(write_explorer(output_dir, stems=[png.stem for png in written]))
    return written


def explorer_meta(path, size, data_config, caption, label, method, layer, heads, all_layers) -> dict:
    """What ``hw3io.explorer`` needs to show one image's maps: the source image, the one "token" (the query whose
    map it is), and ``region``, the rectangle of the original image (as displayed, of (W, H) = ``size``) that the
    model's view, and so the map grid, covers: the eval resize and crop inverted (``pointing.view_region``), where
    the PNG's overlay on the view puts the map."""
    from .pointing import view_region
    return {"image": str(Path(path).resolve()), "tokens": [label], "caption": caption, "method": method,
            "layer": layer, "region": list(view_region(data_config, size)), "axes": "khw" if heads else "hw",
            **({"layers_axes": "lkhw"} if all_layers else {})}
