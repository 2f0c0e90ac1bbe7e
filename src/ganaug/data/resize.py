"""The paper's preprocessing: bicubic resize (to 64x64 in the paper) and channel conversion.

Deviation from the paper: offline, the 64 px images are made from MedMNIST's 28 px file by bicubic
upsampling (the paper resized the full-size fundus photographs).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize (PIL, the paper's interpolation) of uint8 (N, H, W, C) to (N, size, size, C).

    A per-image loop is fine here: it runs once per data set, never inside training.
    """
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(images[i, :, :, 0] if c == 1 else images[i])
        res = np.asarray(img.resize((size, size), Image.Resampling.BICUBIC))
        out[i] = res[..., None] if c == 1 else res
    return out


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """0 keeps; 3 repeats a gray channel; 1 uses ITU-R 601-2 luma as PIL's convert('L')."""
    c = images.shape[-1]
    if channels in (0, c):
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    weights = np.array([299, 587, 114], dtype=np.int64)
    luma = (images.astype(np.int64) @ weights + 500) // 1000
    return luma.astype(np.uint8)[..., None]
