"""The classify stage: train on the union of the train splits, evaluate val and test per epoch.

Paper: ResNet-101 and DenseNet-121, batch 64, learning rate 1e-4, 40 epochs, test accuracy
reported. Where the paper is silent (our settings, PAPER.md): optimiser Adam (`classify.lr`,
`classify.weight_decay`); loss cross-entropy, optionally with balanced class weights
(`classify.class_weights`); the reported epoch is both the last and the best-validation one
(results.py); the training budget is epochs or optimiser steps (budget.py).

A run directory holds config.yaml (written once every input and any last.pt checked out), per
epoch curves.csv, last.pt and best.pt, then the figures and metrics.json. Under torchrun every
rank trains and evaluates; rank 0 alone writes files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganaug import InputError
from ganaug.board import Board
from ganaug.classify.budget import BUDGETS
from ganaug.classify.engine import ClassifierDiverged, NonFiniteLoss, forward_all
from ganaug.classify.results import CURVE_COLUMNS, write_curves, write_results
from ganaug.classify.state import Run, model_args, require_same_config, resume_run, start_run
from ganaug.config import Config, save_config
from ganaug.data import ImageSet, require_train_only
from ganaug.runtime import (
    atomic_torch_save,
    barrier,
    is_main,
    log_above_bars,
    progress,
)

log = logging.getLogger("ganaug")


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
    run = start_run(cfg, out_dir, config_hash, arrays, class_names, device)
    resume_run(run)  # a checkpoint of another config is refused before anything is written
    log.info("%s on %s; fast paths: %s", cfg.classify.model, run.device, run.fast.describe())
    if is_main():
        save_config(cfg, out_dir / "config.yaml")
    with Board(out_dir, cfg.runtime.tensorboard, resumed_at=run.state["step"]) as run.board:
        _train_epochs(run, on_epoch)
    if not is_main():  # rank 0 writes the figures and metrics.json; the others then read it
        barrier()
        return _finished(out_dir / "metrics.json", config_hash) or {}
    result = write_results(run)
    barrier()
    return result


def _finished(path: Path, config_hash: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = {}
    require_same_config(path, "holds a run", found.get("config_hash"), config_hash)
    return found


def _train_epochs(run: Run, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
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


def _run_epoch(run: Run, epoch: int, bar: Any) -> dict[str, float]:
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
            best = {"model": run.model.state_dict(), **model_args(run)}
            atomic_torch_save(best, run.out_dir / "best.pt")
    if is_main():
        last = {"model": run.model.state_dict(), "optimiser": run.optimiser.state_dict()}
        last.update(generator=run.generator.get_state(), state=state, **model_args(run))
        atomic_torch_save(last, run.out_dir / "last.pt")
        write_curves(run.out_dir / "curves.csv", state["curves"])
    if run.board is not None:  # train and val only: a live test curve invites tuning on it
        watched = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
        run.board.scalars(stop, "classify", **{k: row[k] for k in watched})
    barrier()  # every rank leaves the epoch with rank 0's checkpoint on disk
    return row


def _diverged(run: Run, epoch: int, first: int, err: NonFiniteLoss) -> str:
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


def _evaluate(run: Run, split: str) -> dict[str, Any]:
    """Unweighted cross-entropy, accuracy and probabilities (N, K) of one eval split."""
    images, labels = run.tensors[split]
    batch = run.cfg.classify.eval_batch_size
    logits = forward_all(run.model, images, run.device, batch, run.fast)[0]
    labels = labels.cpu()
    return {
        f"{split}_loss": nn.functional.cross_entropy(logits, labels).item(),
        f"{split}_acc": (logits.argmax(dim=1) == labels).sum().item() / len(labels),
        f"{split}_prob": torch.softmax(logits, dim=1),
    }
