"""The numbers behind the report: run records, per-class results, position-embedding structure, attention peaks."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from hw3io import UserError

RELATIONS = ("same row", "same column", "elsewhere")  # how two patches of a position-embedding pair lie


def load_run(run_dir) -> dict:
    """A p1_train.py output folder: its best checkpoint's config, log.csv, and run.json when the run finished."""
    from vitpet.model import read_checkpoint
    run_dir = Path(run_dir)
    ckpt = run_dir / "best.safetensors"
    if not ckpt.is_file():
        raise UserError(f"not a training run (no best.safetensors): {run_dir}")
    _, config = read_checkpoint(ckpt)
    log = pd.read_csv(run_dir / "log.csv") if (run_dir / "log.csv").is_file() else None
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    return {"name": run_dir.name, "dir": run_dir, "checkpoint": ckpt, "config": config, "log": log, "info": info}


def _fmt_seconds(s) -> str:
    if s is None:
        return "n/a"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def run_row(run: dict) -> dict:
    """One row of the settings table, read from the run's own records."""
    t = run["config"].get("train_config") or {}
    log = run["log"]
    if log is not None and len(log):
        best = log.loc[log["val_acc"].idxmax()]
        best_acc, best_epoch = f"{best['val_acc']:.4f}", int(best["epoch"])
    else:
        best_acc, best_epoch = f"{run['config'].get('val_acc', float('nan')):.4f}", run["config"].get("epoch")
    pretrained = "file" if t.get("pretrained_file") else ("yes" if t.get("pretrained", True) else "no")
    aug = (f"crop 0.5-1, flip, jitter {t.get('color_jitter', 0.1):g}, smoothing {t.get('label_smoothing', 0):g}"
           if t else "n/a")
    batch = t.get("batch_size", "?")
    if t.get("accum_steps", 1) != 1:
        batch = f"{batch} x {t['accum_steps']}"
    return {"run": run["name"], "model": run["config"]["model"], "pretrained": pretrained,
            "img size": run["config"]["img_size"], "optimizer": t.get("opt", "?"), "lr": f"{t.get('lr', 0):g}",
            "batch": batch, "epochs": t.get("epochs", "?"), "augmentation": aug, "best val acc": best_acc,
            "epoch of best (from 1)": best_epoch + 1 if isinstance(best_epoch, int) else best_epoch,
            "wall time": _fmt_seconds(run["info"].get("train_seconds"))}


# Recorded train_config keys that say where a run read and wrote, or how fast, not what it trained: never compared.
NOT_SETTINGS = ("data_dir", "train_dir", "val_dir", "output_dir", "resume", "workers", "save_every")
# The keys run_row's columns already show (model and img size come from the checkpoint itself).
IN_TABLE = ("model", "img_size", "pretrained", "pretrained_file", "opt", "lr", "batch_size", "accum_steps", "epochs",
            "color_jitter", "label_smoothing")


def setting_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else "none" if v is None else str(v)


def other_differences(runs: list[dict]) -> list[tuple[str, list[str]]]:
    """(key, value per run) for every recorded training setting outside the table's columns (weight decay,
    momentum, drop-path, layer decay, warmup, clipping, seed, ...) in which the runs differ; "n/a" where a run did
    not record the key."""
    configs = [r["config"].get("train_config") or {} for r in runs]
    keys = sorted({k for c in configs for k in c} - set(NOT_SETTINGS) - set(IN_TABLE))
    values = [(k, [setting_value(c[k]) if k in c else "n/a" for c in configs]) for k in keys]
    return [(k, v) for k, v in values if len(set(v)) > 1]


def per_class_accuracy(targets, preds, num_classes: int) -> np.ndarray:
    targets, preds = np.asarray(targets), np.asarray(preds)
    acc = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = targets == c
        if mask.any():
            acc[c] = (preds[mask] == c).mean()
    return acc


def most_confused(targets, preds, k: int = 5) -> list[tuple[int, int, int]]:
    """(true, predicted, count) for the ``k`` most frequent mistakes, most first (ties by class numbers)."""
    pairs = pd.Series([(int(t), int(p)) for t, p in zip(targets, preds) if t != p]).value_counts()
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(t, p, int(n)) for (t, p), n in ranked[:k]]


