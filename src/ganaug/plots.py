"""The figures two stages draw: a confusion matrix and training curves, plus the PNG writer.

`classify` draws them for one run as it finishes (confusion.png, curves.png); `report` draws
them again for the paper's Figs. 2-5 (curves averaged over seeds). One copy here, so both stages
show the same picture of the same numbers. matplotlib's object API with the Agg canvas: no pyplot,
no global state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ganaug.runtime import atomic_path


def save_png(fig: Figure, path: Path) -> None:
    """Write `fig` to `path` as a 110-dpi PNG trimmed to its content, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_confusion(
    path: Path, confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str
) -> None:
    """Counts and row-normalised (per-class recall) confusion matrices side by side."""
    counts = np.asarray(confusion)  # (k, k): row = true class, column = predicted
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    fig = Figure(figsize=(4 + 1.3 * k, 1.5 + 0.6 * k), layout="constrained")
    panels = ((counts, "d", "counts"), (shares, ".2f", "row-normalised (recall)"))
    for ax, (values, fmt, subtitle) in zip(fig.subplots(1, 2), panels, strict=True):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=subtitle)
        ax.set_xticklabels(class_names, rotation=45, ha="right")
        ax.set_yticklabels(class_names)
        for i, j in np.ndindex(values.shape):
            dark = values[i, j] > values.max() / 2
            ax.text(
                j,
                i,
                format(values[i, j], fmt),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(title)
    save_png(fig, path)


def plot_curves(
    path: Path,
    columns: Mapping[str, Sequence[float]],
    title: str,
    *,
    x: str = "epoch",
    mark_best: bool = False,
) -> None:
    """Loss and accuracy against column `x` ("epoch" or "step"), train vs val vs test.

    `columns` holds `x` and {train,val,test}_{loss,acc}, one value per evaluation (curves.csv's
    columns). `mark_best` draws a dashed line at the first row of highest val_acc: one run's
    best-val epoch, which a mean over seeds does not have.
    """
    xs = list(columns[x])
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "acc"), strict=True):
        for split in ("train", "val", "test"):
            ax.plot(xs, columns[f"{split}_{metric}"], marker=".", label=split)
        if mark_best:
            best = xs[int(np.argmax(columns["val_acc"]))]  # first maximum, as in the fit
            ax.axvline(
                best, color="gray", linestyle="--", linewidth=1, label=f"best val ({int(best)})"
            )
        ax.set_xlabel("optimiser step" if x == "step" else x)
        ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    save_png(fig, path)
