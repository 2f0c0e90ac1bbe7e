"""Run the benchmarks, print a table, append it to bench/BENCHMARKS.md with machine and date.

Each figure is a ratio measured in one run: ganaug's path against a naive reference on the same
machine, same data, same device.
"""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from ganaug.augment import classic_augment
from ganaug.config import AugmentConfig
from ganaug.runtime import make_generator

RESULTS = Path(__file__).with_name("BENCHMARKS.md")


def _images(n: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def pil_reference_augment(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """The naive path: a per-image PIL loop making the same four outputs, stacked as uint8."""
    rng = np.random.default_rng(seed)
    out = []
    for arr in images:
        img = Image.fromarray(arr)
        out.append(img)
        out.append(img.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
        out.append(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.1 else img)
        b, c, s = rng.uniform(0.7, 0.9, 3)
        jit = ImageEnhance.Brightness(img).enhance(b)
        jit = ImageEnhance.Contrast(jit).enhance(c)
        out.append(ImageEnhance.Color(jit).enhance(s))
    return np.stack([np.asarray(img) for img in out])


def bench_augment(n: int = 1080, repeats: int = 3) -> dict:
    images = _images(n)
    tensor = torch.from_numpy(images)
    labels = torch.zeros(n, dtype=torch.int64)
    cfg = AugmentConfig()

    def ours() -> None:
        classic_augment(tensor, labels, cfg, make_generator(0))

    def naive() -> None:
        pil_reference_augment(images)

    t_ours = min(_time(ours) for _ in range(repeats))
    t_naive = min(_time(naive) for _ in range(repeats))
    return {
        "name": f"classic augmentation, {n} images 64x64 -> {4 * n}",
        "ours": f"{4 * n / t_ours:,.0f} img/s",
        "reference": f"{4 * n / t_naive:,.0f} img/s (per-image PIL loop)",
        "ratio": t_naive / t_ours,
    }


def _ratio(row: dict) -> str:
    if row["ratio"] != row["ratio"]:  # NaN: nothing to compare with
        return "—"
    return f"{row['ratio']:.3f}" if "R^2" in row["name"] else f"{row['ratio']:.2f}x"


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    from bench.bench_gan import bench_gan
    from bench.bench_train import bench_classifier, bench_scaling, bench_selection_metrics

    rows = [bench_augment(), *bench_classifier(), *bench_gan(), *bench_scaling()]
    rows.append(bench_selection_metrics())
    cpu = platform.processor() or platform.machine()
    header = (
        f"\n## {datetime.date.today()} · {platform.node()} · {cpu}"
        f" · {torch.get_num_threads()} threads · torch {torch.__version__} · device cpu\n\n"
        "| benchmark | ganaug | reference | ratio |\n|---|---|---|---|\n"
    )
    table = "".join(
        f"| {r['name']} | {r['ours']} | {r['reference']} | {_ratio(r)} |\n" for r in rows
    )
    print(header + table)
    with open(RESULTS, "a") as fh:
        fh.write(header + table)


if __name__ == "__main__":
    main()
