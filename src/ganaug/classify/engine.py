"""The training engine: inputs, optimiser steps, one epoch, a step range, prediction.

Inputs: uint8 images kept in memory (on the device), scaled to [0, 1] and normalised with ImageNet's
mean / std on the device; no other train-time augmentation. Shuffling takes an explicit
`torch.Generator`; nothing here touches the global RNG.

Scale-out: with `world` > 1 (DistributedDataParallel under torchrun) every rank draws the same
order and trains on its shard order[rank::world]; `batch_size` is then the per-rank batch.
Batch-norm statistics stay per rank (SyncBatchNorm has no CPU kernel), so N processes match one
process whose batch norm sees batch_size / N images at a time ("ghost" batch norm).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ganaug import InputError
from ganaug.classify.models import family_of
from ganaug.runtime import (
    PLAIN,
    FastPaths,
    all_finite,
    all_reduce_sum,
    as_input,
    autocast,
    make_generator,
    to_device,
)

_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet; gray uses their means


def to_input(
    images: torch.Tensor, device: torch.device | str, fast: FastPaths = PLAIN
) -> torch.Tensor:
    """uint8 (B, H, W, C) -> normalised float (B, C, H, W) on `device`, in fast's memory format."""
    x = to_device(torch.as_tensor(images), torch.device(device), fast)
    x = x.permute(0, 3, 1, 2).float() / 255
    c = x.shape[1]
    mean = torch.tensor(_MEAN if c == 3 else (sum(_MEAN) / 3,), device=x.device)
    std = torch.tensor(_STD if c == 3 else (sum(_STD) / 3,), device=x.device)
    x = (x - mean.view(1, c, 1, 1)) / std.view(1, c, 1, 1)
    return as_input(x, fast)


class ClassifierDiverged(RuntimeError):
    """A training loss became NaN or infinite; the message names the epoch, the batch and the
    last good checkpoint (the CLI prints it on one line and exits with 1)."""


class NonFiniteLoss(ClassifierDiverged):
    """Raised by train_one_epoch at the first non-finite batch loss; `batch` is 1-based."""

    def __init__(self, batch: int, batches: int, value: float) -> None:
        super().__init__(f"non-finite loss {value} at batch {batch} of {batches}")
        self.batch, self.batches, self.value = batch, batches, value


def pass_batches(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one pass over `n_train` images (a 1-image tail batch is dropped)."""
    return n_train // batch_size + (1 if n_train % batch_size >= 2 else 0)


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """scikit-learn's "balanced" weights n / (K * count_k); 0 for a class with no images."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float()
    return torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), 0.0)


