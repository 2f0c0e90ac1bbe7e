"""Classic augmentation, exactly the paper's recipe, batched on tensors.

For each train image the paper keeps the original and adds `n_vflip` copies flipped vertically
(p = 1), `n_hflip` copies flipped horizontally with p = 0.1 (so most of those copies are identical
to the original: the paper's numbers), and `n_color` copies whose brightness, contrast and
saturation factors are each drawn uniformly from [0.7, 0.9]. Total N (1 + n_vflip + n_hflip +
n_color): 1080 -> 4320 with one copy of each. No shearing or elastic deformation.

Colour jitter follows torchvision's definitions (brightness scales, contrast blends with the mean
gray level, saturation blends with the per-pixel gray level; clamp after each) in a fixed order
brightness -> contrast -> saturation; torchvision's ColorJitter shuffles that order per call.

`color_jitter` is the readable float reference (NCHW, out of place). `classic_augment` writes each
block straight into one preallocated uint8 (M, H, W, C) output and jitters through
`color_jitter_uint8`, which repeats the reference's float32 operations in place on cache-sized
chunks: its output is byte-identical to `(color_jitter(x / 255) * 255).round()`, and a seed
gives the same flips and factors as before (same `torch.rand` calls in the same order).
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
_CHUNK_VALUES = 1 << 20  # uint8 values per colour-jitter chunk: a 4 MB float buffer


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


def color_jitter_uint8(images: torch.Tensor, factors: torch.Tensor, out: torch.Tensor) -> None:
    """`color_jitter` of uint8 (N, H, W, C) images with factors (N, 3), written into uint8 `out`.

    Byte-identical to `(color_jitter(x.float() / 255) * 255).round()` on the NCHW view: the same
    float32 operations in the same order, the gray mean reduced over the same rows. It runs chunk
    by chunk through reused buffers of a few MB, so every pass stays in cache and no
    image-set-sized temporary is allocated (their first touch cost more than the arithmetic).
    """
    n, h, w, c = images.shape
    # chunks keep the passes in the CPU's cache; an accelerator takes the set in one go
    sizes = _chunk_sizes(n, h * w * c) if images.device.type == "cpu" else [n]
    planar_buf = torch.empty(sizes[0], c, h, w, dtype=torch.uint8, device=images.device)
    x_buf = torch.empty(planar_buf.shape, device=images.device)
    gray_buf = torch.empty(2, sizes[0], h, w, device=images.device)  # gray and scratch
    start = 0
    for size in sizes:
        chunk = slice(start, start + size)
        planar = planar_buf[:size]  # (B, C, H, W) uint8
        _nhwc_to_nchw(images[chunk], planar)
        x = x_buf[:size].copy_(planar).div_(255.0)  # (B, C, H, W) float in [0, 1]
        _color_jitter_(x, factors[chunk], gray_buf[0, :size], gray_buf[1, :size])
        _round_to_uint8(x.mul_(255.0), planar)
        _nchw_to_nhwc(planar, out[chunk])
        start += size


def _chunk_sizes(n: int, values_per_image: int) -> list[int]:
    """Split n images into near-equal chunks of about _CHUNK_VALUES values, largest first.

    Every chunk holds at least 2 images (unless n == 1): torch sums a single large row (one
    output) in two parallel passes, whose rounding differs from the row-by-row sum it runs for
    several rows, as the reference does for all N images at once.
    """
    per_chunk = max(2, _CHUNK_VALUES // max(1, values_per_image))
    parts = max(1, n // per_chunk)
    return [n // parts + (i < n % parts) for i in range(parts)]


def _color_jitter_(
    x: torch.Tensor, factors: torch.Tensor, gray_buf: torch.Tensor, tmp_buf: torch.Tensor
) -> None:
    """In-place `color_jitter` of float (B, C, H, W): the same float32 operations, hence bits.

    gray_buf, tmp_buf: (B, H, W) scratch. Each in-place op computes exactly what the matching
    out-of-place expression in `color_jitter` computes (IEEE ops, no fused multiply-add).
    """
    b, c, s = (factors[:, i].view(-1, 1, 1, 1) for i in range(3))
    x.mul_(b).clamp_(0, 1)
    mean = _gray_into(x, gray_buf, tmp_buf).mean(dim=(1, 2)).view(-1, 1, 1, 1)
    x.mul_(c).add_((1 - c) * mean).clamp_(0, 1)
    if x.shape[1] == 3:  # saturation is undefined for a single gray channel
        weighted_gray = _gray_into(x, gray_buf, tmp_buf).mul_((1 - s).view(-1, 1, 1))
        x.mul_(s).add_(weighted_gray.unsqueeze(1)).clamp_(0, 1)


def _gray_into(x: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """`gray` of float (B, C, H, W) as (B, H, W), written into `out` (tmp: same-shaped scratch)."""
    if x.shape[1] == 1:
        return x[:, 0]
    torch.mul(x[:, 0], _LUMA[0], out=out)
    out.add_(torch.mul(x[:, 1], _LUMA[1], out=tmp))  # (r * 0.299 + g * 0.587), as in `gray`
    return out.add_(torch.mul(x[:, 2], _LUMA[2], out=tmp))


def _round_to_uint8(x: torch.Tensor, out: torch.Tensor) -> None:
    """Round float (B, C, H, W) in [0, 255] into uint8 `out`, as `x.round().to(torch.uint8)`.

    On CPU numpy does the cast: torch casts float -> uint8 in a scalar loop, ~7x slower.
    """
    x.round_()
    if x.device.type == "cpu":
        np.copyto(out.numpy(), x.numpy(), casting="unsafe")  # exact: integral values in range
    else:
        out.copy_(x)


def _nhwc_to_nchw(src: torch.Tensor, dst: torch.Tensor) -> None:
    """Copy uint8 (B, H, W, C) into (B, C, H, W), a channel at a time (see `_nchw_to_nhwc`)."""
    if src.device.type == "cpu":
        src, dst = src.numpy(), dst.numpy()
    for ch in range(dst.shape[1]):
        dst[:, ch] = src[..., ch]


def _nchw_to_nhwc(src: torch.Tensor, dst: torch.Tensor) -> None:
    """Copy uint8 (B, C, H, W) into (B, H, W, C), a channel at a time.

    Per channel the copy is one long strided loop instead of torch's loops over C = 3 values;
    on CPU numpy runs those strided byte copies about twice as fast as torch.
    """
    if src.device.type == "cpu":
        src, dst = src.numpy(), dst.numpy()
    for ch in range(src.shape[1]):
        dst[..., ch] = src[:, ch]


def _empty_images(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Uninitialised uint8 images. On CPU allocated by numpy, whose allocator asks Linux for
    transparent huge pages: first touching a ~50 MB output is then several times cheaper."""
    if device.type == "cpu":
        return torch.from_numpy(np.empty(shape, dtype=np.uint8))
    return torch.empty(shape, dtype=torch.uint8, device=device)


