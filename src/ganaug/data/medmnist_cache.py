"""MedMNIST flags: their class names, and their npz file in the local cache, downloaded through the
`medmnist` package when allowed. The file is the smallest MedMNIST size at or above data.size."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ganaug import InputError, first_line
from ganaug.config import DataConfig

MEDMNIST_SIZES = (28, 64, 128, 224)


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
            reason = first_line(err, limit=120)
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
