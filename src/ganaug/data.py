"""Data layer: load a data spec, validate it, resize it, and read/write the npz contract.

Implements the paper's preprocessing (bicubic resize of the fundus images to 64x64x3). The npz
contract is MedMNIST's own layout (`{split}_images` uint8 (N, H, W, C), `{split}_labels`), plus
optional `class_names`, a JSON `meta` with provenance, and per-image sidecar arrays such as
`train_seeds` or `train_source_index`. Every stage reads and writes it through this module.

Deviation from the paper: offline, the 64 px images are made from MedMNIST's 28 px file by bicubic
upsampling (the paper resized the full-size fundus photographs).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganaug import InputError
from ganaug.config import Config, DataConfig
from ganaug.runtime import atomic_path, provenance

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MEDMNIST_SIZES = (28, 64, 128, 224)


@dataclass
class ImageSet:
    """Images and labels per split, with class names, provenance and per-image sidecars."""

    images: dict[str, np.ndarray]  # split -> uint8 (N, H, W, C)
    labels: dict[str, np.ndarray]  # split -> int64 (N,)
    class_names: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. "train_seeds"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s in self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        first = self.images[self.splits[0]]
        return tuple(first.shape[1:])  # type: ignore[return-value]

    def class_counts(self, split: str = "train") -> list[int]:
        return np.bincount(self.labels[split], minlength=self.num_classes).tolist()

    def source_splits(self, split: str = "train") -> list[str]:
        """Which source splits the images of `split` came from (for the leakage guard)."""
        recorded = self.meta.get("source_splits", {})
        return list(recorded.get(split, [split]))


# ---------------------------------------------------------------------------------------------
# reading and writing the contract


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def require_train_only(data: ImageSet, where: str, user: str) -> None:
    """Leakage guard: `user` (GAN training, selection, labeller) sees train-derived images only."""
    sources = data.source_splits("train")
    bad = [s for s in sources if s not in ("train", "synthetic")]
    if bad:
        raise InputError(
            f"{where}: its training images derive from the {'/'.join(bad)} split; {user} accepts "
            "train-split images only (no val/test leakage). Use real.npz or classic.npz"
        )


# ---------------------------------------------------------------------------------------------
# data specs


def load_spec(cfg: Config) -> ImageSet:
    """Load `cfg.data.spec` (npz path, image folder or MedMNIST flag), resized to data.size."""
    dcfg = cfg.data
    spec = dcfg.spec
    path = Path(spec).expanduser()
    if path.is_dir():
        raw, source = read_image_folder(path, dcfg), path
    elif path.is_file() or spec.endswith(".npz"):
        raw, source = read_npz(path, required=SPLITS), path
    else:
        source = medmnist_file(spec, dcfg)
        raw = read_npz(source, required=SPLITS)
        raw.class_names = medmnist_class_names(spec)
    images = {
        split: convert_channels(resize_images(img, dcfg.size), dcfg.channels)
        for split, img in raw.images.items()
    }
    meta = provenance(
        "data",
        source=str(spec),
        source_sha256=file_sha256(source) if source.is_file() else raw.meta.get("source_sha256"),
        source_splits={s: raw.source_splits(s) for s in raw.splits},
        source_size=list(raw.image_shape),
        size=dcfg.size,
        num_classes=raw.num_classes,
        config_hash=cfg.section_hash("data"),
        resize="bicubic (PIL)",
    )
    return ImageSet(images, raw.labels, raw.class_names, meta, {})


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize (PIL, the paper's interpolation) of uint8 (N, H, W, C) to (N, size, size, C).

    A per-image loop is fine here: it runs once per data set, never inside training.
    """
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(images[i, :, :, 0] if c == 1 else images[i])
        res = np.asarray(img.resize((size, size), Image.Resampling.BICUBIC))
        out[i] = res[..., None] if c == 1 else res
    return out


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """0 keeps; 3 repeats a gray channel; 1 uses ITU-R 601-2 luma as PIL's convert('L')."""
    c = images.shape[-1]
    if channels in (0, c):
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    weights = np.array([299, 587, 114], dtype=np.int64)
    luma = (images.astype(np.int64) @ weights + 500) // 1000
    return luma.astype(np.uint8)[..., None]


# ---------------------------------------------------------------------------------------------
# image folders


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


# ---------------------------------------------------------------------------------------------
# MedMNIST


def _medmnist_info() -> dict[str, Any]:
    try:
        from medmnist import INFO
    except ImportError:  # pragma: no cover - medmnist is a dependency
        return {}
    return INFO


def _medmnist_flag_of(where: str) -> str | None:
    stem = Path(where).stem.split("_")[0].lower()
    info = _medmnist_info()
    return stem if stem in info and info[stem].get("task") != "multi-label, binary-class" else None


def medmnist_class_names(flag: str) -> tuple[str, ...]:
    labels = _medmnist_info()[flag]["label"]
    return tuple(labels[str(i)] for i in range(len(labels)))


def medmnist_file(flag: str, dcfg: DataConfig) -> Path:
    """Find `flag` in the MedMNIST cache, downloading through `medmnist` when allowed."""
    info = _medmnist_info()
    flag = flag.lower()
    if flag not in info:
        two_d = sorted(k for k in info if not k.endswith("3d"))
        raise InputError(
            f"--data {flag!r}: not a file, folder or MedMNIST flag; flags: {', '.join(two_d)}"
        )
    size = next((s for s in MEDMNIST_SIZES if s >= dcfg.size), MEDMNIST_SIZES[-1])
    root = Path(dcfg.medmnist_root or os.environ.get("MEDMNIST_ROOT", "~/.medmnist")).expanduser()
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    path = root / name
    if path.is_file():
        return path
    if dcfg.download:
        try:
            import medmnist

            root.mkdir(parents=True, exist_ok=True)
            cls = getattr(medmnist, info[flag]["python_class"])
            cls(split="train", download=True, size=size, root=str(root))
        except Exception as err:  # network, checksum or package errors all mean "not available"
            reason = (
                str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
            )
            raise InputError(
                f"--data {flag}: {name} is not cached and the download failed ({reason}); "
                f"put {name} in {root} (or set MEDMNIST_ROOT), or pass a .npz path"
            ) from None
        if path.is_file():
            return path
    raise InputError(
        f"--data {flag}: {name} is not in {root}; put the file there (or set MEDMNIST_ROOT), "
        "or pass a .npz path"
    )


def summarize(data: ImageSet) -> str:
    """One line per split: count, shape, class counts (what the CLI prints)."""
    lines = []
    for split in data.splits:
        img = data.images[split]
        counts = "/".join(map(str, data.class_counts(split)))
        lines.append(
            f"{split}: {len(img)} images {'x'.join(map(str, img.shape[1:]))}, classes {counts}"
        )
    return "\n".join(lines)


__all__ = [
    "ImageSet",
    "read_npz",
    "write_npz",
    "load_spec",
    "resize_images",
    "convert_channels",
    "require_train_only",
    "summarize",
]
