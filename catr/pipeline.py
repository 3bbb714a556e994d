"""Image folder -> <stem>.png (tiled per-token cross-attention), <stem>.npy (raw maps), <stem>.txt (caption) and
<stem>.json (caption, one token label per map, grid, source image)."""
import json
from pathlib import Path

import numpy as np
import torch

from hw3io import (UserError, atomic_save_npy, atomic_write_text, check_readable, ensure_writable_dir, list_images,
                   load_rgb, progress, report, upsample)
from .caption import create_model
from .decode import Decoded, caption_image, cross_attention, greedy_decode_encoded, image_of
from .preprocess import preprocess
from .tokenizer import load_tokenizer
from .visualize import plot_caption_attention


def tile_labels(tokenizer, ids, ended) -> list[str]:
    return [tokenizer.token(i) for i in ids] + (["<end>"] if ended else [])


@torch.no_grad()
def caption_batch(model, tokenizer, images, device, layer=-1, heads=False, beam=1, alpha=1.0, max_len=None
                  ) -> list[tuple]:
    """Caption PIL images: (resized image, Decoded, caption text) each, in order. Greedy decoding runs images of
    one preprocessed size as one batch (backbone, encoder and decoder steps); beam search runs one image at a time,
    its beams batched."""
    max_len = max_len or model.transformer.embeddings.position_embeddings.num_embeddings
    prepared = [preprocess(img, model.config.max_dim) for img in images]
    by_size = {}
    for i, (_, x, _) in enumerate(prepared):
        by_size.setdefault(tuple(x.shape), []).append(i)
    results = [None] * len(images)
    for group in by_size.values():
        x = torch.cat([prepared[i][1] for i in group]).to(device)
        mask = torch.cat([prepared[i][2] for i in group]).to(device)
        if beam > 1:
            decoded = [caption_image(model, x[j:j + 1], mask[j:j + 1], tokenizer.start_id, tokenizer.end_id, max_len,
                                     layer, heads, beam, alpha) for j in range(len(group))]
        else:
            encoded = model.encode_image(x, mask)
            decoded = []
            for j, (ids, ended) in enumerate(greedy_decode_encoded(model, encoded, tokenizer.start_id,
                                                                   tokenizer.end_id, max_len)):
                maps = cross_attention(model, image_of(encoded, j), tokenizer.start_id, ids, ended, layer, heads)
                decoded.append(Decoded(ids, ended, maps.cpu(), encoded[3]))
        for i, out in zip(group, decoded):
            results[i] = (prepared[i][0], out, tokenizer.decode(out.ids))
    return results


def caption_one(model, tokenizer, img, device, layer=-1, heads=False, max_len=None, beam=1, alpha=1.0):
    """Caption a PIL image. Returns (resized image, Decoded, caption text)."""
    return caption_batch(model, tokenizer, [img], device, layer, heads, beam, alpha, max_len)[0]


def write_outputs(output_dir: Path, stem: str, small, out, text: str, labels: list[str], source=None, layer=-1
                  ) -> Path:
    maps = out.maps
    size = (small.height, small.width)
    heat = upsample(maps.mean(1) if maps.dim() == 4 else maps, size).numpy()
    png = output_dir / f"{stem}.png"
    plot_caption_attention(np.asarray(small), heat, labels, text.capitalize(), png)
    atomic_save_npy(output_dir / f"{stem}.npy", maps.numpy())
    atomic_write_text(output_dir / f"{stem}.txt", text + "\n")
    # What the report needs to redraw and read the tiles: one label per map, in order, and the source image.
    meta = {"caption": text, "tokens": labels, "grid": list(out.grid), "size": [small.width, small.height],
            "layer": layer, "image": str(Path(source).resolve()) if source else None}
    atomic_write_text(output_dir / f"{stem}.json", json.dumps(meta, indent=1) + "\n")
    return png


BATCH = 16  # images loaded and captioned together (greedy decoding batches those of one size)


def caption_folder(images, output_dir, *, checkpoint=None, version="v3", url=None, vocab=None, layer=-1, heads=False,
                   device="cpu", model=None, tokenizer=None, beam=1, alpha=1.0) -> list[Path]:
    """Caption every image of a folder. Everything that can fail on input is checked before anything is written."""
    paths = list_images(images)
    bad = check_readable(paths)
    if bad:
        raise UserError(f"{len(bad)} unreadable image(s), nothing written: {', '.join(p.name for p, _ in bad)}")
    output_dir = ensure_writable_dir(output_dir)
    stems = [p.stem for p in paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise UserError(f"images share a name stem and would overwrite each other's PNG: {', '.join(dupes)}")
    tokenizer = tokenizer or load_tokenizer(vocab)
    model = (model or create_model(version, checkpoint, url=url)).to(device).eval()
    if tokenizer.vocab_size != model.mlp.layers[-1].out_features:
        raise UserError(f"vocabulary has {tokenizer.vocab_size} tokens, the model {model.mlp.layers[-1].out_features}")
    n_layers = len(model.transformer.decoder.layers)
    if not -n_layers <= layer < n_layers:
        raise UserError(f"--layer {layer} out of range for {n_layers} decoder layers")
    if beam < 1:
        raise UserError(f"--beam must be at least 1, not {beam}")
    written = []
    with progress(total=len(paths), desc="caption", unit="img") as bar:
        for start in range(0, len(paths), BATCH):
            chunk = paths[start:start + BATCH]
            captioned = caption_batch(model, tokenizer, [load_rgb(p) for p in chunk], device, layer, heads, beam, alpha)
            for path, (small, out, text) in zip(chunk, captioned):
                labels = tile_labels(tokenizer, out.ids, out.ended)
                written.append(write_outputs(output_dir, path.stem, small, out, text, labels, source=path,
                                             layer=layer))
                report(bar, f"{path.name}: {text}")
                bar.update(1)
    return written
