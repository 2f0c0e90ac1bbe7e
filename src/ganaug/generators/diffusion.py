"""A class-conditional denoising diffusion model (`gan.family: diffusion`) on `diffusers`.

The network is diffusers' UNet2DModel, trained from scratch on the train split (no weights are
downloaded): `gan.width` channels at the first level times `gan.unet_mult` per level (one 2x
downsampling between levels), `gan.unet_layers` ResNet blocks per level, self-attention at the
resolutions in `gan.attention_res`. Conditional mode adds a class embedding with one extra "no
class" entry: training replaces a label by it with probability `gan.label_dropout`, so one
network is both the conditional and the unconditional model of classifier-free guidance (Ho &
Salimans 2022). Noise schedule (`gan.noise_schedule`, `gan.timesteps`) and the prediction target
(`gan.prediction`: the noise, or v of Salimans & Ho 2022) are diffusers' DDPM scheduler settings.

One training step: the next real batch x0, a timestep t and noise e per image from the run's
generator, x_t = sqrt(a_t) x0 + sqrt(1 - a_t) e, loss = MSE(net(x_t, t, y), e or v). log.csv's
gen_loss is that loss (the critic columns stay 0: there is no critic). Sampling uses the EMA
weights (`gan.ema_decay`, 0.999 suits diffusion) with diffusers' DDIM (deterministic at
`gan.eta` 0) or DDPM sampler over `gan.sample_steps` steps and guidance
`(1 + w) net(x, t, y) - w net(x, t, none)` at w = `gan.guidance` (0: the conditional model only).
The sampling settings are read at sampling time, so changing them needs no retraining.

Per-seed sampling: an image's noise input is its starting noise x_T plus one integer seed for
every random draw of the sampler's later steps (a generator of its own), so image i is
regenerated alone, bitwise on the CPU, in any batch. No realism score: selection ranks diffusion
samples by the labeller and the feature-space k-NN realism (select/scores.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganaug import InputError
from ganaug.config import GanConfig
from ganaug.generators.family import GeneratorFamily, Step, Unit, image_args, optimise
from ganaug.runtime import (
    FastPaths,
    autocast,
    make_optimiser,
    prepare_module,
)

SUB_SEEDS = 2**24  # sampler seeds are drawn below this, exact in the float32 noise tensor
SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # ours -> diffusers' names
TARGETS = {"epsilon": "epsilon", "v": "v_prediction"}


def unet_levels(args: dict) -> list[tuple[int, bool]]:
    """(channels, attention) per level of the UNet, from the image size down."""
    levels, res = [], args["size"]
    for mult in args["unet_mult"]:
        levels.append((args["width"] * mult, res in args["attention_res"]))
        res //= 2
    return levels


class Denoiser(nn.Module):
    """diffusers' UNet2DModel as net(x_t, t, labels) -> prediction (B, C, H, W)."""

    def __init__(self, args: dict, init: torch.Generator) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        self.args = dict(args)  # the training step's schedule settings (not in the state dict)
        self.scheduler = train_scheduler(args)
        levels = unet_levels(args)
        conditional = args["mode"] == "conditional"
        with torch.random.fork_rng(devices=[]):  # diffusers initialises from the global RNG
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=init)))
            self.unet = UNet2DModel(
                sample_size=args["size"],
                in_channels=args["channels"],
                out_channels=args["channels"],
                block_out_channels=tuple(ch for ch, _ in levels),
                down_block_types=tuple(f"{'Attn' if a else ''}DownBlock2D" for _, a in levels),
                up_block_types=tuple(f"{'Attn' if a else ''}UpBlock2D" for _, a in levels[::-1]),
                layers_per_block=args["unet_layers"],
                norm_num_groups=math.gcd(32, args["width"]),  # divides every level's width
                attention_head_dim=min(64, args["width"]),
                num_class_embeds=args["num_classes"] + 1 if conditional else None,
            )

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None):
        return self.unet(x, t, class_labels=labels, return_dict=False)[0]


def train_scheduler(args: dict):
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=args["timesteps"],
        beta_schedule=SCHEDULES[args["noise_schedule"]],
        prediction_type=TARGETS[args["prediction"]],
    )


def sample_scheduler(args: dict):
    """diffusers' DDIM or DDPM scheduler for `sample_steps` steps."""
    from diffusers import DDIMScheduler, DDPMScheduler

    kind = DDIMScheduler if args["sampler"] == "ddim" else DDPMScheduler
    sched = kind(
        num_train_timesteps=args["timesteps"],
        beta_schedule=SCHEDULES[args["noise_schedule"]],
        prediction_type=TARGETS[args["prediction"]],
        timestep_spacing="trailing",  # the last step starts from pure noise
    )
    sched.set_timesteps(min(args["sample_steps"], args["timesteps"]))
    return sched


