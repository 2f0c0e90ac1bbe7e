"""One fit's working state (Run): built seeded, restored from last.pt, described in checkpoints.

Determinism: initialisation is seeded from `classify.seed` inside `torch.random.fork_rng`, so the
global RNG is left untouched; epochs shuffle with an explicit `torch.Generator` whose state goes
into last.pt (budget=steps: the step count), so a resumed run continues to the same result
(bit-exact on CPU).

Scale-out: under `torchrun --nproc_per_node=N` the model trains as DistributedDataParallel (gloo on
CPU, nccl on CUDA); `classify.batch_size` stays the global batch, each rank training on
batch_size / N images of its shard (engine.py). The running statistics written are rank 0's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganaug import InputError, first_line
from ganaug.board import Board
from ganaug.classify.budget import budget_ends
from ganaug.classify.engine import balanced_class_weights
from ganaug.classify.models import build_model, refuse_gan_checkpoint
from ganaug.config import Config
from ganaug.runtime import (
    FastPaths,
    dist_info,
    fast_paths,
    init_distributed,
    make_generator,
    make_optimiser,
    pick_device,
    prepare_module,
    safe_torch_load,
)

log = logging.getLogger("ganaug")


@dataclass
class Run:
    """Everything one fit holds; `state` is what last.pt restores besides the three modules."""

    cfg: Config
    out_dir: Path
    config_hash: str
    device: torch.device
    model: nn.Module  # what checkpoints hold and evaluation runs
    net: nn.Module  # what trains: `model`, or its DistributedDataParallel wrapper under torchrun
    fast: FastPaths  # the speed-ups in effect (runtime.* on this device)
    optimiser: torch.optim.Optimizer
    criterion: nn.Module
    generator: torch.Generator
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]  # split -> (uint8 images, labels)
    class_names: tuple[str, ...]
    ends: list[int]  # optimiser steps done at the end of each epoch (budget=steps: each round)
    state: dict[str, Any] = field(
        default_factory=lambda: {"epoch": 0, "step": 0, "curves": [], "last": None, "best": None}
    )
    board: Board | None = None  # train/val curves for TensorBoard (runtime.tensorboard)


def start_run(
    cfg: Config,
    out_dir: Path,
    config_hash: str,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
    device: torch.device | str | None,
) -> Run:
    """Seeded model, optimiser, loss, generator; the data as tensors on the device."""
    ccfg, k = cfg.classify, len(class_names)
    if not isinstance(device, torch.device):
        device = pick_device(device or cfg.runtime.device)
    device, world = init_distributed(device), dist_info().world  # torchrun: this rank's device
    if ccfg.batch_size % world:
        raise InputError(
            f"classify.batch_size {ccfg.batch_size} does not split over {world} processes; "
            f"use a multiple of {world} (it is the global batch, {world} shards per step)"
        )
    ends = budget_ends(cfg, len(arrays["train"][0]), world)
    with torch.random.fork_rng(devices=[]):  # seeded init that leaves the global RNG untouched
        torch.manual_seed(ccfg.seed)
        model = build_model(ccfg.model, k, arrays["train"][0].shape[-1], ccfg.weights)
    model.to(device)
    fast = fast_paths(cfg.runtime, device)
    prepare_module(model, fast)  # before DDP, which keeps gradient buckets in the weights' layout
    tensors = {
        s: (torch.from_numpy(x).to(device), torch.from_numpy(y.astype(np.int64)).to(device))
        for s, (x, y) in arrays.items()
    }
    weight = None
    if ccfg.class_weights == "balanced":
        weight = balanced_class_weights(tensors["train"][1], k).to(device)
    net = model
    if world > 1:  # gradients averaged over the ranks during backward; batch norm stays per rank
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return Run(
        cfg=cfg,
        out_dir=out_dir,
        config_hash=config_hash,
        device=device,
        model=model,
        net=net,
        fast=fast,
        optimiser=make_optimiser(
            "adam", model.parameters(), fast, lr=ccfg.lr, weight_decay=ccfg.weight_decay
        ),
        criterion=nn.CrossEntropyLoss(weight=weight),
        generator=make_generator(ccfg.seed),
        tensors=tensors,
        class_names=class_names,
        ends=ends,
    )


def resume_run(run: Run) -> None:
    """Restore model, optimiser, generator and state from out_dir/last.pt when there is one;
    InputError for a checkpoint of another config or a damaged one."""
    path = run.out_dir / "last.pt"
    if not path.is_file():
        return
    ckpt = safe_torch_load(path)
    refuse_gan_checkpoint(ckpt, path, "use another --out or delete that file")
    found = ckpt.get("config_hash") if isinstance(ckpt, dict) else None
    require_same_config(path, "a checkpoint", found, run.config_hash)
    try:
        run.model.load_state_dict(ckpt["model"])
        run.optimiser.load_state_dict(ckpt["optimiser"])
        run.generator.set_state(ckpt["generator"])
        run.state = ckpt["state"]
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = first_line(err)
        raise InputError(
            f"{path}: damaged classifier checkpoint ({first}); delete it to start over"
        ) from None
    log.info("%s: resuming after epoch %d (step %d)", path, run.state["epoch"], run.state["step"])


def require_same_config(path: Path, what: str, found: Any, config_hash: str) -> None:
    """InputError unless `found` (the hash stored in `path`) is this run's config hash."""
    if found != config_hash:
        raise InputError(
            f"{path}: {what} of another config or data (hash {found!r}, now {config_hash!r}); "
            "use another --out or delete that directory"
        )


def model_args(run: Run) -> dict[str, Any]:
    """What rebuilds the model from a checkpoint alone (see load_classifier)."""
    return {
        "model_name": run.cfg.classify.model,
        "num_classes": len(run.class_names),
        "in_channels": run.tensors["train"][0].shape[-1],
        "class_names": list(run.class_names),
        "epoch": run.state["epoch"],
        "step": run.state["step"],
        "config": run.cfg.to_dict(),
        "config_hash": run.config_hash,
    }
