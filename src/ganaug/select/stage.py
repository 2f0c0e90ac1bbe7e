"""The selection stage: score, label and keep the top K raw samples under per-class quotas.

`select_samples` checks its inputs, trains the labeller (labeller.py), builds the per-sample table
(table.py, scores.py, memorisation.py), keeps samples under the quotas (quotas.py) and writes
selection.csv, fidelity.json (fidelity.py, memorisation.py) and the figures (figures.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ganaug import InputError
from ganaug.config import Config
from ganaug.data import ImageSet, require_train_only
from ganaug.runtime import atomic_write_json, atomic_write_text, pick_device, provenance
from ganaug.select.fidelity import fidelity_block, inception_block
from ganaug.select.figures import write_figures
from ganaug.select.labeller import train_labeller
from ganaug.select.memorisation import memorisation_block, reference_sets
from ganaug.select.quotas import choose, quota_counts
from ganaug.select.scores import SCORES
from ganaug.select.table import score_samples, selection_csv

log = logging.getLogger("ganaug")


def check_inputs(
    raw: ImageSet, real: ImageSet, cfg: Config, trained_on: ImageSet | None = None
) -> None:
    """Leakage guard and shape checks, before any work."""
    weights = cfg.select.inception_weights
    if weights and not Path(weights).is_file():
        raise InputError(f"select.inception_weights={weights}: file not found; give a local file")
    require_train_only(raw, "the synthetic samples", "selection")
    require_train_only(real, "the real set", "selection")
    if raw.image_shape != real.image_shape:
        raise InputError(
            f"samples are {raw.image_shape} images but the real set is {real.image_shape}; "
            "sample from a GAN trained at the real set's data.size"
        )
    if raw.num_classes != real.num_classes:
        raise InputError(
            f"samples have {raw.num_classes} classes but the real set {real.num_classes}; "
            "use the real set the GAN was trained on"
        )
    if trained_on is None:
        return
    where = "the set the GAN trained on (trained_on, --trained-on)"
    require_train_only(trained_on, where, "selection")
    if trained_on.image_shape != real.image_shape:
        raise InputError(
            f"{where} holds {trained_on.image_shape} images but the real set "
            f"{real.image_shape}; give the set the GAN trained on from this real set, e.g. "
            "classic.npz"
        )


def ranked_by(table: dict[str, np.ndarray], cfg: Config) -> list[str]:
    """The scores whose ranks made combined_rank: available for these samples, weight > 0."""
    return [
        score.name
        for score in SCORES.values()
        if table[f"{score.name}_rank"][0] != -1 and getattr(cfg.select, score.weight) > 0
    ]


def select_samples(
    raw: ImageSet,
    real: ImageSet,
    cfg: Config,
    out_dir: Path,
    *,
    checkpoint: Path | None = None,
    device: torch.device | str | None = None,
    trained_on: ImageSet | None = None,
) -> ImageSet:
    """Score, label and select `raw`'s samples; write selection.csv, fidelity.json and figures.

    Only real's train split trains the labeller and drives the selection; its test split is used
    for the separately reported fidelity-vs-test numbers only. `trained_on` (train split only) is
    the set the GAN trained on, e.g. classic.npz: samples are then also checked for copies of its
    images. Returns the selected train-only set.
    """
    check_inputs(raw, real, cfg, trained_on)
    scfg, out_dir, names = cfg.select, Path(out_dir), real.class_names
    quotas = quota_counts(scfg.quota, scfg.k, real.class_counts("train"))  # bad quota: fail early
    dev = pick_device(str(device) if device is not None else cfg.runtime.device)
    labeller = train_labeller(real, cfg, dev)
    table, feats = score_samples(
        raw, real, labeller, cfg, checkpoint=checkpoint, device=dev, trained_on=trained_on
    )
    kept, reasons, counts = choose(table, quotas, names, cfg)
    used = ranked_by(table, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "selection.csv", selection_csv(table, kept, reasons, names))
    fidelity = {
        "feature_extractor": labeller.name,
        "ranked_by": used,
        "raw": fidelity_block(feats, np.ones(len(kept), bool), table["label"], real, cfg),
        "selected": fidelity_block(feats, kept, table["label"], real, cfg),
        "memorisation": memorisation_block(table, kept, scfg.min_nn_distance),
        **inception_block(raw, real, kept, cfg, dev),
    }
    atomic_write_json(out_dir / "fidelity.json", fidelity)
    write_figures(out_dir, raw, reference_sets(real, trained_on), table, kept, real.num_classes)
    labelled = raw.meta.get("labelled") is not False
    meta = provenance(
        "select",
        source_splits={"train": ["synthetic"]},
        samples={k: raw.meta.get(k) for k in ("stage", "checkpoint", "gan_mode", "config_hash")},
        real_source=real.meta.get("source"),
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        config_hash=cfg.section_hash("select", "augment"),
        k=scfg.k,
        quota=scfg.quota,
        label_rule="generator class" if labelled else "labeller argmax",
        **counts,
        n_raw=len(kept),
        n_memorised=sum("memorised" in r for r in reasons),
        feature_extractor=labeller.name,
        ranked_by=used,
    )
    rows = np.flatnonzero(kept)
    extras = {"train_seeds": table["seed"][rows], "train_raw_index": rows.astype(np.int64)}
    log.info("select: kept %d of %d: %s", len(rows), len(kept), counts["kept_counts"])
    images, labels = {"train": raw.images["train"][rows]}, {"train": table["label"][rows]}
    return ImageSet(images, labels, names, meta, extras)
