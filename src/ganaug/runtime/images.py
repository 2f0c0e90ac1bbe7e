"""PNG grids of uint8 images: sample grids, previews and contact sheets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganaug.runtime.files import atomic_path


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 images laid out as one (H', W', C) canvas on white.

    `images` is (rows, cols, H, W, C) for an explicit layout, or (N, H, W, C) laid out `ncol` wide.
    """
    images = np.asarray(images)
    if images.ndim == 4:
        n = len(images)
        ncol = ncol or int(np.ceil(np.sqrt(n)))
        nrow = int(np.ceil(n / ncol))
        padded = np.zeros((nrow * ncol, *images.shape[1:]), dtype=np.uint8)
        padded[:n] = images
        images = padded.reshape(nrow, ncol, *images.shape[1:])
    rows, cols, h, w, c = images.shape
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for r in range(rows):
        for k in range(cols):
            y, x = pad + r * (h + pad), pad + k * (w + pad)
            canvas[y : y + h, x : x + w] = images[r, k]
    return canvas


def save_image_grid(
    path: Path | str, images: np.ndarray, ncol: int | None = None, pad: int = 2
) -> np.ndarray:
    """Write uint8 images as one PNG grid (see image_grid), atomically; returns the canvas."""
    from PIL import Image

    canvas = image_grid(images, ncol, pad)
    pil = Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return canvas
