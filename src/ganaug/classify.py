"""Classifiers: the paper's ResNet / DenseNet, trained with per-epoch evaluation, resumable.

Paper: ResNet-101 and DenseNet-121 in PyTorch, batch 64, learning rate 1e-4, 40 epochs, test
accuracy reported. Where the paper is silent (our settings, PAPER.md):
- optimiser: Adam (`classify.lr`, `classify.weight_decay`); loss: cross-entropy, optionally with
  balanced class weights (`classify.class_weights`);
- weights: torchvision architectures from scratch (never downloaded); `classify.weights` loads a
  local state dict (ImageNet's 1000-class head is replaced, a 3-channel stem summed for gray input);
- reported epoch: metrics.json holds the test metrics of the LAST epoch (the paper's protocol) and
  of the BEST-VALIDATION epoch (the honest one; ties go to the earlier epoch);
- inputs: uint8 images kept in memory (on the device), scaled to [0, 1] and normalised with
  ImageNet's mean / std on the device; no other train-time augmentation.

Training budget (`classify.budget`; our addition, the paper trains 40 epochs): `epochs` trains
classify.epochs passes and evaluates after each, so a larger training set gets more optimiser
steps; `steps` trains classify.steps optimiser steps whatever the set's size, evaluated
`classify.evals` times at evenly spread steps (the "epoch" of curves.csv and metrics.json is then
the evaluation round). Steps draw their batches from a stream of shuffled passes whose pass p is
ordered by its own generator (seeded from classify.seed and p), so where the stream stands is a
pure function of the step count.

Determinism: initialisation is seeded from `classify.seed` inside `torch.random.fork_rng`, so the
global RNG is left untouched; epochs shuffle with an explicit `torch.Generator` whose state goes
into last.pt (steps: the step count), so a resumed run continues to the same result (bit-exact on
CPU).

Scale-out: under `torchrun --nproc_per_node=N` the model trains as DistributedDataParallel (gloo on
CPU, nccl on CUDA). `classify.batch_size` stays the global batch: each rank trains on
batch_size / N images of its shard order[rank::N] of the shared epoch order. Batch-norm statistics
are per rank (SyncBatchNorm has no CPU kernel), so N processes match one process whose batch norm
sees batch_size / N images at a time ("ghost" batch norm), not a plain one-process run exactly;
the running statistics written are rank 0's. Every rank evaluates; rank 0 alone writes files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.models as tvm
from torch import nn

from ganaug import InputError, __version__
from ganaug.board import Board
from ganaug.config import Config, save_config
from ganaug.data import ImageSet, require_train_only
from ganaug.metrics import classification_metrics
from ganaug.runtime import (
    PLAIN,
    FastPaths,
    all_finite,
    all_reduce_sum,
    as_input,
    atomic_path,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    autocast,
    barrier,
    dist_info,
    fast_paths,
    init_distributed,
    is_main,
    log_above_bars,
    make_generator,
    make_optimiser,
    pick_device,
    prepare_module,
    progress,
    safe_torch_load,
    to_device,
)

log = logging.getLogger("ganaug")

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": tvm.resnet18,
    "resnet50": tvm.resnet50,
    "resnet101": tvm.resnet101,
    "densenet121": tvm.densenet121,
}
CURVE_COLUMNS = (  # step: optimiser steps done by the end of the row (cumulative)
    "epoch,step,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_s,lr"
).split(",")
# what a GAN checkpoint's "format" starts with (gan/state.py's FORMAT without its version):
# such a file is refused by name where a classifier checkpoint or state dict is expected
GAN_FORMAT_PREFIX = "ganaug-gan"
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet; gray uses their means
# old torchvision DenseNet files name layers "norm.1"; today's modules are "norm1"
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


# ---------------------------------------------------------------------------------------------
# model registry


def build_model(name: str, num_classes: int, in_channels: int = 3, weights: str = "") -> nn.Module:
    """A registry model for `num_classes` outputs and 1- or 3-channel input (global RNG init)."""
    if name not in MODELS:
        raise InputError(
            f"classify.model {name!r}: unknown model; valid names: {', '.join(MODELS)}"
        )
    model = MODELS[name](weights=None, num_classes=num_classes)
    if in_channels != 3:
        parent, attr = _stem(model)
        old = getattr(parent, attr)
        new = nn.Conv2d(
            in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False
        )
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        setattr(parent, attr, new)
    if weights:
        load_weights(model, Path(weights), name)
    return model


def _stem(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent, attribute) of the first convolution."""
    return (model, "conv1") if hasattr(model, "fc") else (model.features, "conv0")


