"""The report's figures: Fig. 1 real vs synthetic, Figs. 2-3 training curves (mean over seeds),
Figs. 4-5 confusion matrices, the GAN's losses, the memorisation figures selection drew, and with a
generator per seed each generator's independent FID against its seed's gain.

Each figure is drawn only when its inputs are on disk; a skipped one is noted in `missing` and an
old copy of it removed. The curve and confusion drawings are `ganaug.plots`', shared with
classify.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from ganaug import InputError
from ganaug.data import read_npz
from ganaug.plots import plot_confusion, plot_curves, save_png
from ganaug.report.load import LABELS, Results, Run, read_csv
from ganaug.runtime import atomic_path

MEMORISATION_PAIRS = 8  # pairs in selection's memorisation figures (select.MEMORISATION_PAIRS)


def _strip(images: np.ndarray, n: int, pad: int = 2) -> np.ndarray:
    """Up to n images (k, H, W, C) side by side on white, as RGB (H, n*(W+pad), 3)."""
    h, w = images.shape[1:3]
    canvas = np.full((h, n * (w + pad), 3), 255, dtype=np.uint8)
    for i, img in enumerate(images[:n]):
        canvas[:, i * (w + pad) : i * (w + pad) + w] = img if img.shape[-1] == 3 else img[..., :1]
    return canvas


def fig_real_vs_synthetic(
    real_npz: Path, synthetic_npz: Path, path: Path, per_side: int = 6
) -> None:
    """Fig. 1: real train images left, selected synthetic right, one row per class."""
    real, syn = read_npz(real_npz), read_npz(synthetic_npz)
    rng = np.random.default_rng(0)
    labelled = syn.meta.get("labelled", True)
    names = real.class_names
    fig = Figure(figsize=(2.2 * per_side, 1.1 * len(names) + 0.6))
    axes = fig.subplots(len(names), 2, squeeze=False)
    for k, name in enumerate(names):
        for col, data in enumerate((real, syn)):
            imgs, labs = data.images["train"], data.labels["train"]
            pool = np.flatnonzero(labs == k) if (col == 0 or labelled) else np.arange(len(labs))
            pick = rng.choice(pool, size=min(per_side, len(pool)), replace=False)
            axes[k, col].imshow(_strip(imgs[np.sort(pick)], per_side))
            axes[k, col].set_axis_off()
        axes[k, 0].text(-0.02, 0.5, name, transform=axes[k, 0].transAxes, ha="right", va="center")
    axes[0, 0].set_title("real (train split)")
    axes[0, 1].set_title("synthetic (selected)" + ("" if labelled else ", unlabelled"))
    save_png(fig, path)


def fig_curves(runs: dict[int, Run], title: str, path: Path) -> None:
    """Figs. 2-3: loss and accuracy per epoch, train vs val vs test, mean over seeds.

    With a steps budget (metrics.json `budget`) and curves that have a `step` column, the x axis
    is the optimiser step, so regimes of one grid line up; else the epoch.
    """
    paths = [runs[s].path / "curves.csv" for s in sorted(runs)]
    tables = [read_csv(p) for p in paths if p.is_file()]  # seeds without curves are left out
    if not tables:
        raise FileNotFoundError(f"no curves.csv in {paths[0].parent.parent}/seed*")
    by_step = all(r.metrics.get("budget") == "steps" for r in runs.values())
    x = "step" if by_step and all("step" in t for t in tables) else "epoch"
    length = min(len(t["epoch"]) for t in tables)  # an unfinished seed shortens the curve
    columns = {x: tables[0][x][:length]}
    for key in (
        f"{split}_{kind}" for split in ("train", "val", "test") for kind in ("loss", "acc")
    ):
        columns[key] = np.mean([t[key][:length] for t in tables], axis=0)
    plot_curves(path, columns, f"{title} (mean over {len(tables)} seed(s))", x=x)


def fig_confusion(run: Run, title: str, path: Path) -> None:
    """Figs. 4-5: the last epoch's test confusion matrix, counts and row-normalised."""
    confusion = run.metrics["last"]["test"]["confusion"]
    names = run.metrics.get("class_names") or [str(i) for i in range(len(confusion))]
    plot_confusion(path, confusion, names, title)


def _copy_png(source: Path, path: Path) -> None:
    """A figure another stage made, copied into the report (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(source.read_bytes())


def fig_gan_losses(log_csv: Path, path: Path) -> None:
    """Critic loss, generator loss and the Wasserstein estimate (a stylegan2 run: the score gap),
    mean per epoch; with ADA (an `ada_p` column) also the augmentation probability."""
    cols = read_csv(log_csv)
    epochs = np.unique(cols["epoch"][np.isfinite(cols["epoch"])])
    panels = {"critic_loss": "critic loss", "gen_loss": "generator loss"}
    panels["wasserstein"] = "Wasserstein estimate"
    if "ada_p" in cols:
        panels["ada_p"] = "ADA augmentation probability p"
    fig = Figure(figsize=(4.4 * len(panels), 3.6), layout="constrained")
    for ax, (key, name) in zip(fig.subplots(1, len(panels)), panels.items(), strict=True):
        values, means = cols.get(key, np.full(len(cols["epoch"]), np.nan)), []
        for epoch in epochs:  # a mean per epoch; an all-NaN epoch stays a gap
            v = values[cols["epoch"] == epoch]
            means.append(np.nanmean(v) if np.isfinite(v).any() else np.nan)
        ax.plot(epochs, means)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    save_png(fig, path)


def fidelity_gain_points(generators: list[dict], model: str) -> list[tuple[int, float, float]]:
    """(seed, FID of the selected samples vs test, gain over Classic in points) per generator
    that has both, in the independent extractor's space, best-val protocol."""
    points = []
    for row in generators:
        fid = (row.get("selected_vs_test") or {}).get("fid")
        gain = (row.get(model) or {}).get("gain_over_classic")
        if fid is not None and gain is not None and np.isfinite(fid):
            points.append((row["seed"], float(fid), 100 * float(gain)))
    return points


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    rx, ry = stats.rankdata(xs), stats.rankdata(ys)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def fig_fidelity_vs_gain(generators: list[dict], models: list[str], path: Path) -> None:
    """Does a better generator help more? Each generator's selected-sample FID vs the test split
    (x) against its seeds' Classic+GAN gain over Classic (y), one panel per model."""
    fig = Figure(figsize=(4.8 * len(models), 3.8), layout="constrained")
    for ax, model in zip(np.atleast_1d(fig.subplots(1, len(models))), models, strict=True):
        points = fidelity_gain_points(generators, model)
        if points:
            _, fids, gains = zip(*points, strict=True)
            ax.scatter(fids, gains)
            for seed, fid, gain in points:
                ax.annotate(f"seed {seed}", (fid, gain), textcoords="offset points", xytext=(4, 4))
            rho = spearman(list(fids), list(gains))
            ax.set_title(f"{model}: Spearman rho {rho:+.2f} (n = {len(points)})")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("FID, selected synthetic vs real test (independent extractor)")
        ax.set_ylabel("Classic+GAN minus Classic, points (best-val)")
        ax.grid(alpha=0.3)
    save_png(fig, path)


