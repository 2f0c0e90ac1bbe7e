"""The npz contract: reading (pickles refused) and validating it into an `ImageSet`, and writing it.

The layout is MedMNIST's own (`{split}_images` uint8 (N, H, W, C), `{split}_labels`), plus
optional `class_names`, a JSON `meta` with provenance, and per-image sidecar arrays such as
`train_seeds` or `train_source_index`. Every stage reads and writes it through this module.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ganaug import InputError
from ganaug.data.checks import _check_classes_agree, _check_images, _check_labels, _class_names
from ganaug.data.imageset import SPLITS, ImageSet
from ganaug.runtime import atomic_path


def read_npz(path: Path | str, required: tuple[str, ...] = ("train",)) -> ImageSet:
    """Read and validate a contract npz (pickles refused). Bad files raise InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not an npz file (not a zip archive); give a .npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as err:
        if "pickle" in str(err).lower() or "object" in str(err).lower():
            raise InputError(
                f"{path}: holds object arrays (pickled data), refused for safety; "
                "save plain numeric arrays"
            ) from None
        raise InputError(f"{path}: unreadable npz ({err})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(f"{path}: unreadable or truncated npz ({err}); write it again") from None
    return imageset_from_arrays(arrays, str(path), required)


def imageset_from_arrays(
    arrays: dict[str, np.ndarray], where: str, required: tuple[str, ...] = ("train",)
) -> ImageSet:
    """Validate contract arrays into an ImageSet; `where` names the source in errors."""
    meta: dict[str, Any] = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            raise InputError(
                f"{where}: key 'meta' is not a JSON string; remove or fix it"
            ) from None
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split in SPLITS:
        key = f"{split}_images"
        if key not in arrays:
            if split in required:
                raise InputError(f"{where}: missing key '{key}'; the contract needs it")
            continue
        images[split] = _check_images(arrays[key], where, key)
        labels[split] = _check_labels(
            arrays.get(f"{split}_labels"), len(images[split]), where, split
        )
    if not images:
        raise InputError(f"{where}: no '{{split}}_images' keys; expected train_images at least")
    shapes = {img.shape[1:] for img in images.values()}
    if len(shapes) > 1:
        raise InputError(f"{where}: splits have different image shapes {sorted(shapes)}")
    class_names, listed_in = _class_names(arrays, meta, labels, where)
    for split, lab in labels.items():
        if lab.size and (lab.min() < 0 or lab.max() >= len(class_names)):
            raise InputError(
                f"{where}: {split}_labels has values outside 0..{len(class_names) - 1} "
                f"(min {lab.min()}, max {lab.max()}); fix the labels or class_names"
            )
    _check_classes_agree(labels, class_names, listed_in, where)
    extras = {}
    for key, value in arrays.items():
        split = key.split("_", 1)[0]
        if split in images and key not in (f"{split}_images", f"{split}_labels"):
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise InputError(f"{where}: key '{key}' holds NaN or infinite values")
            if value.shape[:1] != (len(images[split]),):
                raise InputError(
                    f"{where}: key '{key}' has {value.shape[:1]} rows, expected "
                    f"{len(images[split])} (one per {split} image)"
                )
            extras[key] = value
    return ImageSet(images, labels, class_names, meta, extras)


def write_npz(path: Path | str, data: ImageSet) -> None:
    """Write the contract atomically: labels int64 (N,), class_names, meta JSON, sidecars."""
    arrays: dict[str, np.ndarray] = {}
    for split in data.splits:
        arrays[f"{split}_images"] = np.ascontiguousarray(data.images[split], dtype=np.uint8)
        arrays[f"{split}_labels"] = np.asarray(data.labels[split], dtype=np.int64)
    arrays["class_names"] = np.array(data.class_names, dtype=np.str_)
    arrays["meta"] = np.array(json.dumps(data.meta, sort_keys=True))
    arrays.update(data.extras)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