def _head(model: nn.Module) -> nn.Linear:
    return model.fc if hasattr(model, "fc") else model.classifier


def refuse_gan_checkpoint(ckpt: Any, path: Path | str, fix: str) -> None:
    """A GAN checkpoint where a classifier's is expected: one line saying which kind it is."""
    if isinstance(ckpt, dict) and str(ckpt.get("format", "")).startswith(GAN_FORMAT_PREFIX):
        raise InputError(
            f"{path}: a ganaug GAN checkpoint (of `ganaug gan train`), not a classifier one; "
            f"`ganaug gan sample --checkpoint` and `ganaug select --checkpoint` take it; {fix}"
        )


def load_weights(model: nn.Module, path: Path, name: str) -> None:
    """Load a local state dict (or a ganaug best.pt / last.pt) into `model`; InputError if unfit."""
    state = safe_torch_load(path)
    refuse_gan_checkpoint(state, path, f"give classify.weights a {name} state dict")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a ganaug checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors; save model.state_dict()")
    state = {_DENSENET_OLD_KEY.sub(r"\1\2", k): v for k, v in state.items()}
    own = model.state_dict()
    stem_key = "conv1.weight" if hasattr(model, "fc") else "features.conv0.weight"
    stem = state.get(stem_key)
    if stem is not None and stem.ndim == 4 and stem.shape[1] == 3 and own[stem_key].shape[1] == 1:
        state[stem_key] = stem.sum(dim=1, keepdim=True)  # RGB filters -> gray (timm's rule)
    head = "fc." if hasattr(model, "fc") else "classifier."
    kept_head = [k for k in own if k.startswith(head) and k in state]
    if any(state[k].shape != own[k].shape for k in kept_head):
        for k in kept_head:  # another class count (e.g. ImageNet's 1000): keep our fresh head
            state.pop(k)
    missing = sorted(k for k in own if k not in state and not k.startswith(head))
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        first = (missing + unexpected + wrong)[0]
        raise InputError(
            f"{path}: does not fit {name} ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} wrong-shape keys, e.g. {first!r}); give weights saved from "
            f"torchvision's {name} or unset classify.weights"
        )
    model.load_state_dict(state, strict=False)  # only a replaced head may be absent


# ---------------------------------------------------------------------------------------------
# inputs, training and prediction


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


def resolve_steps(cfg: Config, n_train: int) -> int:
    """The step budget of budget=steps: classify.steps, or with 0 classify.epochs passes."""
    ccfg = cfg.classify
    return ccfg.steps or ccfg.epochs * pass_batches(n_train, ccfg.batch_size)


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


