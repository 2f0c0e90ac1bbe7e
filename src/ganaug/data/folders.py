"""Image folders as a data spec: `root/{train,val,test}/<class>/*` or `root/<class>/*`, the latter
split by a seeded stratified split. Images that resolve outside the root, decompression bombs and
unreadable files are `InputError`s."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganaug import InputError
from ganaug.config import DataConfig
from ganaug.data.imageset import SPLITS, ImageSet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def read_image_folder(root: Path, dcfg: DataConfig) -> ImageSet:
    """`root/{train,val,test}/<class>/*` or `root/<class>/*` (then a seeded stratified split).

    Class order is the sorted class-folder names, or `root/classes.txt` (one per line) when
    present; it is saved in the output's class_names and never re-derived downstream.
    """
    root = root.resolve()
    has_splits = (root / "train").is_dir()
    split_roots = (
        {s: root / s for s in SPLITS if (root / s).is_dir()} if has_splits else {"all": root}
    )
    class_file = root / "classes.txt"
    first_root = split_roots[next(iter(split_roots))]
    if class_file.is_file():
        class_names = tuple(n.strip() for n in class_file.read_text().splitlines() if n.strip())
        twice = sorted({n for n in class_names if class_names.count(n) > 1})
        if twice:
            raise InputError(
                f"{class_file}: lists {', '.join(twice)} more than once; one line per class"
            )
        source = f"{class_file}: add it there"
    else:
        class_names = tuple(sorted(_class_folders(first_root)))
        source = f"the class folders of {first_root}: add it there"
    if len(class_names) < 2:
        raise InputError(f"{root}: found {len(class_names)} class folder(s); need at least two")
    for split_root in split_roots.values():
        extra = sorted(set(_class_folders(split_root)) - set(class_names))
        if extra:
            raise InputError(
                f"{split_root / extra[0]}: class folder not among the classes "
                f"({', '.join(class_names)}) of {source}, or remove it"
            )
    per_split = {s: _read_class_folders(r, root, class_names) for s, r in split_roots.items()}
    if not has_splits:
        per_split = _stratified_split(*per_split["all"], dcfg)
    images = {s: v[0] for s, v in per_split.items()}
    labels = {s: v[1] for s, v in per_split.items()}
    sources = {s: ([s] if has_splits else ["all"]) for s in images}
    if not has_splits:
        sources["train"] = ["train"]  # held-out val/test files never enter train
    return ImageSet(images, labels, class_names, {"source_splits": sources}, {})


def _class_folders(split_root: Path) -> list[str]:
    return [d.name for d in split_root.iterdir() if d.is_dir() and not d.name.startswith(".")]


def _read_class_folders(
    split_root: Path, root: Path, class_names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    images, labels, first_shape = [], [], None
    for label, name in enumerate(class_names):
        folder = split_root / name
        files = (
            sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if folder.is_dir()
            else []
        )
        if not files:
            raise InputError(
                f"{folder}: class folder has no images (.png/.jpg); add images or remove the class"
            )
        for file in files:
            img = _read_image(file, root)
            if first_shape is None:
                first_shape = img.shape[:2]
            elif img.shape[:2] != first_shape:
                raise InputError(
                    f"{file}: image is {img.shape[1]}x{img.shape[0]} but earlier ones "
                    f"are {first_shape[1]}x{first_shape[0]}; make all sizes equal"
                )
            images.append(img)
            labels.append(label)
    channels = 3 if any(i.ndim == 3 for i in images) else 1
    stack = np.stack([_as_channels(i, channels) for i in images])
    return stack, np.array(labels, dtype=np.int64)


def _read_image(file: Path, root: Path) -> np.ndarray:
    real = file.resolve()
    if root not in real.parents:
        raise InputError(
            f"{file}: resolves outside the dataset root {root} (symlink or '..'); "
            "copy the image into the folder"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(real) as img:
                img.load()
                mode = "L" if img.mode in ("L", "I;16", "I", "1") else "RGB"
                return np.asarray(img.convert(mode))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"{file}: image exceeds the decompression-bomb pixel limit; downscale it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{file}: unreadable image ({err}); replace or remove it") from None


def _as_channels(img: np.ndarray, channels: int) -> np.ndarray:
    if img.ndim == 2:
        img = img[..., None]
    return np.repeat(img, 3, axis=-1) if channels == 3 and img.shape[-1] == 1 else img


def _stratified_split(
    images: np.ndarray, labels: np.ndarray, dcfg: DataConfig
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(dcfg.split_seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * dcfg.val_fraction))
        n_test = int(round(len(idx) * dcfg.test_fraction))
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val : n_val + n_test])
        parts["train"].append(idx[n_val + n_test :])
    out = {}
    for split, chunks in parts.items():
        idx = np.sort(np.concatenate(chunks))
        if len(idx) == 0:
            raise InputError(
                f"split {split} would be empty; add images or change data.{split}_fraction"
            )
        out[split] = (images[idx], labels[idx])
    return out
