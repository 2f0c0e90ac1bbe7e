"""The selection table: one row per raw sample with its labelling, scores and distances, and its
selection.csv form.

Labelling columns: `gen_label` the generator's class (-1 for unconditional samples);
`labeller_label` the labeller's argmax and `labeller_confidence` its top probability; `label`, the
class a sample counts for: for labelled samples (conditional / per_class generators,
raw.meta["labelled"] not False) the generator's class, with `agree` saying whether the labeller
agrees; for unconditional samples the labeller's label. `confidence`: the labeller's probability
of `label` (for unconditional samples this equals `labeller_confidence`).

Then the registered scores' columns and `combined_rank` (scores.py), the memorisation distances
(memorisation.py) and `nn_feature`, the Euclidean distance to the nearest real train image in
labeller feature space. selection.csv adds `label_name`, `kept` and `reason`; same inputs, config
and seed give an identical file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from ganaug.config import Config
from ganaug.data import ImageSet
from ganaug.metrics import pairwise_distances
from ganaug.select.labeller import Labeller
from ganaug.select.memorisation import nearest_columns, reference_sets
from ganaug.select.scores import ScoreInputs, score_columns


def score_samples(
    raw: ImageSet,
    real: ImageSet,
    labeller: Labeller,
    cfg: Config,
    *,
    checkpoint: Path | None,
    device: torch.device,
    trained_on: ImageSet | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every score of every raw sample (one array per selection.csv column), plus features."""
    images = raw.images["train"]
    n = len(images)
    labelled = raw.meta.get("labelled") is not False
    probs, feats = labeller.predict(images)
    feats_real = {
        s: labeller.predict(real.images[s])[1] for s in ("train", "test") if s in real.images
    }
    labeller_label = probs.argmax(1).astype(np.int64)
    label = raw.labels["train"].astype(np.int64) if labelled else labeller_label
    confidence = probs[np.arange(n), label].astype(np.float64)
    inputs = ScoreInputs(
        images=images,
        label=label,
        labelled=labelled,
        probs=probs,
        confidence=confidence,
        features=feats,
        checkpoint=checkpoint,
        device=device,
        real_features=feats_real.get("train"),
        knn_k=cfg.select.prdc_k,
    )
    seeds = raw.extras.get("train_seeds", np.full(n, -1, dtype=np.int64))
    table = {
        "index": np.arange(n),
        "seed": np.asarray(seeds, dtype=np.int64),
        "gen_label": raw.labels["train"] if labelled else np.full(n, -1),
        "labeller_label": labeller_label,
        "agree": np.where(labeller_label == label, "yes", "no") if labelled else np.full(n, ""),
        "label": label,
        "labeller_confidence": probs.max(1).astype(np.float64),
        "confidence": confidence,
        **score_columns(inputs, cfg.select),  # critic, critic_rank, confidence_rank, combined
        **nearest_columns(images, reference_sets(real, trained_on), device),
        "nn_feature": pairwise_distances(feats, feats_real["train"]).min(axis=1),
    }
    return table, {"raw": feats, **feats_real}


def selection_csv(
    table: dict[str, np.ndarray], kept: np.ndarray, reasons: list[list[str]], names: tuple[str, ...]
) -> str:
    """One row per raw sample: every score, label (and its name), kept yes/no, reason."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*table, "label_name", "kept", "reason"])
    for i in range(len(kept)):
        cells = [_cell(column[i]) for column in table.values()]
        reason = "kept" if kept[i] else "+".join(reasons[i]) or "quota_full"
        writer.writerow([*cells, names[table["label"][i]], "yes" if kept[i] else "no", reason])
    return buf.getvalue()


def _cell(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.6g}"
    return str(value)
