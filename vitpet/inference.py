"""Image folder -> ``filename,label`` CSV, with a checkpoint as the only model input."""
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from hw3io import (UserError, atomic_path, default_workers, ensure_writable_dir, list_images, load_partial_rgb,
                   pick_device, progress, triage)
from .data import ImageFolderDataset, build_transforms, collate_skip, has_labels, parse_label
from .model import load_checkpoint
from .precision import PRECISIONS, int8_device, speed_notice, with_precision


@torch.no_grad()
def predict_folder(model, data_config: dict, image_dir, *, batch_size=32, workers=None, device="cpu",
                   show_progress=True):
    """Predict every image of ``image_dir``. Returns (DataFrame[filename, label], unreadable [(path, reason)],
    partial [path]).

    Unreadable files never abort mid-run: they are collected so that the caller can list all of them at once. A
    truncated file is predicted from the part that decodes (``partial``); only files with nothing to decode are
    left out.
    """
    if workers is None:
        workers = default_workers()
    transform = build_transforms(data_config, is_training=False)
    ds = ImageFolderDataset(image_dir, transform, labelled=False, skip_unreadable=True)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate_skip,
                        pin_memory=torch.device(device).type == "cuda")
    names, labels, bad = [], [], []
    for x, _, idx, bad_idx in progress(loader, desc="predict", disable=not show_progress, unit="batch"):
        bad += [ds.paths[i] for i in bad_idx]
        if x is None:
            continue
        pred = model(x.to(device, non_blocking=True)).argmax(1).cpu()
        names += [ds.paths[i].name for i in idx.tolist()]
        labels += pred.tolist()
    unreadable, partial = triage(bad)  # decodes only the bad files again, for the reasons
    for path in partial:
        names.append(path.name)
        labels.append(int(model(transform(load_partial_rgb(path))[None].to(device)).argmax(1).item()))
    df = pd.DataFrame({"filename": names, "label": labels}).sort_values("filename", kind="stable")
    return df.reset_index(drop=True), unreadable, partial


def write_predictions(df: pd.DataFrame, path) -> None:
    """``filename,label`` with csv quoting, written atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


def accuracy(df: pd.DataFrame) -> float:
    targets = [parse_label(n) for n in df["filename"]]
    return float((df["label"].to_numpy() == targets).mean())


def run_inference(checkpoint, images, output, *, batch_size=32, workers=None, device="auto", evaluate=None,
                  precision="fp32") -> dict:
    """The p1_inference.py pipeline; ``evaluate=None`` reports accuracy whenever all names carry labels.
    ``precision``: fp32 (graded), bf16 or int8 (vitpet.precision); the checkpoint stays as it is. The CSV holds
    every image that decodes; ``skipped`` lists those that do not (the caller says so and fails), ``partial`` the
    truncated ones predicted from what decodes."""
    output = Path(output)
    if output.is_dir():
        raise UserError(f"output path is a folder, expected a .csv file: {output}")
    ensure_writable_dir(output.parent)  # fail before the long part, not after
    if precision not in PRECISIONS:
        raise UserError(f"unknown --precision {precision!r}: one of {', '.join(PRECISIONS)}")
    model, config = load_checkpoint(checkpoint)  # on the CPU first: every input error before any note
    paths = list_images(images)
    labelled = has_labels(paths)
    if evaluate and not labelled:
        raise UserError("--eval needs every file name to start with its label (e.g. 26_5064.jpg)")
    if labelled:
        top = max(parse_label(p) for p in paths)
        if top >= config["num_classes"]:
            raise UserError(f"checkpoint has {config['num_classes']} classes but the folder has label {top}")
    if precision == "int8":
        device, note = int8_device(device, torch.cuda.is_available())
        if note:
            print(note, file=sys.stderr)
    dev = pick_device(device, say_cpu=precision != "int8")
    note = speed_notice(precision, dev)
    if note:
        print(note, file=sys.stderr)
    model = with_precision(model.to(dev), precision, dev)
    df, bad, partial = predict_folder(model, config["data_config"], images, batch_size=batch_size,
                                      workers=workers, device=dev)
    write_predictions(df, output)  # every image that decodes, even when some do not: a grader gets a score
    result = {"count": len(df), "skipped": [str(p) for p, _ in bad], "reasons": [r for _, r in bad],
              "partial": [str(p) for p in partial], "output": str(output)}
    if labelled and evaluate is not False:
        result["accuracy"] = accuracy(df)
    return result
