"""Figures only: no model code here. Every function writes one PNG atomically and closes its figure."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hw3io import atomic_path  # noqa: E402


def save_figure(fig, path, dpi=120) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_curves(history: list[dict], path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], "o-", label="train (smoothed labels)")
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
