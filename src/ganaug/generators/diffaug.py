"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for GAN training on little data.

Not in the paper (which trained on 4320 classically augmented images only); behind `gan.diffaug`.
The same policy is applied to every critic input, real and fake, in both the critic and the
generator step, so the critic never sees an un-augmented distribution it could memorise, while
the generator still learns the un-augmented one (each op is differentiable in the images).
Ops follow the reference implementation on images in [-1, 1]:

- color: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5), per image;
- translation: integer shifts up to 1/8 of the side, zero fill;
- cutout: one zeroed square of half the side at a random place.

All randomness comes from the explicit `generator` argument.
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """`"color, cutout"` -> ("color", "cutout"); config validation already checked the names."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def diff_augment(
    x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator
) -> torch.Tensor:
    """Apply the policy's ops in order to float images (B, C, H, W) in [-1, 1]."""
    for name in policy:
        x = _OPS[name](x, generator)
    return x


def _uniform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    x = x + (_uniform(x, generator) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, generator) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = x.device
    ty = torch.randint(-sy, sy + 1, (b, 1), generator=generator, device=dev)
    tx = torch.randint(-sx, sx + 1, (b, 1), generator=generator, device=dev)
    # output (i, j) reads padded input (i + sy - ty, j + sx - tx); the zero border fills the gap
    rows = torch.arange(h, device=dev).view(1, h) + sy - ty  # (B, H)
    cols = torch.arange(w, device=dev).view(1, w) + sx - tx  # (B, W)
    padded = torch.nn.functional.pad(x, (sx, sx, sy, sy))
    batch = torch.arange(b, device=dev).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = x.device
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=generator, device=dev)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=generator, device=dev)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (ys >= oy - ch // 2) & (ys < oy - ch // 2 + ch) & (xs >= ox - cw // 2)
    inside = inside & (xs < ox - cw // 2 + cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}
