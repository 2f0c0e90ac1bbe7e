"""Classic augmentation, exactly the paper's recipe, batched on tensors.

For each train image the paper keeps the original and adds `n_vflip` copies flipped vertically
(p = 1), `n_hflip` copies flipped horizontally with p = 0.1 (so most of those copies are identical
to the original: the paper's numbers), and `n_color` copies whose brightness, contrast and
saturation factors are each drawn uniformly from [0.7, 0.9]. Total N (1 + n_vflip + n_hflip +
n_color): 1080 -> 4320 with one copy of each. No shearing or elastic deformation.

Colour jitter follows torchvision's definitions (brightness scales, contrast blends with the mean
gray level, saturation blends with the per-pixel gray level; clamp after each) in a fixed order
brightness -> contrast -> saturation; torchvision's ColorJitter shuffles that order per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganaug.config import AugmentConfig, Config
from ganaug.data import ImageSet
from ganaug.runtime import make_generator, provenance, save_image_grid

OPS = ("original", "vflip", "hflip", "hflip-none", "color")  # codes stored in train_op
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class Augmented:
    images: torch.Tensor  # uint8 (M, H, W, C)
    labels: torch.Tensor  # int64 (M,)
    source_index: torch.Tensor  # int64 (M,): row of the source image each output came from
    op: torch.Tensor  # int8 (M,): index into OPS
    color_factors: torch.Tensor  # float32 (M, 3): brightness, contrast, saturation (1 = untouched)


def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma of float images (B, C, H, W) in [0, 1] -> (B, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


def color_jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation with per-image factors (B, 3) on float (B, C, H, W)."""
    b, c, s = (factors[:, i].view(-1, 1, 1, 1) for i in range(3))
    x = (x * b).clamp(0, 1)
    mean = gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (c * x + (1 - c) * mean).clamp(0, 1)
    if x.shape[1] == 3:  # saturation is undefined for a single gray channel
        x = (s * x + (1 - s) * gray(x)).clamp(0, 1)
    return x


def classic_augment(
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
) -> Augmented:
    """The paper's classic augmentation of uint8 (N, H, W, C) images; originals come first.

    Output blocks, each in source order: originals, n_vflip vertical flips, n_hflip
    horizontal-flip copies (flipped with probability hflip_p), n_color colour-jittered copies.
    All randomness comes from `generator`, so the same seed gives byte-identical output.
    """
    n = images.shape[0]
    index = torch.arange(n)
    x = images.permute(0, 3, 1, 2)  # (N, C, H, W)
    blocks = [x]
    ops = [torch.full((n,), OPS.index("original"), dtype=torch.int8)]
    factors = [torch.ones(n, 3)]
    for _ in range(cfg.n_vflip):
        blocks.append(x.flip(2))
        ops.append(torch.full((n,), OPS.index("vflip"), dtype=torch.int8))
        factors.append(torch.ones(n, 3))
    for _ in range(cfg.n_hflip):
        flip = torch.rand(n, generator=generator, device=generator.device) < cfg.hflip_p
        flip = flip.to(x.device)
        blocks.append(torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x))
        code = torch.where(flip, OPS.index("hflip"), OPS.index("hflip-none")).to(torch.int8)
        ops.append(code.cpu())
        factors.append(torch.ones(n, 3))
    for _ in range(cfg.n_color):
        f = torch.rand(n, 3, generator=generator, device=generator.device)
        f = (cfg.color_low + (cfg.color_high - cfg.color_low) * f).to(x.device)
        jittered = color_jitter(x.float() / 255.0, f)
        blocks.append((jittered * 255.0).round().to(torch.uint8))
        ops.append(torch.full((n,), OPS.index("color"), dtype=torch.int8))
        factors.append(f.float().cpu())
    copies = len(blocks)
    return Augmented(
        images=torch.cat(blocks).permute(0, 2, 3, 1).contiguous(),
        labels=labels.repeat(copies),
        source_index=index.repeat(copies),
        op=torch.cat(ops),
        color_factors=torch.cat(factors),
    )


def preview_rows(aug: Augmented, n_sources: int = 6) -> np.ndarray:
    """Images for a preview grid: one row per source image, its original then each copy."""
    rows = []
    for src in range(min(n_sources, int(aug.source_index.max()) + 1)):
        rows.append(aug.images[aug.source_index == src].numpy())
    return np.stack(rows)  # (rows, copies, H, W, C)


def augment_imageset(
    data: ImageSet, cfg: Config, source: str = "", preview: Path | None = None
) -> ImageSet:
    """Classic-augment the train split of `data` into a train-only ImageSet with provenance.

    Sidecars: `train_source_index` (row in the source train split), `train_op` (index into OPS),
    `train_color_factors` (brightness, contrast, saturation; 1 where no jitter was applied).
    """
    gen = make_generator(cfg.augment.seed)
    aug = classic_augment(
        torch.from_numpy(data.images["train"]),
        torch.from_numpy(data.labels["train"]),
        cfg.augment,
        gen,
    )
    if preview is not None and cfg.augment.preview:
        save_image_grid(preview, preview_rows(aug))
    meta = provenance(
        "augment",
        source=source,
        source_stage=data.meta.get("stage"),
        source_splits={"train": data.source_splits("train")},
        config_hash=cfg.section_hash("data", "augment"),
        seed=cfg.augment.seed,
        ops=list(OPS),
    )
    extras = {
        "train_source_index": aug.source_index.numpy().astype(np.int64),
        "train_op": aug.op.numpy().astype(np.int8),
        "train_color_factors": aug.color_factors.numpy().astype(np.float32),
    }
    return ImageSet(
        {"train": aug.images.numpy()}, {"train": aug.labels.numpy()}, data.class_names, meta, extras
    )
