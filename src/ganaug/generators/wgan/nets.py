"""Generator and critic: the paper's DCGAN-shaped Wasserstein GAN (PAPER.md, "GAN").

Generator: z (z_dim) -> fully connected -> (width, base, base) -> four transposed 5x5 convolutions
with stride 2, channels halving (width -> width/2 -> width/4 -> width/8 -> C), tanh. Critic: four
strided 5x5 convolutions (C -> width/8 -> width/4 -> width/2 -> width, no pooling) and a fully
connected layer to one score. The paper's numbers are width 1024, z_dim 100, 64x64x3 output.

Sizes: the four stride-2 stages are kept for every image size, so the base side is size / 16
(64 px -> the paper's 4x4 base, 32 px -> 2x2, 16 px -> 1x1); sizes must be multiples of 16.

Additions (settings, off in the paper profile): a class-conditional variant (a class embedding is
concatenated to z; the critic adds a projection term <embed(y), sum-pooled features>, Miyato &
Koyama 2018), and batch norm in the critic only for the clipped WGAN (a gradient penalty is
defined per sample, which batch norm would break). Weights start at N(0, 0.02) (DCGAN), drawn from
an explicit generator so building the nets never touches the global RNG.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganaug import InputError

KERNEL = 5  # the paper's 5x5 kernels
STAGES = 4  # stride-2 (transposed) convolutions in each net


def base_side(size: int) -> int:
    """Side of the generator's first feature map / the critic's last one: size / 2**STAGES."""
    if size < 2**STAGES or size % 2**STAGES:
        raise InputError(
            f"GAN image size {size} px: must be a multiple of {2**STAGES} (16, 32, 64, 128, ...); "
            "resize the data with `ganaug data --size 64`"
        )
    return size // 2**STAGES


class Generator(nn.Module):
    """(B, z_dim) [+ labels (B,)] -> images (B, channels, size, size) in [-1, 1]."""

    def __init__(
        self, z_dim: int, width: int, size: int, channels: int, num_classes: int = 0
    ) -> None:
        super().__init__()
        self.base = base_side(size)
        self.width = width
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        in_dim = z_dim * (2 if num_classes else 1)
        self.fc = nn.Linear(in_dim, width * self.base**2)
        self.fc_norm = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        ch = width
        for stage in range(STAGES):
            last = stage == STAGES - 1
            out = channels if last else ch // 2
            layers.append(
                nn.ConvTranspose2d(ch, out, KERNEL, stride=2, padding=2, output_padding=1)
            )
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.fc(z).view(len(z), self.width, self.base, self.base)  # (B, width, base, base)
        return self.convs(torch.relu(self.fc_norm(x)))  # (B, C, size, size)


class Critic(nn.Module):
    """images (B, channels, size, size) [+ labels (B,)] -> scores (B,); higher = more real."""

    def __init__(
        self,
        width: int,
        size: int,
        channels: int,
        num_classes: int = 0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        base = base_side(size)
        layers: list[nn.Module] = []
        ch = channels
        for stage in range(STAGES):
            out = width // 2 ** (STAGES - 1 - stage)  # width/8, width/4, width/2, width
            layers.append(nn.Conv2d(ch, out, KERNEL, stride=2, padding=2))
            if batch_norm and stage > 0:  # DCGAN: no norm on the first layer
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2))
            ch = out
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(width * base**2, 1)
        self.embed = nn.Embedding(num_classes, width) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.convs(x)  # (B, width, base, base)
        score = self.fc(h.flatten(1)).squeeze(1)  # (B,)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional critic needs labels")
            score = score + (self.embed(labels) * h.sum(dim=(2, 3))).sum(dim=1)  # projection
        return score


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """DCGAN initialisation from an explicit generator: N(0, 0.02) weights, BN N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)


def build_pair(model_args: dict[str, Any], generator: torch.Generator) -> tuple[Generator, Critic]:
    """One generator and critic from checkpoint-style `model_args` (see WganFamily.model_args)."""
    classes = model_args["num_classes"] if model_args["mode"] == "conditional" else 0
    size, channels, width = model_args["size"], model_args["channels"], model_args["width"]
    with torch.random.fork_rng(devices=[]):  # torch's default init draws from the global RNG
        gen = Generator(model_args["z_dim"], width, size, channels, classes)
        critic = Critic(width, size, channels, classes, model_args["critic_batch_norm"])
    init_weights(gen, generator)
    init_weights(critic, generator)
    return gen, critic


def sample_z(n: int, z_dim: int, dist: str, generator: torch.Generator) -> torch.Tensor:
    """Latents (n, z_dim): uniform in [-1, 1] or standard normal, on the generator's device."""
    device = generator.device
    if dist == "uniform":
        return torch.rand(n, z_dim, generator=generator, device=device) * 2 - 1
    return torch.randn(n, z_dim, generator=generator, device=device)
