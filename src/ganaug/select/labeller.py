"""The selection labeller: a classifier trained on the real train split, used as a function.

`select.labeller` (a registry name of `classify`) is trained from scratch, without any evaluation,
on the classic-augmented real train split only (never val/test). Its argmax labels unconditional
samples, its top probability is the confidence score, and its penultimate layer gives the features
of `nn_feature` and of the fidelity metrics. Not in the paper, which does not say how its "high
quality" fakes were judged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ganaug.augment import classic_augment
from ganaug.config import Config
from ganaug.data import ImageSet, require_train_only
from ganaug.runtime import fast_paths, make_generator

log = logging.getLogger("ganaug")


@dataclass
class Labeller:
    """A trained classifier as a function: uint8 images (N, H, W, C) -> (probs (N, C), features)."""

    name: str  # recorded in fidelity.json as the feature extractor
    predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def train_labeller(real: ImageSet, cfg: Config, device: torch.device) -> Labeller:
    """Train `select.labeller` on the classic-augmented real train split (no evaluation at all)."""
    require_train_only(real, "the real set", "the selection labeller")
    from ganaug.classify import predict, train_from_scratch  # torchvision: imported late

    scfg = cfg.select
    aug = classic_augment(
        torch.from_numpy(real.images["train"]),
        torch.from_numpy(real.labels["train"]),
        cfg.augment,
        make_generator(scfg.seed),
    )
    fast = fast_paths(cfg.runtime, device)
    model, losses = train_from_scratch(
        scfg.labeller,
        aug.images,
        aug.labels,
        real.num_classes,
        epochs=scfg.labeller_epochs,
        lr=scfg.labeller_lr,
        batch_size=scfg.labeller_batch_size,
        seed=scfg.seed,
        device=device,
        fast=fast,
    )
    log.info("labeller %s: %d images, final loss %.4f", scfg.labeller, len(aug.labels), losses[-1])
    return Labeller(
        name=f"{scfg.labeller} labeller penultimate layer (real train, classic-augmented)",
        predict=lambda images: predict(model, images, device=device, fast=fast),
    )
