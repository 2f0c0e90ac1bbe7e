"""The whole recipe in one run directory: data -> classic -> GAN -> sampling -> selection -> grid.

Implements the paper's experiment: classifiers trained on three training sets (Table 1 rows),
`none` (the real train split), `classic` (the paper's classic augmentation, 1080 -> 4320) and
`classic+gan` (classic plus the selected synthetic images, each with classic copies: 443 x 3 ->
5649). Optional ablations: `gan` (real + selected synthetic, no classic),
`classic+gan-unselected` (classic + K random raw samples with the same copies, labelled the way
selection labels them) and `synthetic-only` (the selected synthetic set alone, tested on real
images: the train-on-synthetic, test-on-real utility score).

Generators: with `experiment.generator_per_seed` (and more than one seed) seed s trains its own
GAN, samples and selection, seeded from s (gan.seed + s, gan.sample_seed + s * gan.n_samples,
select.seed + s), under gan/seed<s>/ and data/seed<s>/, so a seed's Classic+GAN cell is a draw of
the generator as well as of the classifier. Otherwise one generator under gan/ and data/ serves
every seed (the paper's recipe).

Budget: with `classify.budget: steps` and `classify.steps: 0`, every cell gets the step count of
the largest training set of the grid at classify.epochs, so no regime trains longer than another.

Every upstream artefact is skipped when it exists and was made by the same config (the section
hash in its `meta`); the GAN and every classifier resume from their last checkpoint. The grid of
(regime x model x seed) cells runs sequentially, in a local process pool, or as Ray tasks.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import yaml

from ganaug import InputError
from ganaug.config import Config, config_from_dict, save_config
from ganaug.experiment.grid import grid_step_budget, run_cell, run_grid, train_size
from ganaug.experiment.stages import (
    GAN_REGIMES,
    UPSTREAM,
    Cell,
    _fresh,
    generator_seeds,
    grid_cells,
    load_real,
    random_subset,
    regime_train_files,
    seed_config,
    selection_labels,
    stage_classic,
    stage_data,
    stage_fidelity,
    stage_gan,
    synthetic_copy_config,
    synthetic_dirs,
)
from ganaug.runtime import RunLock, atomic_write_text, record_source, setup_logging

log = logging.getLogger("ganaug")

__all__ = [
    "GAN_REGIMES",
    "_fresh",
    "UPSTREAM",
    "Cell",
    "check_run_config",
    "generator_seeds",
    "grid_cells",
    "grid_step_budget",
    "random_subset",
    "regime_train_files",
    "run_cell",
    "run_experiment",
    "run_grid",
    "seed_config",
    "selection_labels",
    "stage_classic",
    "stage_data",
    "stage_fidelity",
    "stage_gan",
    "synthetic_copy_config",
    "synthetic_dirs",
    "train_size",
]


def check_run_config(cfg: Config, run_dir: Path) -> None:
    """Refuse to mix artefacts of different upstream configs in one run directory."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    try:
        old = config_from_dict(yaml.safe_load(path.read_text()))
    except (InputError, yaml.YAMLError):
        return
    changed = [s for s in UPSTREAM if old.section_hash(s) != cfg.section_hash(s)]
    if changed:
        raise InputError(
            f"{run_dir}: holds a run made with a different {', '.join(changed)} config; "
            "use another --out (or delete that directory to start over)"
        )


def check_generator_settings(cfg: Config) -> None:
    """An unknown gan.family, or select.k above gan.n_samples: refused before anything is
    trained or written."""
    if not any(r in GAN_REGIMES for r in cfg.experiment.regimes):
        return
    from ganaug.generators import get_family

    get_family(cfg.gan.family)
    g = cfg.gan
    if cfg.select.k > g.n_samples:
        raise InputError(
            f"config key select.k: {cfg.select.k} selected from gan.n_samples={g.n_samples} "
            "generated images; lower select.k or raise gan.n_samples"
        )


def run_experiment(cfg: Config, run_dir: Path, *, device: str | None = None) -> Path:
    """Run everything into `run_dir` (resumable) and build the report; returns the report dir."""
    run_dir = Path(run_dir)
    check_run_config(cfg, run_dir)
    check_generator_settings(cfg)
    with RunLock(run_dir):  # removes the directory again if refused before any work
        start = time.perf_counter()
        loaded = load_real(cfg, run_dir)  # bad --data: refused before anything is written
        save_config(cfg, run_dir / "config.yaml")
        setup_logging(log_file=run_dir / "log.txt")
        source = record_source(run_dir, cfg.profile)[-1]
        commit = source["commit"] or "unknown (not a git checkout)"
        dirty = " with uncommitted changes" if source["dirty"] else ""
        log.info("run: %s (profile %s; code %s%s)", run_dir, cfg.profile, commit, dirty)
        real = stage_data(cfg, run_dir, loaded)
        classic = stage_classic(cfg, run_dir, real)
        if any(r in GAN_REGIMES for r in cfg.experiment.regimes):
            for seed in generator_seeds(cfg):
                stage_gan(cfg, run_dir, real, classic, device, seed)
                stage_fidelity(cfg, run_dir, real, device, seed)
        run_grid(cfg, run_dir, device)
        from ganaug.report import build_report

        build_report(run_dir)
        seconds = time.perf_counter() - start
        log.info("run: done in %.0f s; report in %s", seconds, run_dir / "report")
        atomic_write_text(run_dir / "report" / "wall_time.txt", f"{seconds:.1f}\n")
    return run_dir / "report"
