"""Independent fidelity: FID, KID and PRDC in a feature space that selection cannot have tuned.

The paper reports no fidelity numbers. selection's fidelity.json measures them in the feature
space of the selection labeller, the network that picked the images, so "selected beats raw" there
is partly circular; and raw (about 2000) and selected (443) sets differ in n, which biases FID and
PRDC on their own. This module measures them apart from selection:
- the features are the penultimate layer of `fidelity.extractor` (by default another architecture
  than the labeller's), trained from scratch with its own seed on the REAL TRAIN split only: no
  classic augmentation, never val/test, never synthetic images, never used by selection;
- every comparison subsamples both sides, without replacement, to the same n (`fidelity.n`, or
  the smaller side), drawn from a numpy generator seeded with `fidelity.draw_seed`;
- `floor` holds the real-vs-real distances (train/val/test pairs) in the same space and at equal
  n, so a reader can tell a small FID from sampling noise.

The trained extractor is cached as `extractor-<key>.pt`; the key covers the extractor-training
fields of the fidelity section (extractor, epochs, batch_size, lr, seed) and the bytes of the real
train images and labels. Deviation from a whole-section key: changing n, the KID / PRDC settings or
draw_seed reuses the extractor, since none of them changes how it is trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganaug import InputError
from ganaug.classify import MODELS, build_model, predict, train_from_scratch
from ganaug.config import Config
from ganaug.data import ImageSet, require_train_only
from ganaug.metrics import fidelity_summary
from ganaug.runtime import (
    FastPaths,
    atomic_torch_save,
    fast_paths,
    pick_device,
    prepare_module,
    safe_torch_load,
)

log = logging.getLogger("ganaug")

TRAINING_FIELDS = ("extractor", "epochs", "batch_size", "lr", "seed")  # what the cache key covers
REAL_SPLITS = ("train", "val", "test")
FLOOR_PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))


@dataclass
class Extractor:
    """A classifier trained on the real train split only, used as images -> features."""

    model: nn.Module  # eval mode, on `device`
    device: torch.device
    fast: FastPaths
    info: dict[str, Any]  # name, seed, epochs, n_train, data_hash, cache_file: JSON-ready

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate pooled features (N, D) of uint8 images (N, H, W, C)."""
        return predict(self.model, images, device=self.device, fast=self.fast)[1]


# ---------------------------------------------------------------------------------------------
# the extractor: trained once per (training settings, real train data), then loaded


def train_data_hash(real: ImageSet) -> str:
    """Short sha256 of the real train images and labels (dtype, shape and bytes)."""
    digest = hashlib.sha256()
    for array in (real.images["train"], real.labels["train"]):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()[:16]


