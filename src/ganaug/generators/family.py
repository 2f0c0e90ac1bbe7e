"""The interface every generator family implements, and the unit of training it works on.

A family says what its nets are and how one training step and sampling work; the generic loop
(loop.py) does everything else: data order and batches, the learning-rate schedule, EMA, the NaN
guard, log.csv, grids, checkpoints, torchrun gradient sync and exact resume. A run trains one
`Unit` (all classes) or one per class (`gan.mode=per_class`).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ganaug.config import GanConfig
from ganaug.generators.monitor import EpochStats, NanGuard
from ganaug.runtime import PLAIN, FastPaths, all_reduce_mean_grads


@dataclass
class Unit:
    """The nets, their optimisers and EMA copies of one generator (all classes, or one class)."""

    nets: dict[str, nn.Module]  # e.g. {"G": generator, "D": critic}
    opts: dict[str, torch.optim.Optimizer]  # one per trained net, same keys
    ema: dict[str, nn.Module]  # EMA copies (gan.ema_decay > 0) of the family's ema_nets
    rows: torch.Tensor  # int64 (M,): rows of the training tensors this unit trains on
    label: int | None  # per_class: the class it generates; otherwise None
    sample_net: str = "G"
    state: dict[str, Any] = field(default_factory=dict)  # the family's counters, checkpointed

    @property
    def sampler(self) -> nn.Module:
        """What sampling uses: the EMA copy when there is one."""
        return self.ema.get(self.sample_net, self.nets[self.sample_net])


@dataclass
class Step:
    """What one training step may use besides the unit: batches, randomness, bookkeeping."""

    g: GanConfig
    real_batch: Callable[[], tuple[torch.Tensor, torch.Tensor | None]]  # next (x [-1, 1], labels)
    fake_labels: Callable[[int], torch.Tensor | None]  # n labels at the data's class frequencies
    policy: tuple[str, ...]  # DiffAugment transforms of every image a discriminator sees
    rng: torch.Generator  # the run's one training generator (resumed bitwise)
    stats: EpochStats  # add(name=value) per loss; the loop writes the epoch means to log.csv
    guard: NanGuard  # guard.finite(loss, what) before every backward
    fast: FastPaths = PLAIN
    extra: dict[str, Any] = field(default_factory=dict)


class GeneratorFamily(ABC):
    """Subclass, set `name` and the net names, implement the methods, then register it:
    `FAMILIES[name] = MyFamily()` (generators/__init__.py)."""

    name = ""
    trained_nets: tuple[str, ...] = ("G",)  # nets with an optimiser, in checkpoint order
    ema_nets: tuple[str, ...] = ("G",)  # nets that get an EMA copy when gan.ema_decay > 0
    sample_net = "G"  # the net that makes images
    log_columns: tuple[str, ...] = ()  # extra log.csv columns, filled by log_values

    @abstractmethod
    def model_args(self, image_shape: tuple[int, ...], num_classes: int, g: GanConfig) -> dict:
        """Everything needed to rebuild the nets (stored in the checkpoint); InputError if the
        data or config does not fit the family. Must contain `mode`, `size`, `channels`,
        `num_classes` and `units`."""

    def sampling_args(self, g: GanConfig) -> dict:
        """Settings that only sampling reads (e.g. a diffusion sampler's steps), taken from the
        config at sampling time and merged into the model arguments `generate` gets; they can
        change without retraining (checkpoint.RESUMABLE_KEYS). Default: none."""
        return {}

    @abstractmethod
    def build_nets(self, args: dict, init: torch.Generator) -> dict[str, nn.Module]:
        """Fresh nets, initialised from `init` only (never the global RNG)."""

    @abstractmethod
    def optimiser(self, name: str, net: nn.Module, g: GanConfig, fast: FastPaths):
        """The optimiser of trained net `name` (runtime.make_optimiser applies the fused path)."""

    def prepare(self, nets: dict[str, nn.Module], g: GanConfig, fast: FastPaths) -> None:
        """Apply the fast paths to the training nets (runtime.prepare_module); default: none."""
        return None

    def real_batches_per_step(self, g: GanConfig) -> int:
        """Real batches one train_step takes (the WGAN: one per critic step); an epoch is one
        pass over the data, so it has batches // this many steps."""
        return 1

    @abstractmethod
    def train_step(self, unit: Unit, step: Step) -> None:
        """One generator update (and whatever else the family updates with it)."""

    @abstractmethod
    def noise(self, n: int, args: dict, generator: torch.Generator) -> torch.Tensor:
        """The random input of n images, drawn from `generator` (per-seed sampling draws one
        image's input from a generator seeded with its seed)."""

    @abstractmethod
    def generate(
        self, net: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None, args: dict
    ) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from `noise` (on the net's device); `net` is in eval
        mode. A family whose sampler draws more randomness takes it from the noise."""

    def realism(
        self,
        nets: dict[str, nn.Module],
        args: dict,
        unit: int,
        images: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """A realism score per image (higher = judged more real), or None when the family has
        no discriminator (selection then ranks without it). `nets` are in eval mode and
        prepare_realism ran for this unit first."""
        return None

    def prepare_realism(self, nets: dict[str, nn.Module], args: dict, unit: int) -> None:
        """Called once per unit before its realism scores; default nothing."""
        return None

    def log_values(self, unit: Unit) -> dict[str, float]:
        """Extra per-epoch values for log.csv and TensorBoard (e.g. an augmentation
        probability); default none."""
        return {}


def image_args(image_shape: tuple[int, ...], num_classes: int, g: GanConfig) -> dict[str, Any]:
    """The model arguments every family shares: square images, label mode, units per class."""
    from ganaug import InputError

    h, w, c = image_shape
    if h != w:
        raise InputError(f"GAN training needs square images, got {h}x{w}; resize the data")
    units = num_classes if g.mode == "per_class" else 1
    return {"mode": g.mode, "size": h, "channels": c, "num_classes": num_classes, "units": units}


def build_units(
    family: GeneratorFamily,
    args: dict,
    g: GanConfig,
    labels: torch.Tensor,
    device: torch.device,
    fast: FastPaths = PLAIN,
) -> list[Unit]:
    """Fresh units, their nets initialised from one generator seeded by gan.seed; EMA copies
    (sampling only) stay plain."""
    from ganaug.runtime import make_generator

    init = make_generator(g.seed)
    units = []
    per_class = args["mode"] == "per_class"
    for k in range(args["units"]):
        nets = {name: net.to(device) for name, net in family.build_nets(args, init).items()}
        ema = {}
        if g.ema_decay > 0:
            ema = {n: copy.deepcopy(nets[n]).eval().requires_grad_(False) for n in family.ema_nets}
        family.prepare(nets, g, fast)
        opts = {n: family.optimiser(n, nets[n], g, fast) for n in family.trained_nets}
        rows = torch.nonzero(labels == k).flatten() if per_class else torch.arange(len(labels))
        label = k if per_class else None
        units.append(Unit(nets, opts, ema, rows.to(device), label, family.sample_net))
    return units


def optimise(loss: torch.Tensor, net: nn.Module, opt, guard: NanGuard, what: str) -> bool:
    """One guarded update: clear the gradients, then, when `loss` is finite (the NaN guard
    decides what a non-finite one does), backward, average the gradients over torchrun ranks
    (a no-op in one process) and step. Returns whether the step was taken."""
    opt.zero_grad(set_to_none=True)
    if not guard.finite(loss, what):
        return False
    loss.backward()
    all_reduce_mean_grads(net)
    opt.step()
    return True


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model; buffers (batch-norm statistics) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [-1, 1], every family's pixel convention."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, C, H, W) in [-1, 1] -> uint8 numpy (B, H, W, C)."""
    x = ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
