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

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ganaug import InputError, layout
from ganaug.augment import augment_imageset
from ganaug.config import Config, config_from_dict, save_config
from ganaug.data import ImageSet, load_spec, read_npz, write_npz
from ganaug.runtime import (
    RunLock,
    atomic_write_json,
    atomic_write_text,
    make_generator,
    setup_logging,
)

log = logging.getLogger("ganaug")

GAN_REGIMES = ("classic+gan", "gan", "classic+gan-unselected", "synthetic-only")
UPSTREAM = ("data", "augment", "gan", "select")  # sections whose change invalidates artefacts


@dataclass(frozen=True)
class Cell:
    """One classifier training: a pure function of its config and its training files."""

    regime: str
    model: str
    seed: int

    def out_dir(self, run_dir: Path) -> Path:
        return run_dir / "classify" / self.regime / self.model / f"seed{self.seed}"


def regime_train_files(regime: str, synthetic_dir: str = "data") -> tuple[str, ...]:
    """Files (relative to the run dir) whose train splits make up each regime's training set;
    `synthetic_dir` holds the synthetic files of the cell's generator (see synthetic_dirs)."""
    syn = synthetic_dir
    return {
        "none": ("data/real.npz",),
        "classic": ("data/classic.npz",),
        "classic+gan": ("data/classic.npz", f"{syn}/synthetic_classic.npz"),
        "gan": ("data/real.npz", f"{syn}/synthetic.npz"),
        "classic+gan-unselected": ("data/classic.npz", f"{syn}/unselected_classic.npz"),
        "synthetic-only": (f"{syn}/synthetic.npz",),
    }[regime]


def grid_cells(cfg: Config) -> list[Cell]:
    ex = cfg.experiment
    return [Cell(r, m, s) for r in ex.regimes for m in ex.models for s in ex.seeds]


def synthetic_dirs(cfg: Config, seed: int) -> tuple[str, str]:
    """(gan dir, synthetic data dir), relative to the run dir, of the generator seed s uses."""
    ex = cfg.experiment
    return layout.dirs_of(ex.seeds, ex.generator_per_seed, seed)


def generator_seeds(cfg: Config) -> list[int]:
    """The seeds that own a generator: every grid seed, or the first when one serves all."""
    return list(layout.generator_dirs(cfg.experiment.seeds, cfg.experiment.generator_per_seed))


def seed_config(cfg: Config, seed: int) -> Config:
    """The GAN, sampling and selection settings of seed s's generator (shared: unchanged)."""
    if not cfg.experiment.generator_per_seed:
        return cfg
    g, n = cfg.gan, cfg.gan.n_samples
    return cfg.replace(
        gan={"seed": g.seed + seed, "sample_seed": g.sample_seed + seed * n},
        select={"seed": cfg.select.seed + seed},
    )


# ---------------------------------------------------------------------------------------------
# upstream stages, each skipped when its artefact exists with the same config hash


def _read_fresh(
    path: Path, config_hash: str, required: tuple[str, ...] = ("train",)
) -> ImageSet | None:
    """The artefact at `path` when it was made by the same config, else None (rebuild it)."""
    if not path.is_file():
        return None
    try:
        data = read_npz(path, required=required)
    except InputError:
        return None  # a damaged artefact is rebuilt
    return data if data.meta.get("config_hash") == config_hash else None


def _fresh(path: Path, config_hash: str) -> bool:
    return _read_fresh(path, config_hash) is not None


def load_real(cfg: Config, run_dir: Path) -> tuple[ImageSet, bool]:
    """(data/real.npz, True) when it is up to date, else (the data spec loaded, False).

    Writes nothing: a bad --data is refused before the run directory is touched.
    """
    path = run_dir / "data" / "real.npz"
    real = _read_fresh(path, cfg.section_hash("data"), required=("train", "val", "test"))
    return (real, True) if real is not None else (load_spec(cfg), False)


def stage_data(cfg: Config, run_dir: Path, loaded: tuple[ImageSet, bool] | None = None) -> ImageSet:
    """data/real.npz, written unless up to date; `loaded` is load_real's result when known."""
    path = run_dir / "data" / "real.npz"
    real, fresh = loaded or load_real(cfg, run_dir)
    if fresh:
        log.info("data: %s is up to date", path)
        return real
    write_npz(path, real)
    log.info("data: wrote %s (%s train images)", path, len(real.images["train"]))
    return real


