"""GPU check (issue 7): speed, FLOPs and peak memory of the paper's three training steps, plain
path and fast path side by side, and the wall time of the whole `paper` profile they project.

Steps, at the `paper` profile's settings (64x64x3, 5 classes):
- GAN iteration: n_critic (5) critic steps + 1 generator step of the clipped WGAN, width 1024,
  batch 8, RMSprop (critic batch norm, as the paper profile resolves it);
- ResNet-101 and DenseNet-121 train steps at batch 64 (Adam, cross-entropy);
- the diffusion family's train step (UNet2DModel, width 128, levels 1,2,2,2, attention at 16 px,
  conditional, batch 32), projected for a run that sees as many real images as the paper's GAN
  (1400 epochs x the classic set): the time a diffusion model would take in the GAN's place, so
  it is not added to the profile's total.
Each step is the training loop's own (the wgan family's critic_step / generator_step, classify's
train_one_epoch) on one pre-made batch already on the device: this measures the compute, while
bench/bench_gan.py and bench/bench_train.py measure the data path. The fast path is FastPaths
with amp (bf16), channels_last and fused optimisers on (and torch.compile with --compile).

    python -m bench.gpu_check --device cuda --out bench/BENCHMARKS.md
    python -m bench.gpu_check --tiny --device cpu --steps 1 --warmup 0   # seconds, for tests
"""

from __future__ import annotations

import argparse
import datetime
import gc
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.bench_train import max_rss_mb, reset_rss_peak
from ganaug import InputError
from ganaug.classify import build_model, to_input, train_one_epoch
from ganaug.config import Config, GanConfig, load_config
from ganaug.generators import FAMILIES
from ganaug.generators.diffaug import parse_policy
from ganaug.generators.family import Step, build_units
from ganaug.generators.monitor import EpochStats, NanGuard
from ganaug.generators.wgan import critic_step, generator_step
from ganaug.runtime import (
    PLAIN,
    FastPaths,
    as_input,
    autocast,
    make_generator,
    make_optimiser,
    pick_device,
    prepare_module,
    seed_everything,
    set_threads,
    to_device,
)

