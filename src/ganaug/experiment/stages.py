"""The upstream stages of a run, each skipped when its artefact exists and was made by the same
config: data, classic augmentation, the generator (training, sampling, selection and the
synthetic training files) and the independent fidelity evaluation."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug import InputError, layout
from ganaug.augment import augment_imageset
from ganaug.config import Config
from ganaug.data import ImageSet, load_spec, read_npz, write_npz
from ganaug.runtime import (
    atomic_write_json,
    make_generator,
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
    from ganaug.generators.loop import train_gan
    from ganaug.generators.sample import sample_images
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
        g = cfg.gan
        raw = sample_images(ckpt, g.n_samples, g.sample_seed, device=device, g=g)
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