def stage_classic(cfg: Config, run_dir: Path, real: ImageSet) -> ImageSet:
    path = run_dir / "data" / "classic.npz"
    classic = _read_fresh(path, cfg.section_hash("data", "augment"))
    if classic is not None:
        return classic
    classic = augment_imageset(
        real,
        cfg,
        source=str(run_dir / "data" / "real.npz"),
        preview=run_dir / "data" / "classic_preview.png",
    )
    write_npz(path, classic)
    log.info("augment: wrote %s (%s images)", path, len(classic.images["train"]))
    return classic


def synthetic_copy_config(cfg: Config) -> Config:
    """Classic copies of each synthetic image: `synthetic_copies` images in total per image.

    The extra copies cycle through vertical flip, colour jitter, horizontal flip (3 -> original,
    vflip, colour: the paper's 443 x 3).
    """
    extra = cfg.experiment.synthetic_copies - 1
    counts = {"n_vflip": 0, "n_color": 0, "n_hflip": 0}
    for i in range(extra):
        counts[("n_vflip", "n_color", "n_hflip")[i % 3]] += 1
    return cfg.replace(augment=counts)


def stage_gan(
    cfg: Config, run_dir: Path, real: ImageSet, classic: ImageSet, device: Any, seed: int = 0
) -> None:
    """Seed s's generator: GAN training on the classic set, sampling, selection and the
    synthetic training files, in synthetic_dirs(cfg, seed)."""
    from ganaug.gan.sample import sample_images
    from ganaug.gan.train import train_gan
    from ganaug.select import select_samples

    gan_dir, syn_dir = synthetic_dirs(cfg, seed)
    cfg = seed_config(cfg, seed)
    data_dir = run_dir / syn_dir
    gan_hash = cfg.section_hash("data", "augment", "gan")
    log.info("gan: generator of seed %d in %s (gan.seed %d)", seed, run_dir / gan_dir, cfg.gan.seed)
    ckpt = train_gan(
        classic, cfg, run_dir / gan_dir, source=str(run_dir / "data/classic.npz"), device=device
    )
    raw_path = data_dir / "synthetic_raw.npz"
    raw = _read_fresh(raw_path, gan_hash)
    if raw is None:
        raw = sample_images(ckpt, cfg.gan.n_samples, cfg.gan.sample_seed, device=device)
        raw.meta["config_hash"] = gan_hash
        write_npz(raw_path, raw)
        raw = read_npz(raw_path)  # selection sees the same arrays whether fresh or resumed
    # "-trained-on": selections made before memorisation was checked against classic are redone
    sel_hash = cfg.section_hash("data", "augment", "gan", "select") + "-trained-on"
    sel_path = data_dir / "synthetic.npz"
    selected = _read_fresh(sel_path, sel_hash)
    if selected is None:
        selected = select_samples(
            raw, real, cfg, data_dir, checkpoint=ckpt, device=device, trained_on=classic
        )
        selected.meta["config_hash"] = sel_hash
        write_npz(sel_path, selected)
        selected = read_npz(sel_path)
    copies_cfg = synthetic_copy_config(cfg)
    write_copies(data_dir / "synthetic_classic.npz", selected, copies_cfg, sel_hash)
    if "classic+gan-unselected" in cfg.experiment.regimes:
        labels = selection_labels(data_dir / "selection.csv", len(raw.images["train"]))
        unselected = random_subset(raw, len(selected.images["train"]), cfg.select.seed, labels)
        write_copies(data_dir / "unselected_classic.npz", unselected, copies_cfg, sel_hash)