def write_figures(
    run_dir: Path,
    out: Path,
    results: Results,
    models: list[str],
    missing: list[str],
    first: tuple[int, str, str],
    generators: list[dict] | None = None,
) -> dict[str, str]:
    """Every figure its inputs allow; returns file name -> caption, notes skips in `missing`.
    `first` is (seed, gan dir, data dir) of the first generator, whose samples Fig. 1 shows;
    with two generators or more (`generators`: the report's rows), fidelity vs gain too."""
    plans: dict[str, tuple[str, Callable[[Path], None] | str]] = {}  # name -> (caption, maker)
    owner, gan_dir, data_dir = first
    real, syn = run_dir / "data/real.npz", run_dir / data_dir / "synthetic.npz"
    absent = " and ".join(str(p.relative_to(run_dir)) for p in (real, syn) if not p.is_file())
    whose = f" (the generator of seed {owner})" if data_dir != "data" else ""
    plans["fig1_real_vs_synthetic.png"] = (
        "Fig. 1: real train images (left) vs selected synthetic images (right), per class" + whose,
        f"{absent} not found" if absent else partial(fig_real_vs_synthetic, real, syn),
    )
    for regime, curves, confusion in (
        ("classic", "fig2_curves_classic.png", "fig4_confusion_classic.png"),
        ("classic+gan", "fig3_curves_classic_gan.png", "fig5_confusion_classic_gan.png"),
    ):
        label = LABELS[regime]
        model = next((m for m in models if results.get(regime, {}).get(m)), None)
        if model is None:
            plans[curves] = plans[confusion] = ("", f"no {regime} results")
            continue
        runs = results[regime][model]
        title = f"{label}: {model}, seed {min(runs)}, last epoch, test split"
        curve_title = f"{label}: {model}, train / val / test"
        plans[curves] = (
            f"Training curves, {label}, {model}",
            partial(fig_curves, runs, curve_title),
        )
        plans[confusion] = (
            f"Confusion matrix, {title}",
            partial(fig_confusion, runs[min(runs)], title),
        )
    for regime in (r for r in results if r not in ("classic", "classic+gan")):
        model = next((m for m in models if results[regime].get(m)), None)
        if model is not None:  # the other regimes' curves: is their budget on a plateau too?
            label = LABELS.get(regime, regime)
            title = f"{label}: {model}, train / val / test"
            plans[f"curves_{regime.replace('+', '_')}.png"] = (
                f"Training curves, {label}, {model}",
                partial(fig_curves, results[regime][model], title),
            )
    for name, against in (
        ("memorisation.png", "its nearest original train image"),
        ("memorisation_trained_on.png", "its nearest image of the set the GAN trained on"),
    ):
        source = run_dir / data_dir / name
        plans[name] = (
            f"Memorisation: the {MEMORISATION_PAIRS} closest synthetic images (top) and {against} "
            f"(bottom){whose}",
            partial(_copy_png, source) if source.is_file() else f"{data_dir}/{name} not found",
        )
    gan_log = run_dir / gan_dir / "log.csv"
    plans["gan_losses.png"] = (
        "GAN training: critic loss, generator loss and Wasserstein estimate per epoch" + whose,
        partial(fig_gan_losses, gan_log) if gan_log.is_file() else f"{gan_dir}/log.csv not found",
    )
    if len(generators or []) >= 2:
        usable = [m for m in models if len(fidelity_gain_points(generators, m)) >= 2]
        plans["fidelity_vs_gain.png"] = (
            "Did better generators help more? Per generator, the independent FID of its selected "
            "samples vs the real test split against its seed's Classic+GAN gain over Classic",
            partial(fig_fidelity_vs_gain, generators, usable)
            if usable
            else "fewer than 2 generators with both an FID and a gain",
        )
    done: dict[str, str] = {}
    for name, (caption, make) in plans.items():
        skipped = make if isinstance(make, str) else ""
        if not skipped:
            try:
                make(out / name)  # type: ignore[operator]
            except (OSError, ValueError, KeyError, IndexError, InputError) as err:
                skipped = f"missing or unreadable input ({err})"
        if skipped:
            missing.append(f"{name} skipped: {skipped}")
            (out / name).unlink(missing_ok=True)  # no stale figure from an earlier report
        else:
            done[name] = caption
    return dict(sorted(done.items()))