def _copy_into(dst: torch.Tensor, src: torch.Tensor) -> None:
    """dst[...] = src, for the plain copies into the fresh output.

    On CPU numpy copies: the first write into freshly allocated (huge) pages measured up to 10x
    slower from torch's two copy threads than from numpy's one.
    """
    if dst.device.type == "cpu":
        np.copyto(dst.numpy(), src.numpy())
    else:
        dst.copy_(src)


def _vflip_into(images: torch.Tensor, out: torch.Tensor) -> None:
    """Vertical flip of uint8 (N, H, W, C) written into `out`, without an intermediate copy."""
    rows = torch.arange(images.shape[1] - 1, -1, -1, device=images.device)  # H - 1, ..., 0
    torch.index_select(images, 1, rows, out=out)


def _hflip_some_into(images: torch.Tensor, flip: torch.Tensor, out: torch.Tensor) -> None:
    """Copy uint8 (N, H, W, C) into `out`, mirrored left-right where bool (N,) `flip` is set."""
    _copy_into(out, images)
    # few rows (hflip_p is 0.1 in the paper); flipping them one by one is ~2x faster than
    # gathering them and flipping the batch
    for row in flip.nonzero().squeeze(1).tolist():
        out[row] = images[row].flip(1)  # (H, W, C): W is dim 1


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
    Every block is written straight into one preallocated (M, H, W, C) output.
    """
    n = images.shape[0]
    copies = 1 + cfg.n_vflip + cfg.n_hflip + cfg.n_color
    out = _empty_images((copies * n, *images.shape[1:]), images.device)
    blocks = iter(out.view(copies, *images.shape))  # (N, H, W, C) views, in output order
    _copy_into(next(blocks), images)
    ops = [torch.full((n,), OPS.index("original"), dtype=torch.int8)]
    factors = [torch.ones(n, 3)]
    for _ in range(cfg.n_vflip):
        _vflip_into(images, next(blocks))
        ops.append(torch.full((n,), OPS.index("vflip"), dtype=torch.int8))
        factors.append(torch.ones(n, 3))
    for _ in range(cfg.n_hflip):
        flip = torch.rand(n, generator=generator, device=generator.device) < cfg.hflip_p
        flip = flip.to(images.device)
        _hflip_some_into(images, flip, next(blocks))
        code = torch.where(flip, OPS.index("hflip"), OPS.index("hflip-none")).to(torch.int8)
        ops.append(code.cpu())
        factors.append(torch.ones(n, 3))
    for _ in range(cfg.n_color):
        f = torch.rand(n, 3, generator=generator, device=generator.device)
        f = (cfg.color_low + (cfg.color_high - cfg.color_low) * f).to(images.device)
        color_jitter_uint8(images, f, out=next(blocks))
        ops.append(torch.full((n,), OPS.index("color"), dtype=torch.int8))
        factors.append(f.float().cpu())
    return Augmented(
        images=out,
        labels=labels.repeat(copies),
        source_index=torch.arange(n).repeat(copies),
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