def stage_fidelity(cfg: Config, run_dir: Path, real: ImageSet, device: Any, seed: int = 0) -> dict:
    """Seed s's generator measured in an independent feature space (ganaug.evaluate): raw and
    selected samples vs real train, val and test at equal n, and the real-vs-real floor.

    The extractor (trained on the real train split only, never used by selection) is cached in
    evaluation/; the result goes to <synthetic dir>/fidelity_eval.json, redone when the
    selection or the fidelity settings change.
    """
    from ganaug.evaluate import compare_sets, load_or_train_extractor

    syn_dir = run_dir / synthetic_dirs(cfg, seed)[1]
    path = syn_dir / "fidelity_eval.json"
    scfg = seed_config(cfg, seed)
    key = scfg.section_hash("data", "augment", "gan", "select", "fidelity")
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            found = {}
        if found.get("config_hash") == key:
            return found
    extractor = load_or_train_extractor(real, cfg, run_dir / "evaluation", device)
    raw, selected = (read_npz(syn_dir / f) for f in ("synthetic_raw.npz", "synthetic.npz"))
    labels = selection_labels(syn_dir / "selection.csv", len(raw.labels["train"]))
    fakes = {
        "raw": (raw.images["train"], labels),
        "selected": (selected.images["train"], selected.labels["train"]),
    }
    result = compare_sets(extractor, real, fakes, cfg)
    result.update(seed=seed, config_hash=key)
    atomic_write_json(path, result)
    test = result["sets"]["selected"].get("vs_test", {})
    log.info("fidelity: generator of seed %d: selected FID vs test %s (n=%s)", seed,
             test.get("fid"), test.get("n"))  # fmt: skip
    return result


def write_copies(path: Path, data: ImageSet, copies_cfg: Config, config_hash: str) -> None:
    full_hash = f"{config_hash}-{copies_cfg.section_hash('augment', 'experiment')}"
    if _fresh(path, full_hash):
        return
    out = augment_imageset(data, copies_cfg, source=str(path.parent / "synthetic.npz"))
    out.meta["config_hash"] = full_hash
    write_npz(path, out)


def selection_labels(path: Path, n: int) -> np.ndarray:
    """The `label` column of selection.csv (the class selection gave each raw sample), (n,)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        labels = np.full(n, -1, dtype=np.int64)
        for row in rows:
            labels[int(row["index"])] = int(row["label"])
    except (OSError, KeyError, ValueError, IndexError) as err:
        raise InputError(f"{path}: unreadable selection table ({err}); delete it to redo") from None
    if (labels < 0).any():
        raise InputError(f"{path}: labels {len(rows)} of {n} samples; delete it to redo selection")
    return labels


def random_subset(raw: ImageSet, k: int, seed: int, labels: np.ndarray | None = None) -> ImageSet:
    """K random raw samples (the unselected ablation), labelled by `labels` (N,) when given
    (selection's labels: an unconditional generator's own are all 0), else as generated."""
    n = len(raw.images["train"])
    idx = torch.randperm(n, generator=make_generator(seed))[: min(k, n)].sort().values.numpy()
    extras = {key: value[idx] for key, value in raw.extras.items()}
    meta = dict(raw.meta, stage="random-subset", k=int(len(idx)), labelled=True)
    chosen = (raw.labels["train"] if labels is None else labels)[idx]
    return ImageSet(
        {"train": raw.images["train"][idx]},
        {"train": chosen.astype(np.int64)},
        raw.class_names,
        meta,
        extras,
    )


# ---------------------------------------------------------------------------------------------
# the grid


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
    """Training images of a cell (the sum of its files' train splits)."""
    files = regime_train_files(cell.regime, synthetic_dirs(cfg, cell.seed)[1])
    return sum(len(read_npz(run_dir / f).labels["train"]) for f in files)


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


# ---------------------------------------------------------------------------------------------
# the whole run


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


def check_selection_size(cfg: Config) -> None:
    """select.k above gan.n_samples: refused before anything is trained or written."""
    if not any(r in GAN_REGIMES for r in cfg.experiment.regimes):
        return
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
    check_selection_size(cfg)
    with RunLock(run_dir):  # removes the directory again if refused before any work
        start = time.perf_counter()
        loaded = load_real(cfg, run_dir)  # bad --data: refused before anything is written
        save_config(cfg, run_dir / "config.yaml")
        setup_logging(log_file=run_dir / "log.txt")
        log.info("run: %s (profile %s)", run_dir, cfg.profile)
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
