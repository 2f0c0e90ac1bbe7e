"""StyleGAN2 with adaptive discriminator augmentation (`gan.family: stylegan2`), the limited-data
recipe of Karras et al. 2020 for sets of a few thousand images.

One training step: a discriminator step on the next real batch (non-saturating logistic loss,
softplus(D(fake)) + softplus(-D(real)), with the lazy R1 penalty gamma / 2 * |grad D(real)|^2
every `gan.r1_every` steps, scaled by that interval), then a generator step (softplus(-D(fake))).
Every image the discriminator sees passes through ADA (generators/ada.py) with probability p,
which the r_t heuristic adjusts; p is logged per epoch (log.csv `ada_p`, TensorBoard) and
checkpointed with its tally, so a resumed run continues bitwise. Adam uses gan.lr and
(gan.adam_beta1, gan.adam_beta2) (StyleGAN2: 0.0025, (0, 0.99)); the generator's EMA
(gan.ema_decay, StyleGAN2: about 0.999) is what sampling uses. Path-length regularisation is left
out (it is off by default at these sizes). log.csv: critic_loss is the discriminator's loss,
wasserstein the score gap E[D(real)] - E[D(fake)], gp the R1 term of the steps that had one.
The discriminator is the family's realism score for selection.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.config import GanConfig
from ganaug.generators.ada import AdaState, augment
from ganaug.generators.family import GeneratorFamily, Step, Unit, image_args, optimise
from ganaug.generators.stylegan2.nets import Discriminator, Generator, check_size, init_nets
from ganaug.runtime import (
    FastPaths,
    autocast,
    make_optimiser,
    prepare_module,
)


class StyleGan2Family(GeneratorFamily):
    name = "stylegan2"
    trained_nets = ("G", "D")
    ema_nets = ("G",)
    log_columns = ("ada_p",)

    def model_args(self, image_shape: tuple[int, ...], num_classes: int, g: GanConfig) -> dict:
        args = image_args(image_shape, num_classes, g)
        check_size(args["size"])
        args.update(z_dim=g.z_dim, w_dim=g.w_dim or g.z_dim, width=g.width)
        args.update(mapping_layers=g.mapping_layers)
        return args

    def build_nets(self, args: dict, init: torch.Generator) -> dict[str, nn.Module]:
        gen, disc = Generator(args, init), Discriminator(args)
        init_nets(gen, disc, generator=init)
        return {"G": gen, "D": disc}

    def optimiser(self, name: str, net: nn.Module, g: GanConfig, fast: FastPaths):
        betas = (g.adam_beta1, g.adam_beta2)
        return make_optimiser("adam", net.parameters(), fast, lr=g.lr, betas=betas)

    def prepare(self, nets: dict[str, nn.Module], g: GanConfig, fast: FastPaths) -> None:
        """The discriminator is never compiled: R1 needs a double backward."""
        prepare_module(nets["G"], fast)
        prepare_module(nets["D"], replace(fast, compile=False))

    def train_step(self, unit: Unit, step: Step) -> None:
        ada = AdaState(step.g)
        if unit.state:
            ada.load(unit.state)
        real, labels = step.real_batch()
        discriminator_step(unit, real, labels, step, ada)
        generator_step(unit, len(real), step, ada)
        unit.state.update(ada.state())

    def log_values(self, unit: Unit) -> dict[str, float]:
        return {"ada_p": float(unit.state.get("p", 0.0))}

    def noise(self, n: int, args: dict, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, args["z_dim"], generator=generator, device=generator.device)

    def generate(
        self, net: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None, args: dict
    ) -> torch.Tensor:
        return net(noise, labels if net.embed is not None else None)  # fixed layer noise

    def realism(self, nets, args, unit, images, labels) -> torch.Tensor:
        disc = nets["D"]
        return disc(images, labels if disc.embed is not None else None)


def discriminator_step(
    unit: Unit, real: torch.Tensor, labels: torch.Tensor | None, step: Step, ada: AdaState
) -> None:
    g, rng, fast = step.g, step.rng, step.fast
    gen, disc, opt = unit.nets["G"], unit.nets["D"], unit.opts["D"]
    device = real.device
    fake_labels = step.fake_labels(len(real))
    with torch.no_grad(), autocast(device, fast.amp):
        fake = gen(_z(len(real), g, rng), fake_labels, rng).float()
    real_in, fake_in = augment(real, ada.p, rng), augment(fake, ada.p, rng)
    with autocast(device, fast.amp):
        real_scores, fake_scores = disc(real_in, labels), disc(fake_in, fake_labels)
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    loss = F.softplus(fake_scores).mean() + F.softplus(-real_scores).mean()
    r1 = torch.zeros((), device=device)
    d_steps = int(unit.state.get("d_steps", 0)) + 1
    if g.r1_gamma > 0 and d_steps % g.r1_every == 0:  # lazy R1, in float32
        x = real_in.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(disc(x, labels).sum(), x, create_graph=True)
        r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
        loss = loss + g.r1_gamma / 2 * r1 * g.r1_every
    if optimise(loss, disc, opt, step.guard, "critic"):
        gap = real_scores.mean() - fake_scores.mean()
        step.stats.add(critic_loss=loss.item(), wasserstein=gap.item(), gp=r1.item())
        step.stats.images += len(real)
        ada.observe(real_scores, len(real))
    unit.state["d_steps"] = d_steps


def generator_step(unit: Unit, batch: int, step: Step, ada: AdaState) -> None:
    g, rng, fast = step.g, step.rng, step.fast
    gen, disc, opt = unit.nets["G"], unit.nets["D"], unit.opts["G"]
    device = rng.device
    labels = step.fake_labels(batch)
    disc.requires_grad_(False)
    with autocast(device, fast.amp):
        fake = gen(_z(batch, g, rng), labels, rng).float()
    fake = augment(fake, ada.p, rng)
    with autocast(device, fast.amp):
        scores = disc(fake, labels).float()
    loss = F.softplus(-scores).mean()
    if optimise(loss, gen, opt, step.guard, "generator"):
        step.stats.add(gen_loss=loss.item())
    disc.requires_grad_(True)


def _z(n: int, g: GanConfig, rng: torch.Generator) -> torch.Tensor:
    return torch.randn(n, g.z_dim, generator=rng, device=rng.device)
