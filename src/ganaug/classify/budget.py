"""Training budgets (`classify.budget`; our addition, the paper trains 40 epochs).

`epochs` trains classify.epochs passes and evaluates after each, so a larger training set gets more
optimiser steps; `steps` trains classify.steps optimiser steps whatever the set's size, evaluated
`classify.evals` times at evenly spread steps (the "epoch" of curves.csv and metrics.json is then
the evaluation round). Steps draw their batches from a stream of shuffled passes whose pass p is
ordered by its own generator (seeded from classify.seed and p), so where the stream stands is a
pure function of the step count.

A budget is an entry of BUDGETS: how the fit trains between two evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ganaug import InputError
from ganaug.classify.engine import pass_batches, train_one_epoch, train_steps
from ganaug.config import Config
from ganaug.runtime import dist_info

if TYPE_CHECKING:
    from ganaug.classify.state import Run


def resolve_steps(cfg: Config, n_train: int) -> int:
    """The step budget of budget=steps: classify.steps, or with 0 classify.epochs passes."""
    ccfg = cfg.classify
    return ccfg.steps or ccfg.epochs * pass_batches(n_train, ccfg.batch_size)


def budget_ends(cfg: Config, n_train: int, world: int) -> list[int]:
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


def _train_pass(run: Run, first: int, stop: int, bar: Any) -> tuple[float, float, int]:
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


def _train_round(run: Run, first: int, stop: int, bar: Any) -> tuple[float, float, int]:
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
BUDGETS: dict[str, Callable[[Run, int, int, Any], tuple[float, float, int]]] = {
    "epochs": _train_pass,
    "steps": _train_round,
}


def _batching(run: Run, bar: Any) -> dict[str, Any]:
    """The keyword arguments train_one_epoch and train_steps share (per-rank batch, DDP)."""
    info = dist_info()
    return dict(
        batch_size=run.cfg.classify.batch_size // info.world,  # the global batch is batch_size
        fast=run.fast,
        bar=bar,
        rank=info.rank,
        world=info.world,
    )
