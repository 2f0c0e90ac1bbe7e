"""Validation of the contract's arrays: image dtype and shape, labels, class names, and the
agreement of the splits on the classes. Each check raises `InputError` naming the file and key."""

from __future__ import annotations

from typing import Any

import numpy as np

from ganaug import InputError
from ganaug.data.medmnist_cache import _medmnist_flag_of, medmnist_class_names


def _check_images(images: np.ndarray, where: str, key: str) -> np.ndarray:
    if images.dtype != np.uint8:
        raise InputError(f"{where}: '{key}' has dtype {images.dtype}; images must be uint8 0..255")
    if images.ndim == 3:
        images = images[..., None]  # grayscale (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise InputError(
            f"{where}: '{key}' has shape {images.shape}; "
            "expected (N, H, W) or (N, H, W, C) with C 1 or 3"
        )
    if len(images) == 0:
        raise InputError(f"{where}: '{key}' holds zero images; every split needs at least one")
    return images


def _check_labels(labels: np.ndarray | None, n: int, where: str, split: str) -> np.ndarray:
    key = f"{split}_labels"
    if labels is None:
        raise InputError(f"{where}: missing key '{key}'; every images array needs labels")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(f"{where}: '{key}' has shape {labels.shape}; expected (N,) or (N, 1)")
    if labels.dtype.kind == "f":  # integral floats (0.0, 1.0, ...) are accepted as integers
        whole = np.isfinite(labels) & (np.abs(labels) < 2**31)
        whole[whole] = labels[whole] == np.round(labels[whole])
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise InputError(
                f"{where}: '{key}' holds non-integer values (row {row}: {labels[row]}); labels "
                "must be whole class numbers 0..K-1"
            )
    elif labels.dtype.kind not in "iu":
        raise InputError(f"{where}: '{key}' has dtype {labels.dtype}; labels must be integers")
    if len(labels) != n:
        raise InputError(f"{where}: '{key}' has {len(labels)} labels for {n} images")
    return labels.astype(np.int64)


def _class_names(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], labels: dict[str, np.ndarray], where: str
) -> tuple[tuple[str, ...], str]:
    """The class names and where they were listed ("" when only the labels define them)."""
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < 1:
            raise InputError(f"{where}: 'class_names' must be a 1-D string array")
        listed = tuple(str(n) for n in names)
        twice = sorted({n for n in listed if listed.count(n) > 1})
        if twice:
            raise InputError(
                f"{where}: 'class_names' has {', '.join(map(repr, twice))} more than once; "
                "give each class a distinct name"
            )
        if "num_classes" in meta and int(meta["num_classes"]) != len(listed):
            raise InputError(
                f"{where}: 'class_names' lists {len(listed)} classes but meta num_classes is "
                f"{meta['num_classes']}; make them agree"
            )
        return listed, "class_names"
    if "num_classes" in meta:
        return tuple(str(i) for i in range(int(meta["num_classes"]))), "meta num_classes"
    flag = _medmnist_flag_of(where)
    if flag is not None:
        return medmnist_class_names(flag), f"MedMNIST's {flag} classes"
    top = max(int(lab.max()) for lab in labels.values() if lab.size)
    return tuple(str(i) for i in range(top + 1)), ""


def _check_classes_agree(
    labels: dict[str, np.ndarray], class_names: tuple[str, ...], listed_in: str, where: str
) -> None:
    """A data set with val or test must agree with its train split on the classes.

    Train labels unknown to every other split (when no class list names them), classes no split
    uses (a class list of another length), and classes without train images are refused. A
    train-only file (samples, classic.npz, a selection) may use a subset of its classes.
    """
    others = [s for s in labels if s != "train"]
    if "train" not in labels or not others:
        return
    used = {s: set(np.unique(lab).tolist()) for s, lab in labels.items()}
    if not listed_in:
        unknown = sorted(used["train"] - set().union(*(used[s] for s in others)))
        if unknown:
            raise InputError(
                f"{where}: train_labels use classes {_class_list(unknown)} that no other split "
                f"({'/'.join(others)}) has, and no class_names lists them; fix the labels or "
                "add class_names (one name per class)"
            )
    unused = [c for c in range(len(class_names)) if not any(c in u for u in used.values())]
    if unused:
        fix = (
            f"fix the labels or give one name per class used ({listed_in})"
            if listed_in
            else "number the classes 0..K-1 without gaps"
        )
        source = listed_in or "the largest label"
        raise InputError(
            f"{where}: {source} gives {len(class_names)} classes but no split has a label "
            f"{_class_list(unused)}; {fix}"
        )
    no_train = [c for c in range(len(class_names)) if c not in used["train"]]
    if no_train:
        holders = "/".join(s for s in others if used[s] & set(no_train))
        names = ", ".join(f"{c} ({class_names[c]!r})" for c in no_train[:8])
        which = f"class {names} has" if len(no_train) == 1 else f"classes {names} have"
        raise InputError(
            f"{where}: {which} no train images, only {holders} images; every class needs "
            "train images: fix the labels or the split"
        )


def _class_list(classes: list[int]) -> str:
    shown = ", ".join(map(str, classes[:8]))
    return shown + (f" and {len(classes) - 8} more" if len(classes) > 8 else "")
