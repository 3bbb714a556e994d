"""One PNG per caption: the image under <start>, then one cross-attention overlay per generated token."""
import math

import matplotlib.pyplot as plt
import numpy as np

from hw3io import save_figure

TILE_W, TILE_H, TITLE_H = 3.2, 3.0, 0.45  # inches per tile, and the caption line above them


def plot_caption_attention(image: np.ndarray, heatmaps: np.ndarray, labels: list[str], caption: str, path,
                           cols: int = 5, dpi: int = 100) -> list[tuple[int, int, int, int]]:
    """``image`` (H, W, 3); ``heatmaps`` (T, H, W); ``labels`` one per map. Tiles: image, then the T overlays.

    Returns each tile's image area in the PNG's pixels, (left, top, right, bottom), so callers (and tests) can
    find what was drawn where. The grid is laid out by hand and words are plain texts, not axes titles: with
    ``tight_layout`` and titles, matplotlib measured every tile's text twice and drawing took about a second."""
    n = len(labels) + 1
    rows = math.ceil(n / cols)
    height = TILE_H * rows + TITLE_H
    fig, axes = plt.subplots(rows, cols, figsize=(TILE_W * cols, height), squeeze=False, dpi=dpi,
                             gridspec_kw=dict(left=0.01, right=0.99, bottom=0.01, top=1 - TITLE_H / height,
                                              wspace=0.05, hspace=0.12))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(image)
        if i > 0:
            ax.imshow(heatmaps[i - 1], cmap="jet", alpha=0.5)
        ax.text(0.5, 1.01, "<start>" if i == 0 else labels[i - 1], transform=ax.transAxes, ha="center",
                va="bottom", fontsize=11)
    fig.text(0.5, 1 - 0.08 / height, caption, ha="center", va="top", fontsize=13)
    return save_figure(fig, path, dpi=dpi, axes=list(axes.flat)[:n])
