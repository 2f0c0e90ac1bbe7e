"""GAN step benchmarks at the `quick` profile's settings (conditional WGAN-GP, width 128, batch
32, n_critic 2, DiffAugment translation, 64x64): ganaug's epoch loop on in-memory uint8 tensors
with batched on-device augmentation, vs a naive loop (PIL Dataset with per-sample translation and
normalisation behind a DataLoader), vs the compute bound (the same steps on one pre-made batch).
Each path runs in a fresh process, whose peak RSS is reported beside its speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.bench_train import in_fresh_process
from ganaug.config import load_config
from ganaug.generators import FAMILIES
from ganaug.generators.diffaug import parse_policy
from ganaug.generators.family import Step, build_units, from_uint8
from ganaug.generators.loop import train_epoch
from ganaug.generators.monitor import EpochStats, NanGuard
from ganaug.generators.wgan import critic_step, generator_step
from ganaug.runtime import make_generator

WGAN = FAMILIES["wgan"]


class PilTranslateDataset(Dataset):
    """The naive reference: PIL image per sample, a random shift of up to 1/8 of the side, then
    per-sample conversion to a [-1, 1] tensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = [Image.fromarray(img) for img in images]
        self.labels = labels
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        shift = img.width // 8
        dx, dy = self.rng.integers(-shift, shift + 1, 2)
        moved = img.transform(img.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
        x = torch.from_numpy(np.asarray(moved, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
        return x, int(self.labels[i])


def _setup(n: int):
    cfg = load_config("quick")
    g = cfg.gan
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 5, n))
    args = WGAN.model_args((64, 64, 3), 5, g)
    unit = build_units(WGAN, args, g, labels, torch.device("cpu"))[0]
    guard = NanGuard(g, Path("unused.pt"), None, 0)
    return g, images, labels, unit, guard


def ganaug_epoch(n: int) -> float:
    g, images, labels, unit, guard = _setup(n)
    stats = EpochStats()
    start = time.perf_counter()
    ctx = Step(g, None, None, parse_policy(g.diffaug), make_generator(1), stats, guard)
    train_epoch(WGAN, unit, images, labels, ctx, 0, conditional=g.mode == "conditional")
    return stats.images / (time.perf_counter() - start)


def _steps(n: int, batch: int, n_critic: int) -> int:
    return max(1, (n // batch) // n_critic)


def naive_epoch(n: int) -> float:
    g, images, labels, unit, guard = _setup(n)
    dataset = PilTranslateDataset(images.numpy(), labels.numpy())
    loader = DataLoader(dataset, batch_size=g.batch_size, shuffle=True, drop_last=True)
    rng, stats, batches = make_generator(1), EpochStats(), iter(loader)
    step = Step(g, None, None, (), rng, stats, guard)  # augmented in the Dataset
    start = time.perf_counter()
    for _ in range(_steps(n, g.batch_size, g.n_critic)):
        for _ in range(g.n_critic):
            real, y = next(batches)
            critic_step(unit, real, y, step)
        generator_step(unit, g.batch_size, y, step)
    return stats.images / (time.perf_counter() - start)


def compute_bound_epoch(n: int) -> float:
    g, images, labels, unit, guard = _setup(32)
    real, y = from_uint8(images[: g.batch_size]), labels[: g.batch_size]
    rng, stats = make_generator(1), EpochStats()
    step = Step(g, None, None, parse_policy(g.diffaug), rng, stats, guard)
    start = time.perf_counter()
    for _ in range(_steps(n, g.batch_size, g.n_critic)):
        for _ in range(g.n_critic):
            critic_step(unit, real, y, step)
        generator_step(unit, g.batch_size, y, step)
    return stats.images / (time.perf_counter() - start)


def bench_gan(n: int = 640) -> list[dict]:
    # each in a fresh process, so the three start alike (cold caches, thread pools) and each
    # peak RSS is that path's own
    (ours, peak, _), (naive, naive_peak, _), (bound, _, _) = (
        in_fresh_process(fn, n) for fn in (ganaug_epoch, naive_epoch, compute_bound_epoch)
    )
    name = f"GAN epoch, quick settings (cond. WGAN-GP w128, batch 32, n_critic 2), {n} images"
    return [
        {"name": name, "ours": f"{ours:,.0f} img/s, peak RSS {peak:,.0f} MB",
         "reference": f"{naive:,.0f} img/s, peak RSS {naive_peak:,.0f} MB (PIL Dataset + "
                      "DataLoader)", "ratio": ours / naive},
        {"name": "GAN data-path efficiency (ours / compute bound)", "ours": f"{ours:,.0f} img/s",
         "reference": f"{bound:,.0f} img/s (pre-made batch)", "ratio": ours / bound},
    ]  # fmt: skip
