"""Loading a data spec, `data.spec`: a contract npz path, an image folder or a MedMNIST flag,
resized to data.size, with provenance (source, its sha256, the config hash) in its meta."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ganaug.config import Config
from ganaug.data.contract import read_npz
from ganaug.data.folders import read_image_folder
from ganaug.data.imageset import SPLITS, ImageSet
from ganaug.data.medmnist_cache import medmnist_class_names, medmnist_file
from ganaug.data.resize import convert_channels, resize_images
from ganaug.runtime import provenance


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
