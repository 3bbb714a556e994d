"""Figures only: no model code here. Every function writes one PNG atomically and closes its figure."""
import matplotlib.pyplot as plt
import numpy as np

from hw3io import save_figure


def plot_curves(history: list[dict], path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(epochs, [h["val_loss"] for h in history], "o-", label="val")
    a.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    a.legend()
    b.plot(epochs, [h["val_acc"] for h in history], "o-", color="C2")
    b.set(xlabel="epoch", ylabel="accuracy", title="val accuracy", ylim=(0, 1))
    b.grid(alpha=0.3)
    save_figure(fig, path)


def confusion_matrix(targets, preds, num_classes: int) -> np.ndarray:
    """counts[t, p] = images of class t predicted as p."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(targets), np.asarray(preds)), 1)
    return m


def plot_confusion(targets, preds, num_classes: int, path, title="confusion matrix") -> np.ndarray:
    m = confusion_matrix(targets, preds, num_classes)
    fig, ax = plt.subplots(figsize=(9, 8))
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, ticks, fontsize=6, rotation=90)
    ax.set_yticks(ticks, ticks, fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    save_figure(fig, path)
    return m


def pos_mosaic(sim: np.ndarray, grid: tuple[int, int], gap: int = 1) -> np.ndarray:
    """(P, P) similarities -> one image of gh x gw small maps; small map (r, c) is row r*gw+c of ``sim``
    reshaped to the grid. Gaps between maps are NaN (drawn blank)."""
    gh, gw = grid
    out = np.full((gh * (gh + gap) - gap, gw * (gw + gap) - gap), np.nan)
    for r in range(gh):
        for c in range(gw):
            y, x = r * (gh + gap), c * (gw + gap)
            out[y:y + gh, x:x + gw] = sim[r * gw + c].reshape(gh, gw)
    return out


def plot_pos_similarity(sim: np.ndarray, grid: tuple[int, int], path, title="position embedding similarity"):
    gh, gw = grid
    mosaic = pos_mosaic(sim, grid)
    fig, ax = plt.subplots(figsize=(9, 8.2))
    im = ax.imshow(mosaic, cmap="viridis", vmin=float(np.nanmin(sim)), vmax=1.0, interpolation="nearest")
    ax.set_xticks([c * (gw + 1) + (gw - 1) / 2 for c in range(gw)], [str(c + 1) for c in range(gw)], fontsize=7)
    ax.set_yticks([r * (gh + 1) + (gh - 1) / 2 for r in range(gh)], [str(r + 1) for r in range(gh)], fontsize=7)
    ax.set(xlabel="input patch column", ylabel="input patch row", title=title)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="cosine similarity")
    save_figure(fig, path, dpi=150)


def _panel(ax, img, title):
    ax.imshow(img)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def plot_attention(original, view: np.ndarray, heatmap: np.ndarray, path, title="", flags=None, what="attention"):
    """original | the map (``what``) | overlay on the image as the model saw it (``view``, H x W x 3 in [0, 1]),
    with the high-norm patches (``flags``, (gh, gw) bool, ``vitpet.outliers``) outlined. Returns the three panels'
    pixel boxes in the PNG."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    _panel(axes[0], original, "original")
    im = axes[1].imshow(heatmap, cmap="jet")
    axes[1].set_title(what, fontsize=9)
    axes[1].axis("off")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    _panel(axes[2], view, "overlay (model input)" + (", high-norm patches outlined" if flags is not None
                                                     and np.any(flags) else ""))
    axes[2].imshow(heatmap, cmap="jet", alpha=0.5)
    if flags is not None:
        mark_patches(axes[2], flags, view.shape[:2])
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, axes=axes)


def plot_head_maps(view: np.ndarray, heatmaps: np.ndarray, path, title="", flags=None):
    """One overlay per head, then their mean (last). ``heatmaps``: (heads, H, W); ``flags`` as in
    ``plot_attention``."""
    n = len(heatmaps) + 1
    cols = min(n, 7)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    maps = list(heatmaps) + [heatmaps.mean(0)]
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(view)
            ax.imshow(maps[i], cmap="jet", alpha=0.5)
            if flags is not None:
                mark_patches(ax, flags, view.shape[:2])
            ax.set_title("mean" if i == n - 1 else f"head {i}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def mark_patches(ax, flags: np.ndarray, view_size: tuple[int, int], color="white", linewidth=0.8) -> int:
    """Outline the flagged patches (``flags``: (gh, gw) bool) on an axis showing an H x W image (``view_size``),
    e.g. the high-norm patches of ``vitpet.outliers``. Returns how many rectangles were drawn."""
    from matplotlib.patches import Rectangle
    flags = np.asarray(flags, dtype=bool)
    (gh, gw), (H, W) = flags.shape, view_size
    ph, pw = H / gh, W / gw
    for r, c in zip(*np.nonzero(flags)):
        # imshow puts pixel centres on integers, so pixel edges (and patch edges) sit at -0.5
        ax.add_patch(Rectangle((c * pw - 0.5, r * ph - 0.5), pw, ph, fill=False, edgecolor=color,
                               linewidth=linewidth))
    return int(flags.sum())
