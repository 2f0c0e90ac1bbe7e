"""Generate images from a checkpoint of any family, one seed per image, and score images with
the family's realism score (a GAN critic) where it has one.

The paper generated "about 2000" fakes. Here image i comes from the noise drawn by a generator
seeded with seed + i (stored as `train_seeds`), so any image can be regenerated alone. For the
conditional and per_class modes its class is (seed + i) % num_classes: that is i % num_classes for
seed 0, and keeps each seed's class fixed whichever batch regenerates it. Sampling uses the EMA
weights when training kept them, in eval mode (batch-norm running statistics), so an image does
not depend on the rest of its batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganaug import InputError
from ganaug.config import GanConfig
from ganaug.data import ImageSet
from ganaug.generators.family import GeneratorFamily, from_uint8, to_uint8
from ganaug.runtime import make_generator, pick_device, progress, provenance


def _device(device: torch.device | str | None) -> torch.device:
    return torch.device(device) if device is not None else pick_device("auto")


@torch.no_grad()
def sample_images(
    checkpoint: Path,
    n: int,
    seed: int,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    g: GanConfig | None = None,
) -> ImageSet:
    """n images (train split, uint8 (n, H, W, C)) with per-image seeds and, when the GAN has
    classes, their generator class as label (zeros and meta["labelled"] = False otherwise).
    `g`: the config whose sampling settings (family.sampling_args) apply; default GanConfig's."""
    if n < 1 or seed < 0:
        raise InputError(f"sampling needs n >= 1 and seed >= 0 (got n={n}, seed={seed})")
    from ganaug.generators.checkpoint import load_nets

    device = _device(device)
    ckpt, family, units = load_nets(Path(checkpoint), device)
    args = {**ckpt["model_args"], **family.sampling_args(g or GanConfig())}
    labelled = args["mode"] != "unconditional"
    seeds = np.arange(seed, seed + n, dtype=np.int64)
    samplers = [nets[family.sample_net] for nets in units]
    out, classes = generate_seeded(family, samplers, args, seeds, device, batch_size)
    meta = provenance(
        "gan-sample",
        checkpoint=str(checkpoint),
        gan_mode=args["mode"],
        gan_epoch=ckpt["epoch"],
        config_hash=ckpt["config_hash"],
        source_splits={"train": ["synthetic"]},
        seed=seed,
        n=n,
        labelled=labelled,
    )
    names = tuple(ckpt["class_names"])
    return ImageSet({"train": out}, {"train": classes}, names, meta, {"train_seeds": seeds})


@torch.no_grad()
def generate_seeded(
    family: GeneratorFamily,
    samplers: list[torch.nn.Module],
    args: dict,
    seeds: np.ndarray,
    device: torch.device,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, H, W, C) and classes (n,) for the given per-image seeds: image i's
    noise comes from a generator seeded seeds[i] (on the CPU whatever the device), its class is
    seeds[i] % num_classes when the generator has labels (zeros otherwise). `samplers`: one net
    per unit, put in eval mode for the call. A progress bar with ETA shows over the batches."""
    labelled = args["mode"] != "unconditional"
    n = len(seeds)
    classes = seeds % args["num_classes"] if labelled else np.zeros(n, dtype=np.int64)
    noise = torch.cat([family.noise(1, args, make_generator(int(s))) for s in seeds])
    out = np.empty((n, args["size"], args["size"], args["channels"]), dtype=np.uint8)
    bar = progress(total=n, desc="sample", unit="img", leave=False)
    with bar:
        for k, net in enumerate(samplers):
            was_training = net.training
            net.eval()
            rows = np.flatnonzero(classes == k) if args["mode"] == "per_class" else np.arange(n)
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                lab = None
                if args["mode"] == "conditional":
                    lab = torch.from_numpy(classes[chunk]).to(device)
                out[chunk] = to_uint8(family.generate(net, noise[chunk].to(device), lab, args))
                bar.update(len(chunk))
            net.train(was_training)
    return out, classes


@torch.no_grad()
def realism_scores(
    checkpoint: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> np.ndarray | None:
    """The family's realism score per image (N,), higher = judged more real (a GAN: its critic;
    per_class uses the unit of each image's label, conditional the label); None when the family
    has no realism score."""
    from ganaug.generators.checkpoint import load_nets

    device = _device(device)
    ckpt, family, units = load_nets(Path(checkpoint), device)
    args = ckpt["model_args"]
    images = np.asarray(images)
    want = (args["size"], args["size"], args["channels"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want:
        raise InputError(
            f"realism scores need uint8 images (N, {want[0]}, {want[1]}, {want[2]}) like the "
            f"generator's; got {images.dtype} {images.shape}"
        )
    if args["mode"] != "unconditional":
        if labels is None or len(labels) != len(images):
            raise InputError(f"the {args['mode']} generator's scores need one label per image")
        labels = np.asarray(labels, dtype=np.int64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= args["num_classes"]:
            raise InputError(f"labels must lie in 0..{args['num_classes'] - 1}")
    scores = np.empty(len(images), dtype=np.float64)
    for k, nets in enumerate(units):
        rows = (
            np.flatnonzero(labels == k) if args["mode"] == "per_class" else np.arange(len(images))
        )
        family.prepare_realism(nets, args, k)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            x = from_uint8(torch.from_numpy(images[chunk]).to(device))
            lab = torch.from_numpy(labels[chunk]).to(device) if labels is not None else None
            if args["mode"] == "unconditional":
                lab = None
            found = family.realism(nets, args, k, x, lab)
            if found is None:
                return None
            scores[chunk] = found.double().cpu().numpy()
    return scores


def class_rows(
    images: np.ndarray, labels: np.ndarray, num_classes: int, per_row: int
) -> np.ndarray:
    """(classes, per_row, H, W, C): the first images of each class, black padding."""
    grid = np.zeros((num_classes, per_row, *images.shape[1:]), dtype=np.uint8)
    for c in range(num_classes):
        chosen = images[labels == c][:per_row]
        grid[c, : len(chosen)] = chosen
    return grid


def contact_sheet(samples: ImageSet, per_row: int = 10) -> np.ndarray:
    """Images for a PNG: one row per class when labelled, else the first per_row^2 images."""
    images, labels = samples.images["train"], samples.labels["train"]
    if not samples.meta.get("labelled", True):
        return images[: per_row * per_row]
    return class_rows(images, labels, samples.num_classes, per_row)
