"""StyleGAN2's generator and discriminator, compact, from Karras et al. 2020 ("Analyzing and
Improving the Image Quality of StyleGAN") and the limited-data paper's small-set settings.

Generator: z (pixel-normalised, with a normalised class embedding concatenated when
conditional) -> mapping MLP (`mapping_layers`, learning rate x 0.1: StyleGAN2's 0.01 learns the
class path too slowly in runs of a few thousand steps) -> w; a learned 4x4 constant,
then per resolution up to the image size: bilinear x2 upsampling and two 3x3 modulated convolutions
(weights scaled per sample by an affine map of w, then demodulated), each followed by per-pixel
noise times a learned strength, a bias and leaky ReLU; a 1x1 toRGB (modulated, not demodulated)
at every resolution, summed through upsampling (the skip architecture). Training draws the noise
from the run's generator; sampling uses fixed noise buffers drawn at initialisation, so an image
is a function of its z alone.

Discriminator: 1x1 fromRGB, then residual blocks (two 3x3 convolutions, the second after 2x
average pooling, plus a pooled 1x1 skip, summed and scaled by 1/sqrt(2)) down to 4x4; minibatch
standard deviation (groups of up to 4), a 3x3 convolution, a dense layer and the score; when
conditional, plus the projection <embed(y), features> (Miyato & Koyama 2018).

Every weight uses the equalised learning rate (N(0, 1) at init, scaled by 1 / sqrt(fan_in) in
the forward pass). Channels: `width` at 4x4 to 16x16, halving per resolution above, at least 16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganaug import InputError

SLOPE, GAIN = 0.2, math.sqrt(2.0)  # leaky ReLU slope and its variance-preserving gain
MAPPING_LR = (
    0.1  # the mapping MLP's learning-rate multiplier (StyleGAN2: 0.01, for far longer runs)
)


def check_size(size: int) -> int:
    """Resolution doublings from 4x4 to `size`; InputError unless size is 2^k >= 8."""
    if size < 8 or size & (size - 1):
        raise InputError(
            f"stylegan2 image size {size} px: must be a power of two >= 8 (16, 32, 64, 128, 256); "
            "resize the data with `ganaug data --size 64`"
        )
    return int(math.log2(size)) - 2


def channels(width: int, res: int) -> int:
    """Feature maps at resolution `res`: width up to 16x16, then halving, at least 16."""
    return max(16, min(width, width * 16 // res))


class Dense(nn.Module):
    """A linear layer with the equalised learning rate (and a learning-rate multiplier)."""

    def __init__(self, n_in: int, n_out: int, bias_init: float = 0.0, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.bias = nn.Parameter(torch.full((n_out,), bias_init / lr_mul))
        self.scale, self.lr_mul = lr_mul / math.sqrt(n_in), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Conv(nn.Module):
    """A convolution with the equalised learning rate; optional 2x average pooling after it."""

    def __init__(self, n_in: int, n_out: int, kernel: int, bias: bool = True, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None
        self.scale, self.down = 1 / math.sqrt(n_in * kernel * kernel), down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return F.avg_pool2d(x, 2) if self.down else x


class ModConv(nn.Module):
    """A 3x3 (or 1x1) convolution whose weights each sample's style scales, then demodulates."""

    def __init__(self, n_in: int, n_out: int, kernel: int, w_dim: int, demod: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in, kernel, kernel))
        self.affine = Dense(w_dim, n_in, bias_init=1.0)
        self.scale, self.demod = 1 / math.sqrt(n_in * kernel * kernel), demod

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, c, h, wd = x.shape
        style = self.affine(w)  # (B, n_in)
        weight = (
            self.weight[None] * self.scale * style[:, None, :, None, None]
        )  # (B, out, in, k, k)
        if self.demod:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        out = F.conv2d(  # one grouped convolution: each sample with its own weights
            x.reshape(1, b * c, h, wd),
            weight.reshape(-1, c, *weight.shape[-2:]),
            padding=weight.shape[-1] // 2,
            groups=b,
        )
        return out.reshape(b, -1, h, wd)


class SynthesisLayer(nn.Module):
    def __init__(self, n_in: int, n_out: int, w_dim: int, res: int, init: torch.Generator):
        super().__init__()
        self.conv = ModConv(n_in, n_out, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.register_buffer("fixed_noise", torch.randn(1, 1, res, res, generator=init))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, rng: torch.Generator | None
    ) -> torch.Tensor:
        x = self.conv(x, w)
        if rng is None:  # sampling: the fixed noise of this layer
            noise = self.fixed_noise
        else:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], generator=rng, device=x.device)
        x = x + noise * self.noise_strength + self.bias[None, :, None, None]
        return F.leaky_relu(x, SLOPE) * GAIN