@torch.no_grad()
def _forward_all(
    model: nn.Module, images: Any, device: torch.device, batch_size: int, fast: FastPaths = PLAIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode logits (N, K) and pooled penultimate features (N, D), float32 on the CPU."""
    was_training = model.training
    model.eval()
    captured: list[torch.Tensor] = []
    hook = _head(model).register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
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
    logits, feats = _forward_all(model, images, device, batch_size, fast)
    return torch.softmax(logits, dim=1).numpy(), feats.numpy()


def load_classifier(path: Path | str, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a classifier from a ganaug best.pt / last.pt alone (eval mode, on `device`)."""
    ckpt = safe_torch_load(path)
    refuse_gan_checkpoint(ckpt, path, "give a classifier's best.pt or last.pt")
    try:
        model = build_model(ckpt["model_name"], ckpt["num_classes"], ckpt["in_channels"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise InputError(f"{path}: not a ganaug classifier checkpoint ({err})") from None
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------
# fit: train on the union of the train splits, evaluate val and test after every epoch


def merge_train(
    train: ImageSet | Sequence[ImageSet],
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images (N, H, W, C) and labels (N,) of all train splits; they must agree in shape/classes."""
    sets = [train] if isinstance(train, ImageSet) else list(train)
    if not sets:
        raise InputError("no training data given; pass at least one --train file")
    first = sets[0]
    for i, data in enumerate(sets, start=1):
        where = f"training set {i} of {len(sets)}"
        if "train" not in data.images:
            raise InputError(f"{where}: has no train split to train on")
        require_train_only(data, where, "classifier training")
        if data.image_shape != first.image_shape or data.num_classes != first.num_classes:
            raise InputError(
                f"{where}: images {data.image_shape} with {data.num_classes} classes do not match "
                f"training set 1 ({first.image_shape}, {first.num_classes} classes); every --train "
                "file needs the same image shape and class count"
            )
    images = np.concatenate([d.images["train"] for d in sets])
    return images, np.concatenate([d.labels["train"] for d in sets]), first.class_names


def _check_eval(eval_set: ImageSet, shape: tuple[int, ...], num_classes: int) -> None:
    missing = [s for s in ("val", "test") if s not in eval_set.images]
    if missing:
        raise InputError(
            f"evaluation data has no {'/'.join(missing)} split; give the real.npz of `ganaug data`"
        )
    if tuple(eval_set.image_shape) != tuple(shape) or eval_set.num_classes != num_classes:
        raise InputError(
            f"evaluation data: images {eval_set.image_shape} with {eval_set.num_classes} classes "
            f"do not match the training data ({tuple(shape)}, {num_classes} classes)"
        )


def run_hash(cfg: Config, arrays: Sequence[np.ndarray]) -> str:
    """Cache key of a fit: the classify section plus the bytes of every array it uses."""
    digest = hashlib.sha256(cfg.section_hash("classify").encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()[:16]


@dataclass
class _Run:
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


def fit_classifier(
    train: ImageSet | Sequence[ImageSet],
    eval_set: ImageSet,
    cfg: Config,
    out_dir: Path,
    *,
    device: torch.device | str | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train `cfg.classify.model` on the union of the train splits; evaluate val + test per epoch.

    With classify.budget=steps an "epoch" is one of classify.evals evaluation rounds of the
    step budget (resolve_steps); round r ends at step round(r * steps / evals). Resumes from
    out_dir/last.pt; returns the existing metrics.json when it holds the same config
    hash (classify section + data). `on_epoch(row)` runs after each epoch's checkpoint (a test
    stops a run by raising from it). Writes config.yaml first (once every input and any last.pt
    checked out), then per epoch curves.csv, last.pt and best.pt, then the figures, and
    metrics.json last (its presence marks a finished run). A non-finite loss raises
    ClassifierDiverged naming the epoch and the batch (budget=steps: the round and the step) and
    the last good checkpoint.
    """
    out_dir = Path(out_dir)
    images, labels, class_names = merge_train(train)
    _check_eval(eval_set, images.shape[1:], len(class_names))
    arrays = {"train": (images, labels)}
    arrays.update({s: (eval_set.images[s], eval_set.labels[s]) for s in ("val", "test")})
    config_hash = run_hash(cfg, [a for pair in arrays.values() for a in pair])
    finished = _finished(out_dir / "metrics.json", config_hash)
    if finished is not None:
        log.info("%s: finished with the same config; skipped", out_dir / "metrics.json")
        return finished
    run = _start(cfg, out_dir, config_hash, arrays, class_names, device)
    _resume(run)  # a checkpoint of another config is refused before anything is written
    log.info("%s on %s; fast paths: %s", cfg.classify.model, run.device, run.fast.describe())
    if is_main():
        save_config(cfg, out_dir / "config.yaml")
    with Board(out_dir, cfg.runtime.tensorboard, resumed_at=run.state["step"]) as run.board:
        _train_epochs(run, on_epoch)
    if not is_main():  # rank 0 writes the figures and metrics.json; the others then read it
        barrier()
        return _finished(out_dir / "metrics.json", config_hash) or {}
    result = _finish(run)
    barrier()
    return result


def _start(
    cfg: Config,
    out_dir: Path,
    config_hash: str,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
    device: torch.device | str | None,
) -> _Run:
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
    ends = _budget_ends(cfg, len(arrays["train"][0]), world)
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
    return _Run(
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


def _budget_ends(cfg: Config, n_train: int, world: int) -> list[int]:
    """Optimiser steps done at the end of each epoch or evaluation round; InputError if unfit."""
    ccfg = cfg.classify
    per_pass = pass_batches(n_train // world, ccfg.batch_size // world)  # per rank, as trained
    if ccfg.budget == "epochs":
        return [epoch * per_pass for epoch in range(1, ccfg.epochs + 1)]
    if per_pass < 1:
        raise InputError(
            f"{n_train} training images give no batch of >= 2 images per process; add images"
        )
    steps, evals = resolve_steps(cfg, n_train), ccfg.evals or ccfg.epochs
    if evals > steps:
        raise InputError(
            f"classify.evals {evals}: more evaluations than the {steps} optimiser steps of the "
            "budget; lower classify.evals (0 = classify.epochs) or raise classify.steps"
        )
    return [round(r * steps / evals) for r in range(1, evals + 1)]


def _finished(path: Path, config_hash: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = {}
    if found.get("config_hash") != config_hash:
        raise InputError(
            f"{path}: holds a run of another config or data (hash {found.get('config_hash')!r}, "
            f"now {config_hash!r}); use another --out or delete that directory"
        )
    return found


def _resume(run: _Run) -> None:
    path = run.out_dir / "last.pt"
    if not path.is_file():
        return
    ckpt = safe_torch_load(path)
    refuse_gan_checkpoint(ckpt, path, "use another --out or delete that file")
    found = ckpt.get("config_hash") if isinstance(ckpt, dict) else None
    if found != run.config_hash:
        raise InputError(
            f"{path}: a checkpoint of another config or data (hash {found!r}, "
            f"now {run.config_hash!r}); use another --out or delete that directory"
        )
    try:
        run.model.load_state_dict(ckpt["model"])
        run.optimiser.load_state_dict(ckpt["optimiser"])
        run.generator.set_state(ckpt["generator"])
        run.state = ckpt["state"]
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise InputError(
            f"{path}: damaged classifier checkpoint ({first}); delete it to start over"
        ) from None
    log.info("%s: resuming after epoch %d (step %d)", path, run.state["epoch"], run.state["step"])


def _train_epochs(run: _Run, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
    ccfg = run.cfg.classify
    todo = range(run.state["epoch"] + 1, len(run.ends) + 1)
    name = f"{ccfg.model} seed {ccfg.seed}"
    bar = progress(total=run.ends[-1] - run.state["step"], desc=name, unit="step")
    unit = "epoch" if ccfg.budget == "epochs" else "round"
    with bar, log_above_bars(bar, log):
        for epoch in todo:
            row = _run_epoch(run, epoch, bar)
            bar.set_postfix(val_acc=f"{row['val_acc']:.3f}", test_acc=f"{row['test_acc']:.3f}")
            summary = ", ".join(f"{k} {row[k]:.4g}" for k in CURVE_COLUMNS[1:9])
            log.info("%s %s %d/%d: %s", name, unit, epoch, len(run.ends), summary)
            if on_epoch is not None:
                on_epoch(row)


def _run_epoch(run: _Run, epoch: int, bar: Any) -> dict[str, float]:
    """Train one epoch (budget=steps: one round), evaluate val and test, checkpoint; returns the
    curves.csv row."""
    ccfg = run.cfg.classify
    first, stop = run.state["step"], run.ends[epoch - 1]
    # train
    start = time.perf_counter()
    try:
        train_loss, train_acc, images = BUDGETS[ccfg.budget](run, first, stop, bar)
    except NonFiniteLoss as err:
        raise ClassifierDiverged(_diverged(run, epoch, first, err)) from None
    train_seconds = time.perf_counter() - start
    # evaluate val and test (every rank: the rows agree on what follows; rank 0's are written)
    evaluation = {"epoch": epoch, "step": stop, **_evaluate(run, "val"), **_evaluate(run, "test")}
    row = {"epoch": epoch, "step": stop, "train_loss": train_loss, "train_acc": train_acc}
    row.update({k: evaluation[k] for k in ("val_loss", "val_acc", "test_loss", "test_acc")})
    row["seconds"] = time.perf_counter() - start
    row["images_per_s"] = images / train_seconds
    row["lr"] = run.optimiser.param_groups[0]["lr"]
    # maintenance: best-val bookkeeping, checkpoints, curves (rank 0 writes)
    state = run.state
    state["curves"].append(row)
    state["epoch"], state["step"], state["last"] = epoch, stop, evaluation
    if state["best"] is None or evaluation["val_acc"] > state["best"]["val_acc"]:  # ties: earlier
        state["best"] = evaluation
        if is_main():
            best = {"model": run.model.state_dict(), **_model_args(run)}
            atomic_torch_save(best, run.out_dir / "best.pt")
    if is_main():
        last = {"model": run.model.state_dict(), "optimiser": run.optimiser.state_dict()}
        last.update(generator=run.generator.get_state(), state=state, **_model_args(run))
        atomic_torch_save(last, run.out_dir / "last.pt")
        _write_curves(run.out_dir / "curves.csv", state["curves"])
    if run.board is not None:  # train and val only: a live test curve invites tuning on it
        watched = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
        run.board.scalars(stop, "classify", **{k: row[k] for k in watched})
    barrier()  # every rank leaves the epoch with rank 0's checkpoint on disk
    return row


def _train_pass(run: _Run, first: int, stop: int, bar: Any) -> tuple[float, float, int]:
    """budget=epochs: one shuffled pass from the run's generator (its state goes into last.pt)."""
    images, labels = run.tensors["train"]
    loss, acc = train_one_epoch(
        run.net,
        run.optimiser,
        run.criterion,
        images,
        labels,
        **_batching(run, bar),
        generator=run.generator,
    )
    return loss, acc, len(images)


def _train_round(run: _Run, first: int, stop: int, bar: Any) -> tuple[float, float, int]:
    """budget=steps: steps first + 1 .. stop of the batch stream (a pure function of the step)."""
    images, labels = run.tensors["train"]
    loss, acc = train_steps(
        run.net,
        run.optimiser,
        run.criterion,
        images,
        labels,
        **_batching(run, bar),
        start=first,
        stop=stop,
        seed=run.cfg.classify.seed,
    )
    world = dist_info().world
    n, bs = len(images) // world, run.cfg.classify.batch_size // world  # per rank
    per_pass = pass_batches(n, bs)
    seen = sum(min(bs, n - (step % per_pass) * bs) for step in range(first, stop))
    return loss, acc, seen * world


# how each classify.budget trains between two evaluations: (run, first, stop, bar) ->
# (mean train loss, train accuracy, images trained)
BUDGETS: dict[str, Callable[[_Run, int, int, Any], tuple[float, float, int]]] = {
    "epochs": _train_pass,
    "steps": _train_round,
}


def _batching(run: _Run, bar: Any) -> dict[str, Any]:
    """The keyword arguments train_one_epoch and train_steps share (per-rank batch, DDP)."""
    info = dist_info()
    return dict(
        batch_size=run.cfg.classify.batch_size // info.world,  # the global batch is batch_size
        fast=run.fast,
        bar=bar,
        rank=info.rank,
        world=info.world,
    )


def _diverged(run: _Run, epoch: int, first: int, err: NonFiniteLoss) -> str:
    """ClassifierDiverged's one line: where the loss broke, the last good checkpoint, what to do."""
    ccfg, state = run.cfg.classify, run.state
    path = run.out_dir / "last.pt"
    if ccfg.budget == "epochs":
        where = f"{err} of epoch {epoch}"
        last = f"{path} (epoch {state['epoch']})"
    else:
        where = (
            f"non-finite loss {err.value} at step {first + err.batch} of {run.ends[-1]} "
            f"(round {epoch} of {len(run.ends)})"
        )
        last = f"{path} (round {state['epoch']}, step {state['step']})"
    last = last if state["epoch"] else "none yet"
    return (
        f"{ccfg.model} seed {ccfg.seed}: {where}; last good checkpoint: {last}. "
        "Lower classify.lr or check the data"
    )


def _evaluate(run: _Run, split: str) -> dict[str, Any]:
    """Unweighted cross-entropy, accuracy and probabilities (N, K) of one eval split."""
    images, labels = run.tensors[split]
    logits = _forward_all(
        run.model, images, run.device, run.cfg.classify.eval_batch_size, run.fast
    )[0]
    labels = labels.cpu()
    return {
        f"{split}_loss": nn.functional.cross_entropy(logits, labels).item(),
        f"{split}_acc": (logits.argmax(dim=1) == labels).sum().item() / len(labels),
        f"{split}_prob": torch.softmax(logits, dim=1),
    }


def _model_args(run: _Run) -> dict[str, Any]:
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


def _write_curves(path: Path, rows: list[dict[str, float]]) -> None:
    lines = [",".join(CURVE_COLUMNS)]
    lines += [",".join(repr(row[c]) for c in CURVE_COLUMNS) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _protocol(evaluation: dict[str, Any], truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """One reporting protocol of metrics.json (last epoch or best-val epoch)."""
    out: dict[str, Any] = {"epoch": evaluation["epoch"], "step": evaluation["step"]}
    for split in ("val", "test"):
        prob = evaluation[f"{split}_prob"].numpy()
        out[split] = classification_metrics(truth[split], prob)
        out[split]["loss"] = evaluation[f"{split}_loss"]
    prob = evaluation["test_prob"].numpy().astype(np.float64)
    out["test_pred"] = prob.argmax(axis=1).tolist()
    out["test_prob"] = np.round(prob, 6).tolist()
    return out


def _finish(run: _Run) -> dict[str, Any]:
    """Figures, then metrics.json (last and best-val protocols) as the finished-run marker."""
    ccfg, state = run.cfg.classify, run.state
    truth = {s: run.tensors[s][1].cpu().numpy() for s in ("train", "val", "test")}
    last, best = _protocol(state["last"], truth), _protocol(state["best"], truth)
    names = list(run.class_names)
    for file, result, which in (
        ("confusion.png", last, "last"),
        ("confusion_best_val.png", best, "best-val"),
    ):
        title = f"{ccfg.model} seed {ccfg.seed}: test, {which} epoch ({result['epoch']})"
        plot_confusion(run.out_dir / file, result["test"]["confusion"], names, title)
    title = f"{ccfg.model} seed {ccfg.seed}"
    x = "epoch" if ccfg.budget == "epochs" else "step"
    plot_curves(run.out_dir / "curves.png", state["curves"], title, x=x)
    metrics = {
        "model": ccfg.model,
        "seed": ccfg.seed,
        "epochs": ccfg.epochs,
        "budget": ccfg.budget,
        "steps": state["step"],  # optimiser steps done (per rank under DDP: each is global)
        "num_classes": len(names),
        "class_names": names,
        "train_counts": np.bincount(truth["train"], minlength=len(names)).tolist(),
        "train_size": len(truth["train"]),
        "val_size": len(truth["val"]),
        "test_size": len(truth["test"]),
        "config_hash": run.config_hash,
        "version": __version__,
        "device": str(run.device),
        "epoch_seconds": [row["seconds"] for row in state["curves"]],
        "test_labels": truth["test"].tolist(),
        "last": last,
        "best_val": best,
    }
    atomic_write_json(run.out_dir / "metrics.json", metrics)
    return json.loads(json.dumps(metrics))


# ---------------------------------------------------------------------------------------------
# figures (matplotlib's object API with the Agg canvas: no pyplot, no global state)


def plot_confusion(
    path: Path, confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str
) -> None:
    """Counts and row-normalised (per-class recall) confusion matrices side by side."""
    from matplotlib.figure import Figure

    counts = np.asarray(confusion)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    fig = Figure(figsize=(4 + 1.3 * k, 1.5 + 0.6 * k), layout="constrained")
    panels = ((counts, "d", "counts"), (shares, ".2f", "row-normalised (recall)"))
    for ax, (values, fmt, subtitle) in zip(fig.subplots(1, 2), panels, strict=True):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=subtitle)
        ax.set_xticklabels(class_names, rotation=45, ha="right")
        ax.set_yticklabels(class_names)
        for i, j in np.ndindex(values.shape):
            dark = values[i, j] > values.max() / 2
            ax.text(
                j,
                i,
                format(values[i, j], fmt),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def plot_curves(
    path: Path, rows: Sequence[dict[str, float]], title: str, *, x: str = "epoch"
) -> None:
    """Loss and accuracy per epoch (or `x`="step"), train vs val vs test; dashed line at the
    best-val row."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [r[x] for r in rows]
    best = epochs[int(np.argmax([r["val_acc"] for r in rows]))]  # first maximum, as in the fit
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "acc"), strict=True):
        for split in ("train", "val", "test"):
            ax.plot(epochs, [r[f"{split}_{metric}"] for r in rows], marker=".", label=split)
        ax.axvline(best, color="gray", linestyle="--", linewidth=1, label=f"best val ({int(best)})")
        ax.set(xlabel=x, ylabel="accuracy" if metric == "acc" else "cross-entropy loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
