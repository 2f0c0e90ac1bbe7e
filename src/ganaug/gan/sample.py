"""Generate images from a GAN checkpoint, one seed per image, and score images with its critic.

The paper generated "about 2000" fakes. Here image i comes from the latent drawn by a generator
seeded with seed + i (stored as `train_seeds`), so any image can be regenerated alone. For the
conditional and per_class modes its class is (seed + i) % num_classes: that is i % num_classes for
seed 0, and keeps each seed's class fixed whichever batch regenerates it. Sampling uses the EMA
generator when training kept one, in eval mode (batch-norm running statistics), so an image does
not depend on the rest of its batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganaug import InputError
from ganaug.data import ImageSet
from ganaug.gan.nets import from_uint8, sample_z, to_uint8
from ganaug.gan.state import load_nets
from ganaug.runtime import make_generator, pick_device, provenance


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
) -> ImageSet:
    """n images (train split, uint8 (n, H, W, C)) with per-image seeds and, when the GAN has
    classes, their generator class as label (zeros and meta["labelled"] = False otherwise)."""
    if n < 1 or seed < 0:
        raise InputError(f"sampling needs n >= 1 and seed >= 0 (got n={n}, seed={seed})")
    device = _device(device)
    ckpt, gens, _ = load_nets(Path(checkpoint), device)
    args = ckpt["model_args"]
    labelled = args["mode"] != "unconditional"
    seeds = np.arange(seed, seed + n, dtype=np.int64)
    classes = seeds % args["num_classes"] if labelled else np.zeros(n, dtype=np.int64)
    z = torch.cat(
        [sample_z(1, args["z_dim"], args["z_dist"], make_generator(int(s))) for s in seeds]
    )  # (n, z_dim), drawn on the CPU whatever the device
    out = np.empty((n, args["size"], args["size"], args["channels"]), dtype=np.uint8)
    for k, gen in enumerate(gens):
        rows = np.flatnonzero(classes == k) if args["mode"] == "per_class" else np.arange(n)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            lab = torch.from_numpy(classes[chunk]).to(device) if gen.embed is not None else None
            out[chunk] = to_uint8(gen(z[chunk].to(device), lab))
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
def critic_scores(
    checkpoint: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Critic score per image (N,), higher = judged more real. per_class uses the critic of each
    image's label, conditional its projection with the label; unconditional ignores labels."""
    device = _device(device)
    ckpt, gens, critics = load_nets(Path(checkpoint), device)
    args = ckpt["model_args"]
    images = np.asarray(images)
    want = (args["size"], args["size"], args["channels"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want:
        raise InputError(
            f"critic scores need uint8 images (N, {want[0]}, {want[1]}, {want[2]}) like the "
            f"GAN's; got {images.dtype} {images.shape}"
        )
    if args["mode"] != "unconditional":
        if labels is None or len(labels) != len(images):
            raise InputError(f"the {args['mode']} GAN's critic needs one label per image")
        labels = np.asarray(labels, dtype=np.int64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= args["num_classes"]:
            raise InputError(f"labels must lie in 0..{args['num_classes'] - 1}")
    scores = np.empty(len(images), dtype=np.float64)
    for k, (gen, critic) in enumerate(zip(gens, critics, strict=True)):
        rows = (
            np.flatnonzero(labels == k) if args["mode"] == "per_class" else np.arange(len(images))
        )
        recalibrate_batch_norm(critic, gen, args, k, device)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            x = from_uint8(torch.from_numpy(images[chunk]).to(device))
            lab = torch.from_numpy(labels[chunk]).to(device) if critic.embed is not None else None
            scores[chunk] = critic(x, lab).double().cpu().numpy()
    return scores


REFERENCE_FAKES = 512  # fakes whose batch-norm statistics a batch-norm critic scores with
REFERENCE_SEED = 2**31 - 1  # their latents' seed, apart from the sampling seeds 0, 1, 2, ...


@torch.no_grad()
def recalibrate_batch_norm(
    critic: torch.nn.Module, gen: torch.nn.Module, args: dict, unit: int, device: torch.device
) -> None:
    """A batch-norm critic's statistics of fakes, then eval mode; other critics are unchanged.

    A batch-norm critic (the paper's WGAN) trains on all-real and all-fake batches, each
    normalised by its own statistics, while its running statistics average the two kinds.
    Scoring fakes with those running statistics ranks them in a mode the critic never trained
    in, and scoring in train mode would make an image's score depend on its batch mates. So the
    running statistics are recomputed over REFERENCE_FAKES fixed fakes of the unit's generator
    (a cumulative mean over two chunks, momentum None) and scores are taken in eval mode: a fake
    is normalised by fake statistics, as in training, and its score is a function of the image
    alone.
    """
    norms = [m for m in critic.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    gen_z = make_generator(REFERENCE_SEED)
    z = sample_z(REFERENCE_FAKES, args["z_dim"], args["z_dist"], gen_z).to(device)
    classes = torch.arange(REFERENCE_FAKES, device=device) % max(args["num_classes"], 1)
    if args["mode"] == "per_class":
        classes = torch.full_like(classes, unit)
    lab_g = classes if gen.embed is not None else None
    lab_c = classes if critic.embed is not None else None
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the chunks
    critic.train()
    for half in (slice(0, REFERENCE_FAKES // 2), slice(REFERENCE_FAKES // 2, None)):
        fake = gen(z[half], None if lab_g is None else lab_g[half])
        critic(fake, None if lab_c is None else lab_c[half])
    critic.eval()


def contact_sheet(samples: ImageSet, per_row: int = 10) -> np.ndarray:
    """Images for a PNG: one row per class when labelled, else the first per_row^2 images."""
    images, labels = samples.images["train"], samples.labels["train"]
    if not samples.meta.get("labelled", True):
        return images[: per_row * per_row]
    grid = np.zeros((samples.num_classes, per_row, *images.shape[1:]), dtype=np.uint8)
    for c in range(samples.num_classes):
        chosen = images[labels == c][:per_row]
        grid[c, : len(chosen)] = chosen
    return grid
