"""`ImageSet`: images and labels per split, as every stage holds them in memory; its leakage guard
and the one-line-per-split summary the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ganaug import InputError

SPLITS = ("train", "val", "test")


@dataclass
class ImageSet:
    """Images and labels per split, with class names, provenance and per-image sidecars."""

    images: dict[str, np.ndarray]  # split -> uint8 (N, H, W, C)
    labels: dict[str, np.ndarray]  # split -> int64 (N,)
    class_names: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. "train_seeds"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s in self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        first = self.images[self.splits[0]]
        return tuple(first.shape[1:])  # type: ignore[return-value]

    def class_counts(self, split: str = "train") -> list[int]:
        return np.bincount(self.labels[split], minlength=self.num_classes).tolist()

    def source_splits(self, split: str = "train") -> list[str]:
        """Which source splits the images of `split` came from (for the leakage guard)."""
        recorded = self.meta.get("source_splits", {})
        return list(recorded.get(split, [split]))


def require_train_only(data: ImageSet, where: str, user: str) -> None:
    """Leakage guard: `user` (GAN training, selection, labeller) sees train-derived images only."""
    sources = data.source_splits("train")
    bad = [s for s in sources if s not in ("train", "synthetic")]
    if bad:
        raise InputError(
            f"{where}: its training images derive from the {'/'.join(bad)} split; {user} accepts "
            "train-split images only (no val/test leakage). Use real.npz or classic.npz"
        )


def summarize(data: ImageSet) -> str:
    """One line per split: count, shape, class counts (what the CLI prints)."""
    lines = []
    for split in data.splits:
        img = data.images[split]
        counts = "/".join(map(str, data.class_counts(split)))
        lines.append(
            f"{split}: {len(img)} images {'x'.join(map(str, img.shape[1:]))}, classes {counts}"
        )
    return "\n".join(lines)
