"""Image folder -> <stem>.png (tiled per-token maps: cross-attention by default, or another ``catr.explain`` method),
<stem>.npy (raw maps), <stem>.txt (caption) and <stem>.json (caption, one token label per map, grid, source image,
how the maps were made); with ``all_layers`` also <stem>.layers.npy (every decoder layer's per-head attention), with
``html`` the folder's explorer, index.html (``hw3io.explorer``)."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hw3io import (UserError, atomic_save_npy, atomic_write_text, ensure_writable_dir, list_images, load_partial_rgb,
                   load_rgb, pick_device, progress, report, triage, upsample)
from .caption import create_model
from .decode import Decoded, beam_decode, cross_attention, greedy_decode_encoded, image_of
from .explain import PERTURBATION, ExplainOptions, explain_maps
from .preprocess import preprocess
from .tokenizer import load_tokenizer
from .visualize import plot_caption_attention


def tile_labels(tokenizer, ids, ended) -> list[str]:
    return [tokenizer.token(i) for i in ids] + (["<end>"] if ended else [])


@torch.no_grad()
def caption_batch(model, tokenizer, images, device, layer=-1, heads=False, beam=1, alpha=1.0, max_len=None,
                  explain: ExplainOptions | None = None, show_progress=False, all_layers=False) -> list[tuple]:
    """Caption PIL images: (resized image, Decoded, caption text) each, in order. Greedy decoding runs images of
    one preprocessed size as one batch (backbone, encoder and decoder steps); beam search runs one image at a time,
    its beams batched. The maps (``explain``, default attention) are then made image by image for the caption
    chosen, reusing its encoded image; ``all_layers`` adds every decoder layer's per-head attention
    (``Decoded.layers``)."""
    explain = explain or ExplainOptions()
    max_len = max_len or model.transformer.embeddings.position_embeddings.num_embeddings
    start, end = tokenizer.start_id, tokenizer.end_id
    prepared = [preprocess(img, model.config.max_dim) for img in images]
    by_size = {}
    for i, (_, x, _) in enumerate(prepared):
        by_size.setdefault(tuple(x.shape), []).append(i)
    results = [None] * len(images)
    for group in by_size.values():
        x = torch.cat([prepared[i][1] for i in group]).to(device)
        mask = torch.cat([prepared[i][2] for i in group]).to(device)
        if beam > 1:
            decoded = [beam_decode(model, x[j:j + 1], mask[j:j + 1], start, end, beam, max_len, alpha)
                       for j in range(len(group))]
        else:
            encoded = model.encode_image(x, mask)
            decoded = [(ids, ended, image_of(encoded, j))
                       for j, (ids, ended) in enumerate(greedy_decode_encoded(model, encoded, start, end, max_len))]
        for j, (i, (ids, ended, enc)) in enumerate(zip(group, decoded)):
            maps = explain_maps(explain.method, model, x[j:j + 1], mask[j:j + 1], ids, ended, start, end,
                                encoded=enc, layer=layer, heads=heads, masks=explain.masks, cells=explain.cells,
                                seed=explain.seed, show_progress=show_progress)
            layers = torch.stack([cross_attention(model, enc, start, ids, ended, k, heads=True).cpu()
                                  for k in range(len(model.transformer.decoder.layers))]) if all_layers else None
            results[i] = (prepared[i][0], Decoded(ids, ended, maps.cpu(), enc[3], layers), tokenizer.decode(ids))
    return results


def caption_one(model, tokenizer, img, device, layer=-1, heads=False, max_len=None, beam=1, alpha=1.0,
                explain: ExplainOptions | None = None):
    """Caption a PIL image. Returns (resized image, Decoded, caption text)."""
    return caption_batch(model, tokenizer, [img], device, layer, heads, beam, alpha, max_len, explain)[0]


def write_outputs(output_dir: Path, stem: str, small, out, text: str, labels: list[str], source=None, layer=-1,
                  how: dict | None = None) -> Path:
    """``how``: the method's entries for the JSON (``ExplainOptions.meta``; default: attention)."""
    maps = out.maps
    size = (small.height, small.width)
    heat = upsample(maps.mean(1) if maps.dim() == 4 else maps, size).numpy()
    png = output_dir / f"{stem}.png"
    plot_caption_attention(np.asarray(small), heat, labels, text.capitalize(), png)
    atomic_save_npy(output_dir / f"{stem}.npy", maps.numpy())
    atomic_write_text(output_dir / f"{stem}.txt", text + "\n")
    # What the report needs to redraw and read the tiles: one label per map, in order, and the source image.
    how = how or {"method": "attention"}
    meta = {"caption": text, "tokens": labels, "grid": list(out.grid), "size": [small.width, small.height],
            "layer": layer if how["method"] == "attention" else None,
            "image": str(Path(source).resolve()) if source else None, **how}
    if out.layers is not None:
        atomic_save_npy(output_dir / f"{stem}.layers.npy", out.layers.numpy())
        meta["layers_axes"] = "ltkhw"  # layer, token, head, grid rows, grid columns (hw3io.explorer reads it)
    atomic_write_text(output_dir / f"{stem}.json", json.dumps(meta, indent=1) + "\n")
    return png


