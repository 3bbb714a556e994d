"""The report's own figures (the problems' figures come from vitpet.plotting and catr.visualize)."""
import matplotlib.pyplot as plt
import numpy as np

from hw3io import save_figure


def plot_runs(runs: list[dict], path) -> None:
    """Val accuracy and val loss per epoch, one line per run; log.csv counts epochs from 0, the figure from 1."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        log = run["log"]
        if log is None:
            continue
        a.plot(log["epoch"] + 1, log["val_acc"], "o-", ms=3, label=run["name"])
        b.plot(log["epoch"] + 1, log["val_loss"], "o-", ms=3, label=run["name"])
    a.set(xlabel="epoch (from 1)", ylabel="val accuracy", title="val accuracy", ylim=(0, 1))
    b.set(xlabel="epoch (from 1)", ylabel="cross-entropy", title="val loss")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_per_class(acc: np.ndarray, names: list[str], path) -> None:
    fig, ax = plt.subplots(figsize=(12, 3.6))
    x = np.arange(len(acc))
    ax.bar(x, np.nan_to_num(acc), color=["C3" if a < np.nanmean(acc) else "C0" for a in np.nan_to_num(acc)])
    ax.axhline(np.nanmean(acc), color="k", lw=0.8, ls="--", label=f"mean {np.nanmean(acc):.3f}")
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set(ylabel="val accuracy", ylim=(0, 1.05), title="per-class val accuracy (below the mean in red)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_pos_profile(profile, path) -> None:
    """Mean cosine vs patch distance, one line per relation (same row / same column / elsewhere)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for rel, style in (("same row", "o-"), ("same column", "s-"), ("elsewhere", "^-")):
        part = profile[profile["relation"] == rel]
        ax.plot(part["distance"], part["mean_cosine"], style, ms=4, label=rel)
    ax.set(xlabel="distance between patches (in patches, rounded)", ylabel="mean cosine similarity",
           title="position embeddings: mean cosine against distance")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_attention_rows(rows: list[dict], path) -> None:
    """One row per image: original | CLS attention map | overlay, titled with the prediction."""
    fig, axes = plt.subplots(len(rows), 3, figsize=(10, 3.3 * len(rows)), squeeze=False)
    for (a, b, c), r in zip(axes, rows):
        a.imshow(r["original"])
        a.set_title(f"{r['name']}", fontsize=9)
        im = b.imshow(r["heat"], cmap="jet")
        fig.colorbar(im, ax=b, fraction=0.046, pad=0.02)
        b.set_title("last-layer CLS attention (head mean)", fontsize=9)
        c.imshow(r["view"])
        over = c.imshow(r["heat"], cmap="jet", alpha=0.5)
        fig.colorbar(over, ax=c, fraction=0.046, pad=0.02)
        truth = f", true {r['true']}" if r.get("true") is not None else ""
        c.set_title(f"predicted {r['pred']} (p = {r['prob']:.2f}){truth}", fontsize=9)
        for ax in (a, b, c):
            ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)


def plot_token_maps(image: np.ndarray, heat: np.ndarray, tokens: list[str], caption: str, path, cols: int = 3):
    """The image, then one overlay per token with its own colour bar: ``heat`` (T, H, W) cross-attention weights
    upsampled to ``image`` (H, W, 3)."""
    n = len(tokens) + 1
    rows = -(-n // cols)
    height = 2.9 * rows + 0.5
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, height), squeeze=False,
                             gridspec_kw=dict(left=0.02, right=0.96, bottom=0.02, top=1 - 0.6 / height, hspace=0.25))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(image)
        if i == 0:
            ax.set_title("<start>", fontsize=10)
            continue
        im = ax.imshow(heat[i - 1], cmap="jet", alpha=0.5)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(tokens[i - 1], fontsize=10)
    fig.suptitle(caption, fontsize=12, y=1 - 0.15 / height)
    save_figure(fig, path)
