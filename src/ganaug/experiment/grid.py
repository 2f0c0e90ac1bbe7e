"""The grid of classifier cells (regime x model x seed): the equal step budget, and running the
cells sequentially, in a local process pool, or as Ray tasks."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug import InputError
from ganaug.config import Config, config_from_dict
from ganaug.data import read_npz
from ganaug.experiment.stages import Cell, grid_cells, regime_train_files, synthetic_dirs

log = logging.getLogger("ganaug")


def run_cell(run_dir: str, cfg_dict: dict[str, Any], cell: Cell, device: str | None) -> dict:
    """Train and evaluate one cell; picklable, so it runs in a process pool or a Ray task."""
    from ganaug.classify import fit_classifier

    run_path = Path(run_dir)
    cfg = config_from_dict(cfg_dict)
    files = regime_train_files(cell.regime, synthetic_dirs(cfg, cell.seed)[1])
    cfg = cfg.replace(classify={"model": cell.model, "seed": cell.seed})
    train = [read_npz(run_path / f) for f in files]
    real = read_npz(run_path / "data" / "real.npz", required=("train", "val", "test"))
    metrics = fit_classifier(train, real, cfg, cell.out_dir(run_path), device=device)
    return {
        "regime": cell.regime,
        "model": cell.model,
        "seed": cell.seed,
        "test_accuracy_last": metrics["last"]["test"]["accuracy"],
    }


def train_size(run_dir: Path, cfg: Config, cell: Cell) -> int:
    """Training images of a cell (the sum of its files' train splits; only the label arrays are
    read: the stages wrote and checked these files)."""
    files = regime_train_files(cell.regime, synthetic_dirs(cfg, cell.seed)[1])
    total = 0
    for name in files:
        with np.load(run_dir / name, allow_pickle=False) as arrays:
            total += len(arrays["train_labels"])
    return total


def grid_step_budget(cfg: Config, run_dir: Path) -> Config:
    """With budget=steps and steps 0: cfg with classify.steps = the largest cell's step count at
    classify.epochs, so every regime trains the same number of optimiser steps."""
    from ganaug.classify import resolve_steps

    if cfg.classify.budget != "steps" or cfg.classify.steps:
        return cfg
    sizes = {}
    for cell in grid_cells(cfg):
        key = (cell.regime, synthetic_dirs(cfg, cell.seed)[1])
        if key not in sizes:
            sizes[key] = train_size(run_dir, cfg, cell)
    steps = max(resolve_steps(cfg, n) for n in sizes.values())
    largest = max(sizes, key=lambda k: sizes[k])[0]
    log.info(
        "grid: %d optimiser steps per cell (%d epochs of %s, the largest regime)",
        *(steps, cfg.classify.epochs, largest),
    )
    return cfg.replace(classify={"steps": steps})


def run_grid(cfg: Config, run_dir: Path, device: str | None) -> list[dict]:
    cells = grid_cells(cfg)
    cfg = grid_step_budget(cfg, run_dir)
    cfg_dict = cfg.to_dict()
    ex = cfg.experiment
    log.info(
        "grid: %d cells (%s) with executor %s",
        len(cells),
        " x ".join(map(str, (len(ex.regimes), len(ex.models), len(ex.seeds)))),
        ex.executor,
    )
    if ex.executor == "ray":
        return _run_ray(cfg, run_dir, cells, cfg_dict, device)
    if ex.workers > 1:
        return _run_pool(run_dir, cells, cfg_dict, device, ex.workers)
    results = []
    for i, cell in enumerate(cells, 1):
        start = time.perf_counter()
        results.append(run_cell(str(run_dir), cfg_dict, cell, device))
        log.info(
            "cell %d/%d %s/%s/seed%d: test acc %.3f (%.0f s)",
            i,
            len(cells),
            cell.regime,
            cell.model,
            cell.seed,
            results[-1]["test_accuracy_last"],
            time.perf_counter() - start,
        )
    return results


def _pool_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_pool(
    run_dir: Path, cells: list[Cell], cfg_dict: dict, device: str | None, workers: int
) -> list[dict]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_pool_init, initargs=(threads,))
    try:
        futures = [pool.submit(run_cell, str(run_dir), cfg_dict, c, device) for c in cells]
        return [f.result() for f in futures]
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (Interrupted): stop the running cells now
        # a killed worker leaves its cell's last checkpoint and a stale lock that a rerun takes over
        for process in list((pool._processes or {}).values()):  # no public API before 3.14
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _run_ray(
    cfg: Config, run_dir: Path, cells: list[Cell], cfg_dict: dict, device: str | None
) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'ganaug[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    ex = cfg.experiment
    task = ray.remote(num_gpus=ex.gpus_per_cell, num_cpus=1, max_retries=ex.retries)(run_cell)
    try:
        refs = [task.remote(str(run_dir.resolve()), cfg_dict, c, device) for c in cells]
        return ray.get(refs)
    finally:
        if started:
            ray.shutdown()
