"""Image folder -> <stem>.png (tiled per-token cross-attention), <stem>.npy (raw maps), <stem>.txt (caption) and
<stem>.json (caption, one token label per map, grid, source image)."""
import json
from pathlib import Path

import numpy as np

from hw3io import (UserError, atomic_save_npy, atomic_write_text, check_readable, ensure_writable_dir, list_images,
                   load_rgb, progress, report, upsample)
from .caption import create_model
from .decode import caption_image
from .preprocess import preprocess
from .tokenizer import load_tokenizer
from .visualize import plot_caption_attention


def tile_labels(tokenizer, ids, ended) -> list[str]:
    return [tokenizer.token(i) for i in ids] + (["<end>"] if ended else [])


def caption_one(model, tokenizer, img, device, layer=-1, heads=False, max_len=None):
    """Caption a PIL image. Returns (resized image, Decoded, caption text)."""
    small, x, mask = preprocess(img, model.config.max_dim)
    max_len = max_len or model.transformer.embeddings.position_embeddings.num_embeddings
    out = caption_image(model, x.to(device), mask.to(device), tokenizer.start_id, tokenizer.end_id, max_len,
                        layer=layer, heads=heads)
    return small, out, tokenizer.decode(out.ids)


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


def caption_folder(images, output_dir, *, checkpoint=None, version="v3", url=None, vocab=None, layer=-1, heads=False,
                   device="cpu", model=None, tokenizer=None) -> list[Path]:
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
    written = []
    bar = progress(paths, desc="caption", unit="img")
    for path in bar:
        small, out, text = caption_one(model, tokenizer, load_rgb(path), device, layer, heads)
        labels = tile_labels(tokenizer, out.ids, out.ended)
        written.append(write_outputs(output_dir, path.stem, small, out, text, labels, source=path, layer=layer))
        report(bar, f"{path.name}: {text}")
    return written
