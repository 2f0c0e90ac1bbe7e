"""Classifiers trained from scratch with no evaluation at all: the selection labeller
(select.train_labeller) and the fidelity extractor (evaluate.train_extractor).

Neither may see val or test, so neither goes through fit_classifier: Adam on the given train
images for a fixed number of epochs, the initialisation seeded inside `torch.random.fork_rng` (the
global RNG is left untouched) and the shuffling from a generator of the same seed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganaug.classify.engine import train_one_epoch
from ganaug.classify.models import build_model
from ganaug.runtime import PLAIN, FastPaths, make_generator, make_optimiser, prepare_module


def train_from_scratch(
    name: str,
    images: Any,
    labels: Any,
    num_classes: int,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device | str,
    fast: FastPaths = PLAIN,
) -> tuple[nn.Module, list[float]]:
    """Registry model `name` initialised from `seed` and trained by train_plain on uint8
    `images` (N, H, W, C) and `labels` (N,); returns (the model in eval mode on `device`, the
    mean train loss of each epoch)."""
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(seed)
        model = build_model(name, num_classes, in_channels=images.shape[-1])
    losses = train_plain(
        model,
        images,
        labels,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
        fast=fast,
    )
    return model.eval(), losses


def train_plain(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device | str,
    class_weights: torch.Tensor | None = None,
    fast: FastPaths = PLAIN,
) -> list[float]:
    """Adam training with no evaluation at all (the labeller must never see val/test).

    Returns the mean train loss of each epoch; shuffling comes from a generator seeded by `seed`.
    `fast` prepares the model in place (channels_last, compile) and picks the Adam kernel.
    """
    device = torch.device(device)
    prepare_module(model.to(device), fast)
    images, labels = torch.as_tensor(images).to(device), torch.as_tensor(labels).to(device)
    weight = None if class_weights is None else torch.as_tensor(class_weights).float().to(device)
    criterion = nn.CrossEntropyLoss(weight=weight)
    optimiser = make_optimiser("adam", model.parameters(), fast, lr=lr)
    generator = make_generator(seed)
    batches = dict(batch_size=batch_size, generator=generator, fast=fast)
    return [
        train_one_epoch(model, optimiser, criterion, images, labels, **batches)[0]
        for _ in range(epochs)
    ]