BATCH = 16  # images loaded and captioned together (greedy decoding batches those of one size)


@dataclass
class CaptionedFolder:
    """What ``caption_folder`` did: ``written`` PNGs, ``unreadable`` (path, reason) files with nothing to decode (no
    output), ``partial``: truncated files captioned from the part that decodes."""
    written: list
    unreadable: list
    partial: list


def caption_folder(images, output_dir, *, checkpoint=None, version="v3", url=None, vocab=None, layer=-1, heads=False,
                   device="cpu", model=None, tokenizer=None, beam=1, alpha=1.0, explain: ExplainOptions | None = None,
                   all_layers=False, html=False) -> CaptionedFolder:
    """Caption every image of a folder that decodes; a truncated one from the part that decodes. Everything else
    that can fail on input is checked before anything is written (and before ``device``, when a name such as
    "auto", says it falls back to the CPU). ``explain`` (default: attention, the homework's maps) says which maps
    are drawn; methods other than attention take seconds to minutes per image and run one image at a time.
    ``all_layers`` also saves every decoder layer's per-head maps; ``html`` writes the folder's index.html."""
    explain = explain or ExplainOptions()
    explain.check()
    if heads and explain.method != "attention":
        raise UserError(f"--heads keeps per-head attention maps; --explain {explain.method} has none")
    if all_layers and explain.method != "attention":
        raise UserError(f"--all-layers keeps every layer's attention maps; --explain {explain.method} has none")
    paths = list_images(images)
    unreadable, partial = triage(paths)
    if len(unreadable) == len(paths):
        raise UserError(f"no image of {images} decodes: {'; '.join(r for _, r in unreadable[:3])}")
    paths = [p for p in paths if p not in dict(unreadable)]
    output_dir = ensure_writable_dir(output_dir)
    stems = [p.stem for p in paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise UserError(f"images share a name stem and would overwrite each other's PNG: {', '.join(dupes)}")
    tokenizer = tokenizer or load_tokenizer(vocab)
    model = model or create_model(version, checkpoint, url=url)
    if tokenizer.vocab_size != model.mlp.layers[-1].out_features:
        raise UserError(f"vocabulary has {tokenizer.vocab_size} tokens, the model {model.mlp.layers[-1].out_features}")
    n_layers = len(model.transformer.decoder.layers)
    if not -n_layers <= layer < n_layers:
        raise UserError(f"--layer {layer} out of range for {n_layers} decoder layers")
    if beam < 1:
        raise UserError(f"--beam must be at least 1, not {beam}")
    device = pick_device(device, say_cpu=True) if isinstance(device, str) else device
    model = model.to(device).eval()
    written = []
    per_call = BATCH if explain.method == "attention" else 1  # slow maps: the bar moves image by image
    with progress(total=len(paths), desc="caption", unit="img") as bar:
        for start in range(0, len(paths), per_call):
            chunk = paths[start:start + per_call]
            loaded = [load_partial_rgb(p) if p in partial else load_rgb(p) for p in chunk]
            captioned = caption_batch(model, tokenizer, loaded, device, layer, heads, beam, alpha,
                                      explain=explain, show_progress=explain.method in PERTURBATION,
                                      all_layers=all_layers)
            for path, (small, out, text) in zip(chunk, captioned):
                labels = tile_labels(tokenizer, out.ids, out.ended)
                written.append(write_outputs(output_dir, path.stem, small, out, text, labels, source=path,
                                             layer=layer, how=explain.meta((small.height, small.width))))
                report(bar, f"{path.name}: {text}")
                bar.update(1)
    if html:
        from hw3io.explorer import write_explorer
        write_explorer(output_dir, stems=[png.stem for png in written])  # not a leftover of an earlier run
    return CaptionedFolder(written, unreadable, partial)
