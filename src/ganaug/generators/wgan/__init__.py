"""The paper's DCGAN-shaped Wasserstein GAN (`gan.family: wgan`, the default).

One training step is the WGAN reference loop: `gan.n_critic` critic steps, each on the next real
batch, then one generator step; `gan.loss` picks weight clipping with RMSprop (the paper) or the
gradient penalty with Adam (WGAN-GP). The critic is the family's realism score for selection.
nets.py holds the nets, losses.py the losses, this module the family.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ganaug.config import GanConfig
from ganaug.generators.diffaug import diff_augment
from ganaug.generators.family import GeneratorFamily, Step, Unit, image_args, optimise
from ganaug.generators.wgan import losses
from ganaug.generators.wgan.nets import base_side, build_pair, sample_z
from ganaug.runtime import (
    FastPaths,
    autocast,
    make_generator,
    make_optimiser,
    prepare_module,
)

REFERENCE_FAKES = 512  # fakes whose batch-norm statistics a batch-norm critic scores with
REFERENCE_SEED = 2**31 - 1  # their latents' seed, apart from the sampling seeds 0, 1, 2, ...


class WganFamily(GeneratorFamily):
    name = "wgan"
    trained_nets = ("G", "D")
    ema_nets = ("G",)

    def model_args(self, image_shape: tuple[int, ...], num_classes: int, g: GanConfig) -> dict:
        args = image_args(image_shape, num_classes, g)
        base_side(args["size"])
        batch_norm = g.critic_norm == "batch" or (g.critic_norm == "auto" and g.loss == "wgan")
        args.update(z_dim=g.z_dim, z_dist=g.z_dist, width=g.width, critic_batch_norm=batch_norm)
        return args

    def build_nets(self, args: dict, init: torch.Generator) -> dict[str, nn.Module]:
        gen, critic = build_pair(args, init)
        return {"G": gen, "D": critic}

    def optimiser(self, name: str, net: nn.Module, g: GanConfig, fast: FastPaths):
        """WGAN recipe: RMSprop; WGAN-GP recipe: Adam with (adam_beta1, adam_beta2)."""
        if g.loss == "wgan":
            return make_optimiser("rmsprop", net.parameters(), fast, lr=g.lr)
        betas = (g.adam_beta1, g.adam_beta2)
        return make_optimiser("adam", net.parameters(), fast, lr=g.lr, betas=betas)

    def prepare(self, nets: dict[str, nn.Module], g: GanConfig, fast: FastPaths) -> None:
        """The critic is compiled only with loss wgan: torch.compile has no double backward,
        which the gradient penalty needs."""
        prepare_module(nets["G"], fast)
        prepare_module(nets["D"], replace(fast, compile=fast.compile and g.loss == "wgan"))

    def real_batches_per_step(self, g: GanConfig) -> int:
        return g.n_critic

    def train_step(self, unit: Unit, step: Step) -> None:
        for _ in range(step.g.n_critic):
            real, labels = step.real_batch()
            critic_step(unit, real, labels, step)
        fake_labels = step.fake_labels(len(real))
        generator_step(unit, len(real), fake_labels, step)

    def noise(self, n: int, args: dict, generator: torch.Generator) -> torch.Tensor:
        return sample_z(n, args["z_dim"], args["z_dist"], generator)

    def generate(
        self, net: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None, args: dict
    ) -> torch.Tensor:
        return net(noise, labels if net.embed is not None else None)

    def realism(
        self,
        nets: dict[str, nn.Module],
        args: dict,
        unit: int,
        images: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> torch.Tensor:
        """The critic's score; per_class uses the critic of each image's class (the caller's
        unit), conditional its projection with the label."""
        critic = nets["D"]
        return critic(images, labels if critic.embed is not None else None)

    def prepare_realism(self, nets: dict[str, nn.Module], args: dict, unit: int) -> None:
        device = next(nets["D"].parameters()).device
        recalibrate_batch_norm(nets["D"], nets["G"], args, unit, device)


def critic_step(unit: Unit, real: torch.Tensor, labels: torch.Tensor | None, step: Step) -> None:
    g, rng, fast, stats, guard = step.g, step.rng, step.fast, step.stats, step.guard
    gen, critic, opt = unit.nets["G"], unit.nets["D"], unit.opts["D"]
    device = real.device
    with torch.no_grad(), autocast(device, fast.amp):
        fake = gen(sample_z(len(real), g.z_dim, g.z_dist, rng), labels).float()
    real_in, fake_in = diff_augment(real, step.policy, rng), diff_augment(fake, step.policy, rng)
    with autocast(device, fast.amp):
        real_scores, fake_scores = critic(real_in, labels), critic(fake_in, labels)
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    loss = losses.critic_loss(real_scores, fake_scores)
    penalty = torch.zeros((), device=device)
    if g.loss == "wgan-gp":  # in float32: the double backward is where bf16 would hurt
        alpha = torch.rand(len(real), 1, 1, 1, generator=rng, device=device)
        penalty = losses.gradient_penalty(lambda v: critic(v, labels), real_in, fake_in, alpha)
        loss = loss + g.gp_lambda * penalty
    if optimise(loss, critic, opt, guard, "critic"):
        w = losses.wasserstein_estimate(real_scores, fake_scores)
        stats.add(critic_loss=loss.item(), wasserstein=w.item(), gp=penalty.item())
        stats.images += len(real)
    if g.loss == "wgan":
        losses.clip_weights_(critic.parameters(), g.clip)


def generator_step(unit: Unit, batch: int, labels: torch.Tensor | None, step: Step) -> None:
    g, rng, fast = step.g, step.rng, step.fast
    gen, critic, opt = unit.nets["G"], unit.nets["D"], unit.opts["G"]
    critic.requires_grad_(False)  # gradients flow through the critic, not into it
    device = rng.device  # the training generator lives on the training device
    with autocast(device, fast.amp):
        fake = gen(sample_z(batch, g.z_dim, g.z_dist, rng), labels).float()
    fake = diff_augment(fake, step.policy, rng)
    with autocast(device, fast.amp):
        scores = critic(fake, labels)
    loss = losses.generator_loss(scores.float())
    if optimise(loss, gen, opt, step.guard, "generator"):
        step.stats.add(gen_loss=loss.item())
    critic.requires_grad_(True)


@torch.no_grad()
def recalibrate_batch_norm(
    critic: nn.Module, gen: nn.Module, args: dict, unit: int, device: torch.device
) -> None:
    """A batch-norm critic's statistics of fakes, then eval mode; other critics are unchanged.

    A batch-norm critic (the paper's WGAN) trains on all-real and all-fake batches, each
    normalised by its own statistics, while its running statistics average the two kinds.
    Scoring fakes with those running statistics ranks them in a mode the critic never trained
    in, and scoring in train mode would make an image's score depend on its batch mates. So the
    running statistics are recomputed over REFERENCE_FAKES fixed fakes of the unit's generator
    (a cumulative mean over two chunks, momentum None) and scores are taken in eval mode: a fake
    is normalised by fake statistics, as in training, and its score is a function of the image
    alone.
    """
    norms = [m for m in critic.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    gen_z = make_generator(REFERENCE_SEED)
    z = sample_z(REFERENCE_FAKES, args["z_dim"], args["z_dist"], gen_z).to(device)
    classes = torch.arange(REFERENCE_FAKES, device=device) % max(args["num_classes"], 1)
    if args["mode"] == "per_class":
        classes = torch.full_like(classes, unit)
    lab_g = classes if gen.embed is not None else None
    lab_c = classes if critic.embed is not None else None
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the chunks
    critic.train()
    for half in (slice(0, REFERENCE_FAKES // 2), slice(REFERENCE_FAKES // 2, None)):
        fake = gen(z[half], None if lab_g is None else lab_g[half])
        critic(fake, None if lab_c is None else lab_c[half])
    critic.eval()
