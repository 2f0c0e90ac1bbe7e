"""Classifier data-path benchmarks: ganaug's in-memory uint8 path vs a naive torchvision-style
DataLoader of PIL images, and vs the pure compute bound (forward/backward on one pre-made batch).
Also the epoch-time and peak-memory scaling with data size and the selection/metrics time for
2000 samples.

Peak memory is the peak resident set size of a fresh process per measurement (Linux's VmHWM; a
peak only grows within a process, so each figure comes from its own spawned interpreter)."""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ganaug.classify import build_model, to_input, train_one_epoch
from ganaug.runtime import make_generator

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


class PilDataset(Dataset):
    """The naive reference: a PIL image per sample, converted and normalised per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = [Image.fromarray(img) for img in images]
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        arr = np.asarray(self.images[i], dtype=np.float32) / 255.0
        x = (torch.from_numpy(arr).permute(2, 0, 1) - MEAN) / STD
        return x, int(self.labels[i])


def _setup(n: int, size: int = 64, model: str = "resnet18"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, n)
    torch.manual_seed(0)
    net = build_model(model, 5, 3)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    return images, labels, net, opt


def ganaug_epoch(n: int, batch: int = 64, model: str = "resnet18") -> float:
    """Seconds for one epoch of ganaug's path (train_one_epoch on uint8 tensors)."""
    images, labels, net, opt = _setup(n, model=model)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    crit = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    train_one_epoch(net, opt, crit, x, y, batch_size=batch, generator=make_generator(0))
    return time.perf_counter() - start


def naive_epoch(n: int, batch: int = 64, model: str = "resnet18") -> float:
    images, labels, net, opt = _setup(n, model=model)
    loader = DataLoader(PilDataset(images, labels), batch_size=batch, shuffle=True)
    crit = torch.nn.CrossEntropyLoss()
    net.train()
    start = time.perf_counter()
    for x, y in loader:
        loss = crit(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def compute_bound_epoch(n: int, batch: int = 64, model: str = "resnet18") -> float:
    """Forward/backward on one pre-made normalised batch, as many steps as an epoch has."""
    images, labels, net, opt = _setup(batch, model=model)
    x, y = to_input(torch.from_numpy(images), "cpu"), torch.from_numpy(labels)
    crit = torch.nn.CrossEntropyLoss()
    net.train()
    start = time.perf_counter()
    for _ in range(n // batch):
        loss = crit(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def max_rss_mb() -> float:
    """This process's peak resident set size, in MB.

    Linux: VmHWM, the peak of this process's own memory map (reset_rss_peak resets it). Elsewhere
    ru_maxrss, which never decreases and, in a spawned child, starts at its parent's size.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the peak cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _call_measured(fn: Callable[..., Any], args: tuple) -> tuple[Any, float, float]:
    before = max_rss_mb()  # interpreter, torch and whatever fn's module imports
    result = fn(*args)
    return result, max_rss_mb(), before


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """fn(*args) in a newly spawned interpreter: (result, peak RSS MB, RSS MB before the call).

    `fn` must be importable (a module-level function) and its result picklable. The difference
    of the two figures is what the call itself added at its peak.
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_call_measured, (fn, args))


def bench_classifier(n: int = 640) -> list[dict]:
    # each in a fresh process, so the three start alike and each peak RSS is that path's own
    (ours, peak, _), (naive, naive_peak, _), (bound, _, _) = (
        in_fresh_process(fn, n) for fn in (ganaug_epoch, naive_epoch, compute_bound_epoch)
    )
    return [
        {
            "name": f"classifier train, resnet18 64x64, batch 64, {n} images",
            "ours": f"{n / ours:,.0f} img/s, peak RSS {peak:,.0f} MB",
            "reference": f"{n / naive:,.0f} img/s, peak RSS {naive_peak:,.0f} MB "
            "(PIL Dataset + DataLoader)",
            "ratio": naive / ours,
        },
        {
            "name": "classifier data-path efficiency (ours / compute bound)",
            "ours": f"{n / ours:,.0f} img/s",
            "reference": f"{n / bound:,.0f} img/s (pre-made batch)",
            "ratio": bound / ours,
        },
    ]


def bench_scaling(base: int = 256) -> list[dict]:
    """Epoch time and peak memory at 1x, 2x, 4x and 8x `base` images, each in a fresh process."""
    sizes = [base, 2 * base, 4 * base, 8 * base]
    runs = [in_fresh_process(ganaug_epoch, n) for n in sizes]
    seconds, peaks = [r[0] for r in runs], [r[1] for r in runs]
    fit = np.polyfit(sizes, seconds, 1)
    pred = np.polyval(fit, sizes)
    ss_res = float(((np.array(seconds) - pred) ** 2).sum())
    ss_tot = float(((np.array(seconds) - np.mean(seconds)) ** 2).sum())
    r2 = 1 - ss_res / ss_tot
    times = ", ".join(f"{n}: {s:.1f} s" for n, s in zip(sizes, seconds, strict=True))
    memory = ", ".join(f"{n}: {p:,.0f} MB" for n, p in zip(sizes, peaks, strict=True))
    idle = min(r[2] for r in runs)
    return [
        {
            "name": "epoch time vs train size (resnet18, 64x64): linear fit R^2",
            "ours": times,
            "reference": "target R^2 >= 0.98",
            "ratio": r2,
        },
        {
            "name": "peak memory vs train size (resnet18, 64x64): peak RSS of a fresh process "
            f"per size; ratio = {sizes[-1]} / {sizes[0]} images",
            "ours": memory,
            "reference": f"{idle:,.0f} MB in the same process before the epoch (torch, imports)",
            "ratio": peaks[-1] / peaks[0],
        },
    ]


def bench_selection_metrics(n: int = 2000) -> dict:
    from ganaug.metrics import fidelity_summary, nearest_pixel_neighbours

    rng = np.random.default_rng(0)
    fake = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    real = rng.integers(0, 256, (1080, 64, 64, 3), dtype=np.uint8)
    start = time.perf_counter()
    nearest_pixel_neighbours(fake, real)
    pixel = time.perf_counter() - start
    feats_fake, feats_real = rng.normal(size=(n, 512)), rng.normal(size=(1080, 512))
    start = time.perf_counter()
    fidelity_summary(feats_real, feats_fake, kid_subset_size=100, kid_subsets=50, prdc_k=5, seed=0)
    metrics = time.perf_counter() - start
    return {
        "name": f"selection: nearest-neighbour pixel distance + KID/FID/PRDC, {n} x 1080",
        "ours": f"{pixel:.1f} s + {metrics:.1f} s",
        "reference": "(no reference)",
        "ratio": float("nan"),
    }