class Generator(nn.Module):
    """(B, z_dim) [+ labels (B,)] -> images (B, channels, size, size), about [-1, 1]."""

    def __init__(self, args: dict, init: torch.Generator) -> None:
        super().__init__()
        z_dim, w_dim, width = args["z_dim"], args["w_dim"], args["width"]
        classes = args["num_classes"] if args["mode"] == "conditional" else 0
        self.embed = Dense(classes, z_dim) if classes else None
        self.num_classes = classes
        mapping: list[nn.Module] = []
        n_in = z_dim * (2 if classes else 1)
        for _ in range(args["mapping_layers"]):
            mapping.append(Dense(n_in, w_dim, lr_mul=MAPPING_LR))
            n_in = w_dim
        self.mapping = nn.ModuleList(mapping)
        self.const = nn.Parameter(torch.empty(1, channels(width, 4), 4, 4))
        self.layers, self.to_rgb = nn.ModuleList(), nn.ModuleList()
        res, ch = 4, channels(width, 4)
        self.layers.append(SynthesisLayer(ch, ch, w_dim, 4, init))
        self.to_rgb.append(ModConv(ch, args["channels"], 1, w_dim, demod=False))
        for _ in range(check_size(args["size"])):
            res, out = res * 2, channels(width, res * 2)
            self.layers.append(SynthesisLayer(ch, out, w_dim, res, init))
            self.layers.append(SynthesisLayer(out, out, w_dim, res, init))
            self.to_rgb.append(ModConv(out, args["channels"], 1, w_dim, demod=False))
            ch = out
        self.rgb_bias = nn.Parameter(torch.zeros(len(self.to_rgb), args["channels"]))

    def map(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            y = self.embed(F.one_hot(labels, self.num_classes).float())
            x = torch.cat([x, y * torch.rsqrt(y.pow(2).mean(dim=1, keepdim=True) + 1e-8)], 1)
        for layer in self.mapping:
            x = F.leaky_relu(layer(x), SLOPE) * GAIN
        return x

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        rng: torch.Generator | None = None,
    ) -> torch.Tensor:
        w = self.map(z, labels)
        x = self.const.expand(len(z), -1, -1, -1)
        x = self.layers[0](x, w, rng)
        rgb = self.to_rgb[0](x, w) + self.rgb_bias[0][None, :, None, None]
        for k in range(1, len(self.to_rgb)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.layers[2 * k](self.layers[2 * k - 1](x, w, rng), w, rng)
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            rgb = rgb + self.to_rgb[k](x, w) + self.rgb_bias[k][None, :, None, None]
        return rgb


class DiscriminatorBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = Conv(n_in, n_in, 3), Conv(n_in, n_out, 3, down=True)
        self.skip = Conv(n_in, n_out, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), SLOPE) * GAIN
        y = F.leaky_relu(self.conv2(y), SLOPE) * GAIN
        return (y + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """images (B, channels, size, size) [+ labels (B,)] -> scores (B,); higher = more real."""

    def __init__(self, args: dict) -> None:
        super().__init__()
        width, size = args["width"], args["size"]
        check_size(size)
        self.from_rgb = Conv(args["channels"], channels(width, size), 1)
        blocks, res = [], size
        while res > 4:
            blocks.append(DiscriminatorBlock(channels(width, res), channels(width, res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        ch = channels(width, 4)
        self.conv = Conv(ch + 1, ch, 3)
        self.dense = Dense(ch * 16, ch)
        self.out = Dense(ch, 1)
        classes = args["num_classes"] if args["mode"] == "conditional" else 0
        self.embed = Dense(classes, ch) if classes else None
        self.num_classes = classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = F.leaky_relu(self.from_rgb(x), SLOPE) * GAIN
        x = minibatch_std(self.blocks(x))
        x = F.leaky_relu(self.conv(x), SLOPE) * GAIN
        h = F.leaky_relu(self.dense(x.flatten(1)), SLOPE) * GAIN  # (B, ch)
        score = self.out(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            y = self.embed(F.one_hot(labels, self.num_classes).float())
            score = score + (y * h).sum(dim=1) / math.sqrt(h.shape[1])
        return score


def minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one feature map: the std over groups of samples, averaged (Karras et al. 2018)."""
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = x.reshape(g, -1, c, h, w)
    y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (B / g,)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


def init_nets(*nets: nn.Module, generator: torch.Generator) -> None:
    """N(0, 1) weights from `generator` (the equalised learning rate scales them at run time)."""
    for net in nets:
        for name, p in net.named_parameters():
            if name.endswith("weight") or name == "const":
                with torch.no_grad():
                    p.normal_(0.0, 1.0, generator=generator)