class DiffusionFamily(GeneratorFamily):
    name = "diffusion"
    trained_nets = ("G",)
    ema_nets = ("G",)

    def model_args(self, image_shape: tuple[int, ...], num_classes: int, g: GanConfig) -> dict:
        args = image_args(image_shape, num_classes, g)
        mult = [int(m) for m in g.unet_mult.split(",")]
        attention = sorted({int(r) for r in g.attention_res.split(",") if r.strip()})
        if args["size"] % 2 ** (len(mult) - 1):
            raise InputError(
                f"gan.unet_mult {g.unet_mult!r}: {len(mult)} levels halve {args['size']} px "
                f"{len(mult) - 1} times, which does not divide it; use fewer levels"
            )
        args.update(width=g.width, unet_mult=mult, unet_layers=g.unet_layers)
        args.update(attention_res=attention, timesteps=g.timesteps)
        args.update(noise_schedule=g.noise_schedule, prediction=g.prediction)
        return args

    def sampling_args(self, g: GanConfig) -> dict:
        return {
            "sampler": g.sampler,
            "sample_steps": g.sample_steps,
            "guidance": g.guidance,
            "eta": g.eta,
        }

    def build_nets(self, args: dict, init: torch.Generator) -> dict[str, nn.Module]:
        return {"G": Denoiser(args, init)}

    def optimiser(self, name: str, net: nn.Module, g: GanConfig, fast: FastPaths):
        betas = (g.adam_beta1, g.adam_beta2)
        return make_optimiser("adam", net.parameters(), fast, lr=g.lr, betas=betas)

    def prepare(self, nets: dict[str, nn.Module], g: GanConfig, fast: FastPaths) -> None:
        prepare_module(nets["G"], fast)

    def train_step(self, unit: Unit, step: Step) -> None:
        g, rng, net, opt = step.g, step.rng, unit.nets["G"], unit.opts["G"]
        denoiser = getattr(net, "_orig_mod", net)  # torch.compile wraps the module
        args, sched = denoiser.args, denoiser.scheduler
        real, labels = step.real_batch()
        n, device = len(real), real.device
        t = torch.randint(0, args["timesteps"], (n,), generator=rng, device=rng.device).to(device)
        noise = torch.randn(real.shape, generator=rng, device=rng.device).to(device)
        if labels is not None and g.label_dropout > 0:
            drop = torch.rand(n, generator=rng, device=rng.device).to(device) < g.label_dropout
            labels = torch.where(drop, torch.full_like(labels, args["num_classes"]), labels)
        x_t = sched.add_noise(real.float(), noise, t)
        target = noise if args["prediction"] == "epsilon" else sched.get_velocity(real, noise, t)
        with autocast(device, step.fast.amp):
            pred = net(x_t, t, labels)
        loss = F.mse_loss(pred.float(), target.float())
        if optimise(loss, net, opt, step.guard, "denoiser"):
            step.stats.add(gen_loss=loss.item())
            step.stats.images += n

    def noise(self, n: int, args: dict, generator: torch.Generator) -> torch.Tensor:
        shape = (n, args["channels"] * args["size"] ** 2)
        start = torch.randn(shape, generator=generator, device=generator.device)
        seeds = torch.randint(0, SUB_SEEDS, (n, 1), generator=generator, device=generator.device)
        return torch.cat([start, seeds.float()], dim=1)

    @torch.no_grad()
    def generate(
        self, net: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None, args: dict
    ) -> torch.Tensor:
        args = {**self.sampling_args(GanConfig()), **args}  # defaults where a caller gave none
        b, c, size = len(noise), args["channels"], args["size"]
        x = noise[:, :-1].reshape(b, c, size, size).float()
        gens = [torch.Generator().manual_seed(int(s)) for s in noise[:, -1].tolist()]
        sched = sample_scheduler(args)
        w = float(args["guidance"])
        guided = labels is not None and w > 0
        null = torch.full_like(labels, args["num_classes"]) if guided else None
        for t in sched.timesteps:
            tt = torch.full((b,), int(t), device=x.device)
            if guided:
                both = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, null]))
                cond, uncond = both.float().chunk(2)
                pred = (1 + w) * cond - w * uncond
            else:
                pred = net(x, tt, labels).float()
            if args["sampler"] == "ddim":
                eta = float(args["eta"])
                var = _per_image_noise(gens, x) if eta > 0 else None
                x = sched.step(pred, t, x, eta=eta, variance_noise=var, return_dict=False)[0]
            else:
                x = sched.step(pred, t, x, generator=gens, return_dict=False)[0]
        return x.clamp(-1, 1)


def _per_image_noise(gens: list[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    """One draw per image from its own generator (CPU), on like's device."""
    shape = like.shape[1:]
    return torch.stack([torch.randn(shape, generator=gen) for gen in gens]).to(like.device)
