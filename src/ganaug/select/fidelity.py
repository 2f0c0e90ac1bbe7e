"""fidelity.json's metric blocks: how close the raw and the selected samples are to real images.

Not in the paper, which reports no fidelity numbers. KID, FID and precision/recall/density/coverage
on the labeller's features, for the raw and the selected sets, overall and per class (by `label`),
against the real train split and, reported apart and never used for selection, against the real
test split; and, when select.inception_weights names a local file, an Inception FID (torchvision
pool features, not comparable to published FIDs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganaug import InputError
from ganaug.config import Config
from ganaug.data import ImageSet
from ganaug.metrics import fidelity_report, frechet_distance, inception_features, inception_model
from ganaug.runtime import safe_torch_load


def fidelity_block(
    feats: dict[str, np.ndarray],
    fake_mask: np.ndarray,
    labels: np.ndarray,
    real: ImageSet,
    cfg: Config,
) -> dict[str, object]:
    """F of fidelity.json for the masked fakes: vs the real train split and (apart) vs test."""
    scfg = cfg.select
    kwargs = {
        "kid_subset_size": scfg.kid_subset_size,
        "kid_subsets": scfg.kid_subsets,
        "prdc_k": scfg.prdc_k,
        "seed": scfg.seed,
    }
    fake, fake_labels = feats["raw"][fake_mask], labels[fake_mask]
    return {
        f"vs_{split}": fidelity_report(
            feats[split], real.labels[split], fake, fake_labels, real.class_names, **kwargs
        )
        if split in feats
        else None
        for split in ("train", "test")
    }


def load_inception(weights: Path) -> torch.nn.Module:
    """torchvision inception_v3 from a local state-dict file (weights_only load)."""
    state = safe_torch_load(weights)
    try:
        return inception_model(state.get("state_dict", state) if isinstance(state, dict) else {})
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0][:120]
        raise InputError(
            f"select.inception_weights={weights}: not torchvision inception_v3 weights ({first})"
        ) from None


def inception_block(
    raw: ImageSet, real: ImageSet, kept: np.ndarray, cfg: Config, device: torch.device
) -> dict[str, object]:
    """{"inception": FIDs of raw and selected vs train and test} when inception_weights is set."""
    weights = cfg.select.inception_weights
    if not weights:
        return {}
    model = load_inception(Path(weights)).to(device)
    fake = inception_features(model, raw.images["train"], device=device)
    splits = [s for s in ("train", "test") if s in real.images]  # val is never looked at
    ref = {s: inception_features(model, real.images[s], device=device) for s in splits}

    def fids(mask: np.ndarray) -> dict[str, float | None]:
        enough = mask.sum() >= 2
        return {
            f"vs_{s}": frechet_distance(r, fake[mask]) if enough else None for s, r in ref.items()
        }

    return {
        "inception": {
            "weights": weights,
            "note": "torchvision inception_v3 pool features; not comparable to published FIDs",
            "raw": fids(np.ones(len(kept), dtype=bool)),
            "selected": fids(kept),
        }
    }