def pos_distance_profile(sim: np.ndarray, grid: tuple[int, int]) -> pd.DataFrame:
    """Mean cosine similarity of patch position embeddings as a function of the patches' distance (in patches),
    split by relation: same row, same column, elsewhere. Columns: relation, distance, mean_cosine, pairs."""
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    dr, dc = np.abs(rows[:, None] - rows[None]), np.abs(cols[:, None] - cols[None])
    dist = np.sqrt(dr ** 2 + dc ** 2)
    off = ~np.eye(gh * gw, dtype=bool)
    relation = np.where(dr == 0, RELATIONS[0], np.where(dc == 0, RELATIONS[1], RELATIONS[2]))
    df = pd.DataFrame({"relation": relation[off], "distance": np.round(dist[off]).astype(int),
                       "cosine": sim[off]})
    out = df.groupby(["relation", "distance"], sort=True)["cosine"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "mean_cosine", "size": "pairs"})


def _curve(profile: pd.DataFrame, relation: str):
    """One relation's distances and mean cosines, the cosines rounded as the report's table prints them, so every
    word said of the curve holds for the numbers a reader sees."""
    part = profile[profile["relation"] == relation].sort_values("distance")
    return part["distance"].to_numpy(), np.round(part["mean_cosine"].to_numpy(), 3)


def _shape(v: np.ndarray) -> str:
    steps = np.diff(v)
    if (steps == 0).all():
        return "flat"
    if (steps <= 0).all():
        return "falls"
    if (steps >= 0).all():
        return "rises"
    return "not monotonic"


def profile_trend(profile: pd.DataFrame, relation: str) -> str:
    """How one relation's mean cosine moves with distance, in words that hold for the printed values: "falls" only
    when no step rises and the end is below the start, "rises" the other way round, "stays at" when every value is
    the same; anything else is "not monotonic", with its start, extremes and end."""
    d, v = _curve(profile, relation)
    if len(v) < 2:
        return "has one distance only" if len(v) else "has no pairs"
    shape = _shape(v)
    if shape == "flat":
        return f"stays at {v[0]:.3f} from distance {d[0]} to {d[-1]}"
    if shape in ("falls", "rises"):
        return f"{shape} with distance, from {v[0]:.3f} at {d[0]} to {v[-1]:.3f} at {d[-1]}"
    lo, hi, last = int(np.argmin(v)), int(np.argmax(v)), len(v) - 1

    def point(i):  # an end that is also an extreme says so, instead of being quoted twice
        return f"{v[i]:.3f} at {d[i]}" + (" (the lowest)" if i == lo else " (the highest)" if i == hi else "")
    inner = [f"{word} {v[i]:.3f} at {d[i]}" for word, i in (("lowest", lo), ("highest", hi)) if i not in (0, last)]
    return f"is not monotonic: {', '.join([point(0).replace(' at ', ' at distance ', 1), *inner, point(last)])}"


def profile_ends(profile: pd.DataFrame, relation: str) -> str:
    """The discussion prompt: the relation's mean cosine at its nearest and at its farthest distance."""
    d, v = _curve(profile, relation)
    if not len(v):
        return f"{relation}: no pairs"
    shape = _shape(v) if len(v) > 1 else "one distance only"
    return (f"{relation}: similarity {v[0]:.3f} at distance {d[0]} and {v[-1]:.3f} at the farthest distance, {d[-1]} "
            f"(the curve {'is ' if shape in ('flat', 'not monotonic', 'one distance only') else ''}{shape})")


def where(x: float, y: float) -> str:
    """A position in [0, 1]^2 in words (x to the right, y down)."""
    v = "top" if y < 1 / 3 else ("bottom" if y > 2 / 3 else "middle")
    h = "left" if x < 1 / 3 else ("right" if x > 2 / 3 else "centre")
    return "centre" if (v, h) == ("middle", "centre") else f"{v} {h}" if v != "middle" else f"middle {h}"


def token_peaks(maps: np.ndarray) -> list[dict]:
    """For maps (T, gh, gw) (or (T, heads, gh, gw), averaged): each token's peak cell and its place in the image.
    Positions are cell centres as fractions of the width/height (the figures stretch the grid over the image)."""
    if maps.ndim == 4:
        maps = maps.mean(1)
    _, gh, gw = maps.shape
    peaks = []
    for m in maps:
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        x, y = (c + 0.5) / gw, (r + 0.5) / gh
        peaks.append({"row": int(r), "col": int(c), "x": x, "y": y, "where": where(x, y),
                      "peak": float(m[r, c])})
    return peaks