def extractor_key(cfg: Config, data_hash: str) -> str:
    """Cache key: the extractor-training fields of the fidelity section plus the data hash."""
    fields = {name: getattr(cfg.fidelity, name) for name in TRAINING_FIELDS}
    text = json.dumps({"fidelity": fields, "data": data_hash}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_extractor(
    real: ImageSet, cfg: Config, device: torch.device, fast: FastPaths
) -> nn.Module:
    """`fidelity.extractor` trained from scratch on the real train split, no evaluation at all."""
    fcfg = cfg.fidelity
    model, losses = train_from_scratch(
        fcfg.extractor,
        torch.from_numpy(real.images["train"]),
        torch.from_numpy(real.labels["train"].astype(np.int64)),
        real.num_classes,
        epochs=fcfg.epochs,
        lr=fcfg.lr,
        batch_size=fcfg.batch_size,
        seed=fcfg.seed,
        device=device,
        fast=fast,
    )
    log.info(
        "fidelity extractor %s: %d real train images, %d epochs, final loss %.4f",
        *(fcfg.extractor, len(real.labels["train"]), fcfg.epochs, losses[-1]),
    )
    return model


def load_or_train_extractor(
    real: ImageSet, cfg: Config, cache_dir: Path, device: torch.device | str | None = None
) -> Extractor:
    """The extractor from cache_dir/extractor-<key>.pt, trained and saved there when absent.

    Only `real`'s train split is read; its val/test splits (if any) never reach the extractor.
    """
    fcfg = cfg.fidelity
    if fcfg.extractor not in MODELS:
        valid = ", ".join(MODELS)
        raise InputError(f"fidelity.extractor {fcfg.extractor!r}: unknown model; valid: {valid}")
    if "train" not in real.images:
        raise InputError("the real set has no train split to train the fidelity extractor on")
    require_train_only(real, "the real set", "the fidelity extractor")
    dev = pick_device(str(device) if device is not None else cfg.runtime.device)
    fast = fast_paths(cfg.runtime, dev)
    data_hash = train_data_hash(real)
    path = Path(cache_dir) / f"extractor-{extractor_key(cfg, data_hash)}.pt"
    model = _load_extractor(path, data_hash, real) if path.is_file() else None
    if model is not None:
        prepare_module(model.to(dev), fast)  # train_plain prepares the model it trains
    else:
        model = train_extractor(real, cfg, dev, fast)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        ckpt = {
            "model": state,
            "model_name": fcfg.extractor,
            "num_classes": real.num_classes,
            "in_channels": real.image_shape[-1],
            "data_hash": data_hash,
            "training": {name: getattr(fcfg, name) for name in TRAINING_FIELDS},
        }
        atomic_torch_save(ckpt, path)
    info = {
        "name": fcfg.extractor,
        "seed": fcfg.seed,
        "epochs": fcfg.epochs,
        "n_train": len(real.labels["train"]),
        "data_hash": data_hash,
        "cache_file": path.name,
    }
    return Extractor(model=model.eval(), device=dev, fast=fast, info=info)


def _load_extractor(path: Path, data_hash: str, real: ImageSet) -> nn.Module | None:
    """The cached model, or None (logged) when the file is unreadable or does not fit."""
    try:
        ckpt = safe_torch_load(path)
        fits = ckpt["data_hash"] == data_hash and ckpt["num_classes"] == real.num_classes
        model = build_model(ckpt["model_name"], ckpt["num_classes"], ckpt["in_channels"])
        model.load_state_dict(ckpt["model"])
    except (InputError, KeyError, TypeError, RuntimeError) as err:
        log.warning("%s: unusable cached extractor (%s); training it again", path, err)
        return None
    if not fits:
        log.warning("%s: cached extractor of other data; training it again", path)
        return None
    log.info("fidelity extractor loaded from %s", path)
    return model


# ---------------------------------------------------------------------------------------------
# comparisons at equal n


def equal_draw(size_a: int, size_b: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n,) of set a and (n,) of set b, without replacement, from a generator seeded `seed`.

    The same sizes, n and seed always give the same rows, whatever else is compared.
    """
    rng = np.random.default_rng(seed)
    rows_a = np.sort(rng.choice(size_a, n, replace=False))
    rows_b = np.sort(rng.choice(size_b, n, replace=False))
    return rows_a, rows_b


def compare_features(
    real: np.ndarray | None,
    fake: np.ndarray | None,
    size: tuple[int, int],
    cfg: Config,
    n: int | None = None,
) -> dict:
    """fidelity_summary of `fake` against `real` (features), both subsampled to equal n.

    `size` is (real, fake) set sizes; a side may be None when it has fewer than 2 images. `n`
    defaults to fidelity.n, or when that is 0 the smaller size. The result records n, the
    available sizes and, when the comparison cannot run, why it was skipped.
    """
    fcfg = cfg.fidelity
    n = n or fcfg.n or min(size)
    out: dict[str, Any] = {"available": {"real": size[0], "fake": size[1]}}
    if n > min(size) or n < 2 or real is None or fake is None:
        reason = f"needs {max(n, 2)} images per side, has {size[0]} real and {size[1]} fake"
        log.warning("fidelity comparison skipped: %s", reason)
        return {"n": None, "skipped": reason, **out}
    rows_real, rows_fake = equal_draw(size[0], size[1], n, fcfg.draw_seed)
    summary = fidelity_summary(
        real[rows_real],
        fake[rows_fake],
        kid_subset_size=fcfg.kid_subset_size,
        kid_subsets=fcfg.kid_subsets,
        prdc_k=fcfg.prdc_k,
        seed=fcfg.draw_seed,
    )
    return {**summary, **out}


def compare_sets(
    extractor: Extractor,
    real: ImageSet,
    fakes: dict[str, tuple[np.ndarray, np.ndarray]],
    cfg: Config,
) -> dict[str, Any]:
    """Every fake set against every real split present, plus the real-vs-real floor.

    `fakes` maps a set name to (uint8 images (N, H, W, C), labels (N,)). Returns a JSON-ready
    {"extractor": {...}, "note": str, "settings": {...},
     "sets": {name: {"vs_train": C, "vs_val": C, "vs_test": C}},
     "floor": {"train_vs_val": C, "train_vs_test": C, "val_vs_test": C}}
    where C holds n, n_real, kid_mean, kid_std, fid, precision, recall, density, coverage,
    prdc_k and available sizes (or n None and `skipped`).
    """
    for name, (images, labels) in fakes.items():
        if tuple(images.shape[1:]) != tuple(real.image_shape) or len(images) != len(labels):
            raise InputError(
                f"fake set {name!r}: {len(images)} images {tuple(images.shape[1:])} with "
                f"{len(labels)} labels; expected the real set's {real.image_shape} and one label "
                "per image"
            )
    splits = [s for s in REAL_SPLITS if s in real.images]
    sizes = {s: len(real.images[s]) for s in splits}
    sizes.update({f"fake:{name}": len(images) for name, (images, _) in fakes.items()})
    sources = {s: real.images[s] for s in splits}
    sources.update({f"fake:{name}": images for name, (images, _) in fakes.items()})
    feats = {k: extractor.features(v) if len(v) >= 2 else None for k, v in sources.items()}

    # one n per reference split, shared by every fake set and the floor against that split, so
    # no set compared with another gains (or loses) from its size: FID is biased by n
    usable = [n for key, n in sizes.items() if key.startswith("fake:") and n >= 2]
    common = {s: cfg.fidelity.n or min([sizes[s], *usable]) for s in splits}

    def compare(ref: str, other: str, split: str) -> dict:
        size = (sizes[ref], sizes[other])  # val vs test: the smaller of the two when fewer
        n = common[split] if cfg.fidelity.n else min(common[split], *size)
        return compare_features(feats[ref], feats[other], size, cfg, n)

    sets = {name: {f"vs_{s}": compare(s, f"fake:{name}", s) for s in splits} for name in fakes}
    floor = {  # real images the generator trained on vs held-out ones, at that split's n
        f"{a}_vs_{b}": compare(b, a, b) for a, b in FLOOR_PAIRS if a in sizes and b in sizes
    }
    fcfg, info = cfg.fidelity, extractor.info
    note = (
        f"features: penultimate layer of {info['name']} trained from scratch (seed {info['seed']}, "
        f"{info['epochs']} epochs) on the real train split only ({info['n_train']} images); it "
        "never saw val/test or synthetic images and was never used by selection. Both sides of "
        "every comparison are subsampled without replacement to equal n; 'floor' is real vs real "
        "at equal n in the same space, the scale of sampling noise; val_vs_test compares two "
        "splits the extractor never saw, while train_vs_* is inflated by its training on train."
    )
    settings = {
        "n": fcfg.n,
        "draw_seed": fcfg.draw_seed,
        "kid_subset_size": fcfg.kid_subset_size,
        "kid_subsets": fcfg.kid_subsets,
        "prdc_k": fcfg.prdc_k,
    }
    return {
        "extractor": dict(info),
        "note": note,
        "settings": settings,
        "sets": sets,
        "floor": floor,
    }
