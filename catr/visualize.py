"""One PNG per caption: the image under <start>, then one cross-attention overlay per generated token."""
import math

import matplotlib.pyplot as plt
import numpy as np

from hw3io import save_figure


def plot_caption_attention(image: np.ndarray, heatmaps: np.ndarray, labels: list[str], caption: str, path,
                           cols: int = 5, dpi: int = 100) -> list[tuple[int, int, int, int]]:
    """``image`` (H, W, 3); ``heatmaps`` (T, H, W); ``labels`` one per map. Tiles: image, then the T overlays.

    Returns each tile's image area in the PNG's pixels, (left, top, right, bottom), so callers (and tests) can
    find what was drawn where."""
    n = len(labels) + 1
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, dpi=dpi)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(image)
        if i == 0:
            ax.set_title("<start>", fontsize=11)
        else:
            ax.imshow(heatmaps[i - 1], cmap="jet", alpha=0.5)
            ax.set_title(labels[i - 1], fontsize=11)
    fig.suptitle(caption, fontsize=13)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi, axes=list(axes.flat)[:n])