def train_one_epoch(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    fast: FastPaths = PLAIN,
    bar: Any = None,
    rank: int = 0,
    world: int = 1,
) -> tuple[float, float]:
    """One shuffled pass over uint8 `images` (N, H, W, C); returns (mean loss, accuracy).

    A NaN or infinite batch loss raises NonFiniteLoss before the optimiser step, so the weights
    stay those of the last finite step. With `world` > 1 (DDP), every rank draws the same order
    from the same generator and trains on its shard order[rank::world] (the last N % world
    images of the order sit the epoch out, so every rank runs the same number of steps);
    `batch_size` is then the per-rank batch, and the returned means cover all ranks. `fast`
    picks the speed-ups (bf16 autocast, channels_last inputs; the model is prepared by the caller).
    """
    model.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    order = _shard(order, rank, world)
    tally = _Tally(images.device)
    batches = -(-len(order) // batch_size)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2:  # BatchNorm cannot train on a single image: drop a 1-image tail
            continue
        where = (start // batch_size + 1, batches)
        tally.add(train_batch(model, optimiser, criterion, images, labels, idx, where, fast))
        if bar is not None:
            bar.update(1)
    return tally.means(world)


def train_steps(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    start: int,
    stop: int,
    batch_size: int,
    seed: int,
    fast: FastPaths = PLAIN,
    bar: Any = None,
    rank: int = 0,
    world: int = 1,
) -> tuple[float, float]:
    """Optimiser steps start + 1 .. stop of the batch stream; returns (mean loss, accuracy).

    The stream is shuffled passes over `images`: pass p is ordered by
    torch.randperm(N, generator=make_generator(pass_seed(seed, p))) and cut into
    pass_batches(per-rank N, batch_size) batches, so step s's batch depends on s alone and a
    run resumed at any step continues the uninterrupted one. DDP sharding, `batch_size` (per
    rank), the non-finite guard (NonFiniteLoss counts steps of this call) and `fast` are as in
    train_one_epoch.
    """
    model.train()
    n = (len(images) - len(images) % world) // world  # images per rank and pass
    per_pass = pass_batches(n, batch_size)
    if per_pass < 1:
        raise InputError(
            f"{len(images)} training images give no batch of >= 2 per process; add images"
        )
    tally = _Tally(images.device)
    order, current = None, -1
    for step in range(start, stop):
        p, j = divmod(step, per_pass)  # pass p, batch j of it
        if p != current:  # a new pass: its own order, drawn from its own generator
            generator = make_generator(pass_seed(seed, p))
            order = torch.randperm(len(images), generator=generator).to(images.device)
            order, current = _shard(order, rank, world), p
        idx = order[j * batch_size : (j + 1) * batch_size]
        where = (step - start + 1, stop - start)
        tally.add(train_batch(model, optimiser, criterion, images, labels, idx, where, fast))
        if bar is not None:
            bar.update(1)
    return tally.means(world)


def pass_seed(seed: int, p: int) -> int:
    """The shuffling seed of pass `p` of the steps budget's batch stream (63 bits)."""
    digest = hashlib.sha256(f"classify-pass:{seed}:{p}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def train_batch(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    idx: torch.Tensor,
    where: tuple[int, int],
    fast: FastPaths = PLAIN,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One optimiser step on images[idx]; returns (loss sum, correct, images) of the batch.

    `where` (batch, of batches; 1-based) names the batch in the NonFiniteLoss raised, before
    the step, when the loss is NaN or infinite.
    """
    x, y = to_input(images[idx], images.device, fast), labels[idx]
    with autocast(images.device, fast.amp):
        logits = model(x).float()  # (B, K)
    loss = criterion(logits, y)
    if not all_finite(loss):  # one sync per batch: cheap next to the backward pass
        raise NonFiniteLoss(*where, loss.item())
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach() * len(idx), (logits.argmax(dim=1) == y).sum(), len(idx)


def _shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share order[rank::world] of a shared order; the last N % world sit out."""
    if world > 1:
        order = order[: len(order) - len(order) % world][rank::world]
    return order


class _Tally:
    """Loss sum and correct count on the device (no sync per batch), images seen."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0

    def add(self, batch: tuple[torch.Tensor, torch.Tensor, int]) -> None:
        self.loss += batch[0]
        self.correct += batch[1]
        self.seen += batch[2]

    def means(self, world: int) -> tuple[float, float]:
        """(mean loss, accuracy), over all ranks when `world` > 1."""
        total_loss, correct, seen = self.loss, self.correct, self.seen
        if world > 1:  # (3,): loss sum, correct, seen over all ranks
            sums = [float(total_loss), float(correct), seen]
            device = self.loss.device
            sums = all_reduce_sum(torch.tensor(sums, dtype=torch.float64, device=device)).tolist()
            total_loss, correct, seen = sums[0], sums[1], int(sums[2])
        return float(total_loss) / max(seen, 1), float(correct) / max(seen, 1)


@torch.no_grad()
def forward_all(
    model: nn.Module, images: Any, device: torch.device, batch_size: int, fast: FastPaths = PLAIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode logits (N, K) and pooled penultimate features (N, D), float32 on the CPU."""
    was_training = model.training
    model.eval()
    captured: list[torch.Tensor] = []
    head = family_of(model).head_of(model)
    hook = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
    images = torch.as_tensor(images)
    logits = []
    try:
        for start in range(0, len(images), batch_size):
            with autocast(device, fast.amp):
                x = to_input(images[start : start + batch_size], device, fast)
                logits.append(model(x).float())
    finally:
        hook.remove()
        model.train(was_training)
    feats = torch.cat([f.float() for f in captured]).cpu()
    return torch.cat(logits).cpu(), feats


def predict(
    model: nn.Module,
    images: np.ndarray,
    *,
    device: torch.device | str,
    batch_size: int = 256,
    fast: FastPaths = PLAIN,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, K) and penultimate pooled features (N, D) of uint8 images."""
    device = torch.device(device)
    model.to(device)
    logits, feats = forward_all(model, images, device, batch_size, fast)
    return torch.softmax(logits, dim=1).numpy(), feats.numpy()