NUM_CLASSES = 5  # RetinaMNIST grades
SPLITS = {"train": 1080, "val": 120, "test": 400}  # RetinaMNIST images per split
# dense bf16 peak TFLOP/s by device-name substring, most specific first (vendor data sheets)
BF16_PEAK_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM ("H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


@dataclass(frozen=True)
class PaperWork:
    """How much work the `paper` profile does; wall time = this work at the measured rates."""

    gan_iterations: int  # epochs x (classic set // batch // n_critic) generator steps
    gan_images: int  # epochs x classic set: real images the GAN's critic sees
    train_images: int  # per classifier model: seeds x epochs x sum of the regimes' train sizes
    eval_images: int  # per classifier model: seeds x regimes x epochs x (val + test)


@dataclass(frozen=True)
class Row:
    workload: str  # which step
    path: str  # plain or fast (and which paths)
    batch: int  # images per batch
    seconds: float  # wall seconds per step
    images: int  # images one step trains on (GAN: real images through the critic)
    flops: int  # FLOPs of one step, forward + backward (FlopCounterMode)
    peak_mb: float  # peak memory, see memory_label
    projected_s: float  # this step's share of the paper profile's wall time


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs that torch's FlopCounterMode counts while `fn` runs (matmuls and convolutions)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bf16_peak(device_name: str) -> float | None:
    for key, tflops in BF16_PEAK_TFLOPS:
        if key in device_name:
            return tflops
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def memory_label(device: torch.device) -> str:
    if device.type == "cuda":
        return "peak MB (torch.cuda.max_memory_allocated)"
    if reset_rss_peak():
        return "peak MB (process peak RSS, VmHWM reset per row)"
    return "peak MB (process peak RSS: monotone over the run)"


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_rss_peak()  # from here on: the whole process (torch, memory the allocator kept)


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return max_rss_mb()


def seconds_per_step(step: Callable[[], None], steps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def gan_iteration(g: GanConfig, size: int, device: torch.device, fast: FastPaths):
    """One WGAN iteration of the training loop's own steps (the family's critic_step n_critic
    times, then generator_step) on a fixed real batch, so the figures are those of the real loop
    (loss logging, NaN guard and weight clipping included)."""
    wgan = FAMILIES["wgan"]
    args = wgan.model_args((size, size, 3), NUM_CLASSES, g)
    labels = torch.arange(g.batch_size) % NUM_CLASSES
    unit = build_units(wgan, args, g, labels, device, fast)[0]
    y = labels.to(device) if g.mode == "conditional" else None
    guard, stats, policy = (
        NanGuard(g, Path("unused.pt"), None, 0),
        EpochStats(),
        parse_policy(g.diffaug),
    )
    rng = make_generator(0, device)
    real = torch.rand(g.batch_size, 3, size, size, generator=rng, device=device) * 2 - 1
    real = as_input(real, fast)  # (B, 3, H, W) in [-1, 1], the nets' pixel convention

    step = Step(g, None, None, policy, rng, stats, guard, fast)

    def iteration() -> None:
        for _ in range(g.n_critic):
            critic_step(unit, real, y, step)
        generator_step(unit, g.batch_size, y, step)

    return iteration


def diffusion_step(g: GanConfig, size: int, device: torch.device, fast: FastPaths):
    """One train step of the diffusion family (its own train_step) on a fixed real batch."""
    family = FAMILIES["diffusion"]
    args = family.model_args((size, size, 3), NUM_CLASSES, g)
    labels = torch.arange(g.batch_size) % NUM_CLASSES
    unit = build_units(family, args, g, labels, device, fast)[0]
    rng = make_generator(0, device)
    real = torch.rand(g.batch_size, 3, size, size, generator=rng, device=device) * 2 - 1
    real, y = as_input(real, fast), labels.to(device)
    guard, stats = NanGuard(g, Path("unused.pt"), None, 0), EpochStats()
    step = Step(g, lambda: (real, y), None, (), rng, stats, guard, fast)
    return lambda: family.train_step(unit, step)


def classifier_step(name: str, batch: int, size: int, lr: float, device, fast: FastPaths):
    """One Adam train step of a registry classifier through classify's own train_one_epoch,
    on a one-batch set of uint8 images already on the device."""
    model = build_model(name, NUM_CLASSES, 3).to(device)
    prepare_module(model, fast)
    opt = make_optimiser("adam", model.parameters(), fast, lr=lr)
    rng = make_generator(0, device)
    images = torch.randint(0, 256, (batch, size, size, 3), generator=rng, device=device)
    images = images.to(torch.uint8)  # (B, H, W, 3), as classify holds its data
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=rng, device=device)
    criterion = nn.CrossEntropyLoss()
    shuffle = make_generator(1)

    def step() -> None:
        train_one_epoch(
            model, opt, criterion, images, labels, batch_size=batch, generator=shuffle, fast=fast
        )

    return step


def fast_path_checks(device: torch.device) -> str:
    """On `device` (the CUDA paths have no other test there): the pinned copy equals the plain
    one, bf16 + channels_last logits stay close to float32, fused Adam matches plain Adam."""
    images = torch.randint(0, 256, (8, 32, 32, 3), generator=make_generator(0), dtype=torch.uint8)
    pinned = to_device(images, device, FastPaths(pin_memory=True))
    same_copy = torch.equal(pinned.cpu(), images)
    logits, params = {}, {}
    for name, fast in (("plain", PLAIN), ("fast", FastPaths(True, True, True))):
        seed_everything(0)
        model = prepare_module(build_model("resnet18", NUM_CLASSES, 3).to(device).eval(), fast)
        with torch.no_grad(), autocast(device, fast.amp):
            logits[name] = model(to_input(images, device, fast)).float()
        opt = make_optimiser("adam", model.parameters(), fast, lr=1e-3)
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        opt.step()
        params[name] = torch.cat([p.detach().flatten().float() for p in model.parameters()])
    scale = logits["plain"].abs().max().item()
    rel = (logits["fast"] - logits["plain"]).abs().max().item() / max(scale, 1e-12)
    step = (params["fast"] - params["plain"]).abs().max().item()
    return (
        f"\nFast-path checks on {device_name(device)}: pinned copy equal: {same_copy}; "
        f"bf16 + channels_last resnet18 logits max |diff| / max |logit|: {rel:.4f}; "
        f"fused Adam vs plain, max parameter difference after one step: {step:.2e}\n"
    )


def paper_work(cfg: Config) -> PaperWork:
    g, c, a, ex = cfg.gan, cfg.classify, cfg.augment, cfg.experiment
    real = SPLITS["train"]
    classic = real * (1 + a.n_vflip + a.n_hflip + a.n_color)  # the GAN trains on this set
    synthetic = cfg.select.k * ex.synthetic_copies
    sizes = {"none": real, "classic": classic, "classic+gan": classic + synthetic,
             "gan": real + cfg.select.k, "classic+gan-unselected": classic + synthetic}  # fmt: skip
    per_epoch = max(1, classic // g.batch_size // g.n_critic)
    return PaperWork(
        gan_iterations=(g.epochs_lr1 + g.epochs_lr2) * per_epoch,
        gan_images=(g.epochs_lr1 + g.epochs_lr2) * classic,
        train_images=len(ex.seeds) * c.epochs * sum(sizes[r] for r in ex.regimes),
        eval_images=len(ex.seeds) * len(ex.regimes) * c.epochs * (SPLITS["val"] + SPLITS["test"]),
    )


def projected_seconds(work: PaperWork, kind: str, seconds: float, images: int) -> float:
    """GAN: iterations x s/iteration. Diffusion: the GAN's real images / img/s. Classifier:
    (train + eval / 3) images / train img/s, as an eval pass is a forward only, about a third of
    a train step's FLOPs."""
    if kind == "gan":
        return work.gan_iterations * seconds
    if kind == "diffusion":
        return work.gan_images * seconds / images
    return (work.train_images + work.eval_images / 3) * seconds / images


def measure(args: argparse.Namespace, cfg: Config, device: torch.device) -> list[Row]:
    """Every step on the plain and the fast path: one Row each."""
    work = paper_work(cfg)
    g, c = cfg.gan, cfg.classify
    size, batch = (32, 4) if args.tiny else (cfg.data.size, c.batch_size)
    if args.tiny:
        g = cfg.replace(gan={"width": 32}).gan
    fast = FastPaths(amp=True, channels_last=True, fused=True, compile=args.compile)
    gan_name = f"GAN iteration ({g.n_critic} critic + 1 generator steps, width {g.width})"
    builds = {gan_name: (lambda f: gan_iteration(g, size, device, f), g.batch_size, "gan")}
    for name in ("resnet101", "densenet121"):
        build = lambda f, n=name: classifier_step(n, batch, size, c.lr, device, f)  # noqa: E731
        builds[f"{name} train step"] = (build, batch, "classifier")
    d = diffusion_config(cfg, args.tiny)
    builds[f"{DIFFUSION} (width {d.width}, in the GAN's place)"] = (
        lambda f: diffusion_step(d, size, device, f), d.batch_size, "diffusion")  # fmt: skip
    rows = []
    for workload, (build, b, kind) in builds.items():
        images = b * g.n_critic if kind == "gan" else b
        flops = 0
        for path in (PLAIN, fast):
            reset_peak(device)
            step = build(path)
            if path is PLAIN:  # also a warm-up; FLOPs do not depend on the path (optimiser
                # updates are elementwise, which FlopCounterMode does not count)
                flops = count_flops(step)
            seconds = seconds_per_step(step, args.steps, args.warmup, device)
            label = "plain" if path is PLAIN else f"fast ({path.describe()})"
            proj = projected_seconds(work, kind, seconds, images)
            rows.append(Row(workload, label, b, seconds, images, flops, peak_mb(device), proj))
            del step
    return rows


DIFFUSION = "diffusion train step"


def diffusion_config(cfg: Config, tiny: bool) -> GanConfig:
    """The diffusion family at the paper's data: width 128 (16 with --tiny), batch 32."""
    width, batch = (16, 4) if tiny else (128, 32)
    sets = {"family": "diffusion", "mode": "conditional", "width": width, "batch_size": batch}
    return cfg.replace(gan=sets).gan


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def format_table(rows: list[Row], work: PaperWork, device: torch.device, tiny: bool) -> str:
    peak = bf16_peak(device_name(device)) if device.type == "cuda" else None
    head = (
        "| step | path | batch | ms/step | img/s | GFLOP/step | TFLOP/s | % bf16 peak"
        f" | {memory_label(device)} | projected paper time |\n|{'---|' * 10}\n"
    )
    lines = []
    for r in rows:
        tflops = r.flops / r.seconds / 1e12
        frac = f"{100 * tflops / peak:.1f} %" if peak else ""
        lines.append(
            f"| {r.workload} | {r.path} | {r.batch} | {1000 * r.seconds:.1f}"
            f" | {r.images / r.seconds:,.1f} | {r.flops / 1e9:.2f} | {tflops:.4g} | {frac}"
            f" | {r.peak_mb:,.0f} | {duration(r.projected_s)} |\n"
        )
    totals = {}
    for r in rows:
        if r.workload.startswith(DIFFUSION):  # an alternative to the GAN, not part of the total
            continue
        kind = r.path.split(" ")[0]
        totals[kind] = totals.get(kind, 0.0) + r.projected_s
    notes = (
        "\nProjected `paper` profile wall time: "
        + ", ".join(f"{k} path {duration(v)}" for k, v in totals.items())
        + f". Formula: GAN {work.gan_iterations:,} iterations x s/iteration; per classifier "
        f"({work.train_images:,} train images + {work.eval_images:,} eval images / 3) / img/s;"
        " sampling, selection, data loading and checkpoints left out. The diffusion row is"
        f" not in the total: it projects a diffusion model trained on the GAN's"
        f" {work.gan_images:,} real images (img/s per image), the time it would take in the"
        " GAN's place, sampling left out.\n"
        "GAN img/s counts the real images through the critic (n_critic x batch per iteration); "
        "FLOPs are FlopCounterMode's forward + backward count of one step; plain is float32 "
        f"(cuDNN may use TF32 for convolutions); % bf16 peak uses the dense bf16 peak"
        f" {f'of {peak:g} TFLOP/s' if peak else '(unknown for this device: left blank)'}.\n"
    )
    if tiny:
        notes += "--tiny: shrunken nets and images; the figures only exercise the script.\n"
    return head + "".join(lines) + notes


def heading(device: torch.device, args: argparse.Namespace) -> str:
    flags = " --tiny" if args.tiny else ""
    flags += " --compile" if args.compile else ""
    return (
        f"\n## {datetime.date.today()} · {platform.node()} · {device_name(device)}"
        f" · torch {torch.__version__} · gpu_check{flags}"
        f" (--steps {args.steps} --warmup {args.warmup})\n\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__)
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (>= 1)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 0)")
    parser.add_argument("--tiny", action="store_true", help="tiny nets and images (CPU tests)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = default")
    parser.add_argument("--out", default="", help="append the table to this file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 0:
        parser.error("--steps must be >= 1, --warmup >= 0 and --threads >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = pick_device(args.device)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    set_threads(args.threads)
    seed_everything(0)  # the registry classifiers initialise from the global RNG
    cfg = load_config("paper")
    rows = measure(args, cfg, device)
    text = heading(device, args) + format_table(rows, paper_work(cfg), device, args.tiny)
    text += fast_path_checks(device)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
