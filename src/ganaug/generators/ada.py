"""Adaptive discriminator augmentation (ADA, Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"), for any family with a discriminator.

Every image the discriminator sees, real or fake, in its own step and in the generator's, goes
through the same differentiable pipeline; each transform is applied to each image with the
probability p:
- geometric, composed into one affine warp (reflection padding): horizontal flip, a quarter-turn
  rotation, an integer translation up to 1/8 of the side, isotropic scaling (lognormal, std
  0.2 ln 2), an arbitrary rotation, anisotropic scaling (std 0.2 ln 2) and a fractional
  translation (std 1/8 of the side);
- colour: brightness (+N(0, 0.2)), contrast (x lognormal, std 0.5 ln 2), and on RGB images a hue
  rotation (up to 0.1 turn, not ADA's half turn: a fundus image's colour carries its grade) and
  saturation (x lognormal, std ln 2).
The warp and the colour operations are kornia's (`kornia.geometry.transform.warp_affine`,
`kornia.enhance`); every random parameter comes from the run's explicit generator, so a resumed
run stays bitwise identical.

p follows the overfitting heuristic r_t = E[sign(D(real))] over the last `gan.ada_interval`
steps: above `gan.ada_target` (0.6) p rises, below it falls, by batch * interval /
(gan.ada_kimg * 1000) per adjustment, so p can cross [0, 1] in ada_kimg thousand images.
"""

from __future__ import annotations

import math

import torch

from ganaug.config import GanConfig


def _apply(p: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) bool: which images a transform applies to."""
    return torch.rand(n, generator=generator, device=generator.device) < p


def _normal(n: int, std: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, generator=generator, device=generator.device) * std


def augment(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """x (B, C, H, W) in [-1, 1] -> its augmented copy; the identity when p is 0."""
    if p <= 0:
        return x
    from kornia.enhance import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation
    from kornia.geometry.transform import warp_affine

    b, c, h, w = x.shape
    dev, g = x.device, generator
    eye = torch.eye(3, device=dev).repeat(b, 1, 1)

    def chain(m: torch.Tensor, on: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return torch.where(on[:, None, None], step @ m, m)

    def matrix(a, bb, cc, d, tx, ty) -> torch.Tensor:  # rows (a b tx; c d ty; 0 0 1), per image
        zero, one = torch.zeros_like(a), torch.ones_like(a)
        return torch.stack([a, bb, tx, cc, d, ty, zero, zero, one], 1).reshape(b, 3, 3)

    zeros, ones = torch.zeros(b, device=dev), torch.ones(b, device=dev)
    m = eye  # in centred pixel units: x' = M x
    flip = torch.where(torch.rand(b, generator=g, device=dev) < 0.5, -ones, ones)
    m = chain(m, _apply(p, b, g), matrix(flip, zeros, zeros, ones, zeros, zeros))
    turn = torch.randint(0, 4, (b,), generator=g, device=dev).float() * (math.pi / 2)
    m = chain(m, _apply(p, b, g), _rotation(turn, matrix))
    shift = (torch.rand(b, 2, generator=g, device=dev) * 2 - 1) * 0.125
    shift = torch.round(shift * torch.tensor([w, h], device=dev))
    m = chain(m, _apply(p, b, g), matrix(ones, zeros, zeros, ones, shift[:, 0], shift[:, 1]))
    scale = torch.exp2(_normal(b, 0.2, g))
    m = chain(m, _apply(p, b, g), matrix(scale, zeros, zeros, scale, zeros, zeros))
    angle = (torch.rand(b, generator=g, device=dev) * 2 - 1) * math.pi
    m = chain(m, _apply(p, b, g), _rotation(angle, matrix))
    aniso = torch.exp2(_normal(b, 0.2, g))
    m = chain(m, _apply(p, b, g), matrix(aniso, zeros, zeros, 1 / aniso, zeros, zeros))
    frac = _normal(b * 2, 0.125, g).reshape(b, 2) * torch.tensor([w, h], device=dev)
    m = chain(m, _apply(p, b, g), matrix(ones, zeros, zeros, ones, frac[:, 0], frac[:, 1]))
    centre = matrix(ones, zeros, zeros, ones, zeros + (w - 1) / 2, zeros + (h - 1) / 2)
    uncentre = matrix(ones, zeros, zeros, ones, zeros - (w - 1) / 2, zeros - (h - 1) / 2)
    m = centre @ m @ uncentre
    x = warp_affine(x, m[:, :2], (h, w), mode="bilinear", padding_mode="reflection")

    x01 = (x + 1) / 2  # kornia's colour operations work on [0, 1]
    bright = torch.where(_apply(p, b, g), _normal(b, 0.2, g), zeros)
    x01 = adjust_brightness(x01, bright, clip_output=False)
    contrast = torch.where(_apply(p, b, g), torch.exp2(_normal(b, 0.5, g)), ones)
    x01 = adjust_contrast(x01, contrast, clip_output=False)
    if c == 3:
        hue = torch.where(_apply(p, b, g), (torch.rand(b, generator=g, device=dev) * 2 - 1), zeros)
        x01 = adjust_hue(x01, hue * 0.2 * math.pi)
        sat = torch.where(_apply(p, b, g), torch.exp2(_normal(b, 1.0, g)), ones)
        x01 = adjust_saturation(x01, sat)
    return x01 * 2 - 1


def _rotation(angle: torch.Tensor, matrix) -> torch.Tensor:
    cos, sin = torch.cos(angle), torch.sin(angle)
    zeros = torch.zeros_like(angle)
    return matrix(cos, -sin, sin, cos, zeros, zeros)


class AdaState:
    """p and the r_t tally; `state()` / `load()` carry them through checkpoints."""

    def __init__(self, g: GanConfig) -> None:
        self.target, self.interval, self.kimg = g.ada_target, g.ada_interval, g.ada_kimg
        self.p, self.signs, self.count, self.steps = g.ada_p, 0.0, 0, 0
        self.adaptive = g.ada_target > 0

    def observe(self, real_scores: torch.Tensor, batch: int) -> None:
        """After each discriminator step: tally sign(D(real)); every interval steps adjust p."""
        if not self.adaptive:
            return
        self.signs += float(torch.sign(real_scores.detach()).sum())
        self.count += len(real_scores)
        self.steps += 1
        if self.steps % self.interval == 0:
            r_t = self.signs / max(self.count, 1)
            delta = batch * self.interval / (self.kimg * 1000)
            self.p = min(max(self.p + math.copysign(delta, r_t - self.target), 0.0), 1.0)
            self.signs, self.count = 0.0, 0

    def state(self) -> dict:
        return {"p": self.p, "signs": self.signs, "count": self.count, "steps": self.steps}

    def load(self, state: dict) -> None:
        self.p, self.signs = float(state["p"]), float(state["signs"])
        self.count, self.steps = int(state["count"]), int(state["steps"])
