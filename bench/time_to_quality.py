"""Time to quality: each generator family's FID after equal compute budgets, measured in one run.

On a CPU the GAN's data path is already at the compute bound (bench_gan), so what a user buys with
a minute of compute is generator quality. Each family trains on the classically augmented
RetinaMNIST train split at 64 px (what `ganaug run` trains on) through the generic loop, and at
each budget mark (by default 3, 6 and 12 minutes) its sampling net draws 1000 images with the
per-seed sampler. Their FID is measured in the evaluation space (the `fidelity.extractor`
densenet121 of `ganaug run`, trained from scratch on the real train split only, never on synthetic
images) against the real test split (400 images) and, for choosing a family, the real val split
(120 images): the quick profile's generator is chosen on val, so no choice here looks at test.

Budgets are compute, not wall time: process CPU seconds (all threads) / the thread count, so on
2 free cores a "minute" is a wall minute, and a run sharing the machine with other work still
gives every family the same compute. Wall time is recorded beside it; sampling and feature
extraction are outside the budget (sampling time per 1000 images is its own column). A mark is
taken at the first step past it, so the recorded minutes run slightly over.

Results go to bench/time_to_quality.json (one entry per family, kept between runs: an interrupted
run redoes only the families it had not finished; --fresh measures all again), the figure to
bench/time_to_quality.png and each family's last sample grid to bench/ttq_<family>.png.

    python -m bench.time_to_quality                         # every family, 3/6/12 minutes
    python -m bench.time_to_quality --minutes 0.5 --families wgan-gp --out /tmp/ttq   # a try
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ganaug.augment import augment_imageset
from ganaug.config import Config, load_config
from ganaug.data import ImageSet, load_spec
from ganaug.evaluate import load_or_train_extractor
from ganaug.generators import FAMILIES, get_family
from ganaug.generators.diffaug import parse_policy
from ganaug.generators.family import Step, build_units
from ganaug.generators.loop import train_epoch, training_tensors
from ganaug.generators.monitor import EpochStats, NanGuard
from ganaug.generators.sample import class_rows, generate_seeded
from ganaug.metrics import frechet_distance
from ganaug.runtime import make_generator, save_image_grid

HERE = Path(__file__).parent
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "retinamnist.npz"
N_SAMPLES = 1000
LONG = ["gan.epochs_lr1=100000", "gan.epochs_lr2=0"]  # one learning rate for any budget

# name -> (profile, overrides, description); the families of issue 15 and 16
RECIPES: dict[str, tuple[str, list[str], str]] = {
    "wgan-paper": (
        "paper",
        ["gan.width=128", "gan.ckpt_every=1000"],
        "wgan, the paper's recipe (weight clipping, RMSprop, batch 8, n_critic 5), width 128",
    ),
    "wgan-gp": (
        "quick",
        [],
        "wgan, quick's recipe: conditional WGAN-GP + DiffAugment, width 128, batch 32, n_critic 2",
    ),
    "stylegan2": (
        "quick",
        [
            "gan.family=stylegan2",
            "gan.lr=0.0025",
            "gan.adam_beta1=0",
            "gan.adam_beta2=0.99",
            "gan.ema_decay=0.995",
            "gan.width=64",
        ],
        "stylegan2 + ADA, conditional, width 64, batch 32, Adam 0.0025 (0, 0.99), EMA 0.995",
    ),
    "diffusion": (
        "quick",
        [
            "gan.family=diffusion",
            "gan.width=32",
            "gan.lr=0.0005",
            "gan.adam_beta1=0.9",
            "gan.adam_beta2=0.999",
            "gan.ema_decay=0.995",
            "gan.sample_steps=10",
        ],
        "diffusion: diffusers UNet2DModel, widths 32-64-64-64, attention at 16 px, v-prediction,"
        " cosine schedule, conditional (label dropout 0.1), batch 32, Adam 5e-4 (0.9, 0.999),"
        " EMA 0.995; DDIM 10 steps, unguided",
    ),
}


class BudgetReached(Exception):
    """Raised from the per-step hook once the last mark is measured."""


@dataclass
class Clock:
    """Compute minutes of this process: CPU seconds of all its threads / threads / 60, with
    the time spent measuring taken out."""

    threads: int
    paused: float = 0.0
    cpu0: float = field(default_factory=time.process_time)
    wall0: float = field(default_factory=time.perf_counter)

    def minutes(self) -> float:
        return (time.process_time() - self.cpu0 - self.paused) / self.threads / 60

    def wall_minutes(self) -> float:
        return (time.perf_counter() - self.wall0) / 60


class MarkHook:
    """Stands in for the loop's TensorBoard board: after every step it checks the clock and, at
    each budget mark, measures the sampling net (the clock paused)."""

    def __init__(self, marks: list[float], measure, clock: Clock) -> None:
        self.marks, self.measure, self.clock = list(marks), measure, clock

    def scalars(self, step: int, tag: str, **_: float) -> None:
        if self.marks and self.clock.minutes() >= self.marks[0]:
            self.marks.pop(0)
            cpu, wall = time.process_time(), time.perf_counter()
            self.measure(step)
            self.clock.paused += time.process_time() - cpu
            self.clock.wall0 += time.perf_counter() - wall
            if not self.marks:
                raise BudgetReached


def recipe_config(name: str) -> Config:
    profile, overrides, _ = RECIPES[name]
    return load_config(profile, [*overrides, *LONG])


def load_data(path: Path, cfg: Config) -> tuple[ImageSet, ImageSet]:
    """(real at 64 px, its classic-augmented train split), as `ganaug run` makes them."""
    real = load_spec(cfg.replace(data={"spec": str(path), "size": 64}))
    return real, augment_imageset(real, cfg)


def run_family(
    name: str, real: ImageSet, classic: ImageSet, extractor, marks: list[float], out: Path
) -> dict:
    cfg = recipe_config(name)
    g = cfg.gan
    family = get_family(g.family)
    images, labels = training_tensors(classic, g)
    args = family.model_args(tuple(images.shape[1:]), classic.num_classes, g)
    units = build_units(family, args, g, labels, torch.device("cpu"))
    rng = make_generator(g.seed + 1)
    guard = NanGuard(g, out / "unused.pt", None, 0)
    policy, conditional = parse_policy(g.diffaug), args["mode"] == "conditional"
    refs = {s: extractor.features(real.images[s]) for s in ("test", "val")}
    seeds = np.arange(N_SAMPLES, dtype=np.int64)
    rows: list[dict] = []
    clock = Clock(torch.get_num_threads())
    progress = {"epoch": 0, "images": 0}

    def measure(step: int) -> None:
        minutes, wall = clock.minutes(), clock.wall_minutes()
        started = time.perf_counter()
        samplers = [unit.sampler for unit in units]
        sampling = {**args, **family.sampling_args(g)}  # e.g. the diffusion sampler's steps
        fakes, classes = generate_seeded(family, samplers, sampling, seeds, torch.device("cpu"))
        sample_s = time.perf_counter() - started
        feats = extractor.features(fakes)
        row = {
            "mark": marks[len(rows)],
            "minutes": round(minutes, 3),
            "wall_minutes": round(wall, 3),
            "epoch": progress["epoch"],
            "step": step,
            "real_images_seen": progress["images"] + stats.images,
            "fid_test": round(frechet_distance(refs["test"], feats), 3),
            "fid_val": round(frechet_distance(refs["val"], feats), 3),
            "sample_s_per_1000": round(sample_s * 1000 / N_SAMPLES, 2),
        }
        rows.append(row)
        print(f"  {name}: {row}", flush=True)
        if args["mode"] == "unconditional":  # no classes: the first 40 samples
            grid = fakes[:40].reshape(5, 8, *fakes.shape[1:])
        else:
            grid = class_rows(fakes, classes, classic.num_classes, 8)
        save_image_grid(out / f"ttq_{name}.png", grid)

    hook, step = MarkHook(marks, measure, clock), 0
    try:
        while True:
            progress["epoch"] += 1
            stats = EpochStats()
            ctx = Step(g, None, None, policy, rng, stats, guard)
            step = train_epoch(family, units[0], images, labels, ctx, step, hook, conditional)
            progress["images"] += stats.images
    except BudgetReached:
        pass
    settings = {k: v for k, v in cfg.to_dict()["gan"].items() if k not in ("epochs_lr2",)}
    return {"recipe": RECIPES[name][2], "gan": settings, "marks": rows}


def real_floor(real: ImageSet, extractor) -> dict[str, float]:
    """What real images score in this space: 1000 real train images (drawn once, seed 0)
    against test and val (too low a bar: the extractor was trained on them, so their features
    are spread apart from unseen images'), and the 120 held-out val images against test (biased
    up by their small n)."""
    rows = np.sort(np.random.default_rng(0).choice(len(real.labels["train"]), N_SAMPLES, False))
    train = extractor.features(real.images["train"][rows])
    val, test = (extractor.features(real.images[s]) for s in ("val", "test"))
    return {
        "train_vs_test": round(frechet_distance(test, train), 3),
        "train_vs_val": round(frechet_distance(val, train), 3),
        "val_vs_test": round(frechet_distance(test, val), 3),
    }


def table(results: dict) -> str:
    marks = sorted({r["mark"] for fam in results["families"].values() for r in fam["marks"]})
    head = " | ".join(f"FID test @ {m:g} min" for m in marks)
    lines = [
        f"| family | recipe | {head} | FID val @ {marks[-1]:g} min | steps @ {marks[-1]:g} min"
        " | sampling s / 1000 |",
        "|---" * (len(marks) + 5) + "|",
    ]
    for name, fam in results["families"].items():
        by_mark = {r["mark"]: r for r in fam["marks"]}
        last = fam["marks"][-1]
        cells = " | ".join(f"{by_mark[m]['fid_test']:.1f}" if m in by_mark else "" for m in marks)
        lines.append(
            f"| {name} | {fam['recipe']} | {cells} | {last['fid_val']:.1f} | {last['step']}"
            f" | {last['sample_s_per_1000']:.1f} |"
        )
    floor, blanks = results["real_floor"], " | ".join("" for _ in marks[1:])
    lines.append(
        f"| real train images | 1000 of the 1080 the extractor trained on | "
        f"{floor['train_vs_test']:.1f} | {blanks} | {floor['train_vs_val']:.1f} | | |"
    )
    lines.append(
        f"| real val images | the 120 held-out val images (small n: biased up) | "
        f"{floor['val_vs_test']:.1f} | {blanks} | | | |"
    )
    return "\n".join(lines) + "\n"


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, fam in results["families"].items():
        xs = [r["minutes"] for r in fam["marks"]]
        ax.plot(xs, [r["fid_test"] for r in fam["marks"]], marker="o", label=name)
    floor = results["real_floor"]["val_vs_test"]
    ax.axhline(floor, color="grey", ls="--", label="real val images (n=120)")
    ax.set_xlabel(f"compute minutes ({results['threads']} CPU threads)")
    ax.set_ylabel("FID vs real test split (evaluation space)")
    ax.set_yscale("log")
    ax.set_title("Time to quality, RetinaMNIST 64 px")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(RECIPES), help="comma list of recipes")
    parser.add_argument("--minutes", default="3,6,12", help="budget marks, compute minutes")
    parser.add_argument("--data", type=Path, default=DATA, help="RetinaMNIST npz (28 px)")
    parser.add_argument("--out", type=Path, default=HERE, help="where results and figures go")
    parser.add_argument("--fresh", action="store_true", help="measure every family again")
    parser.add_argument(
        "--append",
        type=Path,
        default=HERE / "BENCHMARKS.md",
        help="results file the table is appended to, with machine and date ('' = none)",
    )
    opts = parser.parse_args(argv)
    marks = sorted(float(m) for m in opts.minutes.split(","))
    names = [n.strip() for n in opts.families.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {unknown[0]!r}; valid: {', '.join(RECIPES)}")
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "time_to_quality.json"
    results = json.loads(path.read_text()) if path.is_file() and not opts.fresh else {}
    if results.get("marks") != marks:
        results = {}  # other budgets: nothing to keep
    cfg = load_config("quick")
    real, classic = load_data(opts.data, cfg)
    cache = Path("runs") / "bench-ttq"
    extractor = load_or_train_extractor(real, cfg, cache)
    results.update(
        marks=marks,
        machine=f"{platform.node()} · {platform.processor() or platform.machine()}",
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        real_floor=real_floor(real, extractor),
        extractor=extractor.info,
    )
    results.setdefault("families", {})
    for name in names:
        if name in results["families"]:
            print(f"{name}: measured on {results['families'][name]['date']}, kept", flush=True)
            continue
        if recipe_config(name).gan.family not in FAMILIES:
            print(f"{name}: family not available, skipped", flush=True)
            continue
        print(f"{name}: training to {marks[-1]:g} compute minutes", flush=True)
        found = run_family(name, real, classic, extractor, marks, out)
        found["date"] = str(datetime.date.today())
        results["families"][name] = found
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(path)
    figure(results, out / "time_to_quality.png")
    text = heading(results) + table(results)
    print(text)
    if str(opts.append) not in ("", "."):
        with open(opts.append, "a") as fh:
            fh.write(text)


def heading(results: dict) -> str:
    dates = sorted({fam["date"] for fam in results["families"].values()})
    return (
        f"\n## Time to quality · {', '.join(dates)} · {results['machine']} · "
        f"{results['threads']} threads · torch {results['torch']} · device cpu\n\n"
        "`python -m bench.time_to_quality` (part of `make bench`): FID in the evaluation space"
        f" (extractor {results['extractor']['name']}, {results['extractor']['epochs']} epochs on"
        f" the {results['extractor']['n_train']} real train images) of {N_SAMPLES} samples after"
        " equal compute budgets (process CPU time / threads), RetinaMNIST 64 px, classic train"
        " set; lower is better.\n\n"
    )


if __name__ == "__main__":
    main()
