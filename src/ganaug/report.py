"""Report: Table 1, the paired comparison, Figures 1-5 and a self-contained HTML page.

Implements the paper's outputs (Table 1; Fig. 1 real vs synthetic; Fig. 2-3 training curves;
Fig. 4-5 confusion matrices) from the files a run directory holds. It only reads files: it never
imports the training stages. Beyond the paper it reports mean ± std over seeds, two epoch choices
(the last epoch, as the paper does, and the best-validation epoch), AUC / balanced accuracy /
macro F1 / QWK, the majority-class floor, the GAN's fidelity and memorisation numbers, and for
each paired comparison a hierarchical bootstrap interval (`ganaug.stats`: seeds, then test
images) with Holm-adjusted p-values over all comparisons. The interval covers seed-to-seed
variance (with experiment.generator_per_seed, each seed's own GAN draw too) and test-image
sampling; not the data split itself, other datasets, or a different test population. Only the
cells config.yaml's grid names are read; stale ones on disk are listed as ignored.
"""

from __future__ import annotations

import base64
import csv
import datetime
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ganaug import InputError, __version__, layout, stats
from ganaug.data import read_npz
from ganaug.runtime import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger("ganaug")

REGIMES = ("none", "classic", "classic+gan", "gan", "classic+gan-unselected", "synthetic-only")
LABELS = {
    "none": "None",
    "classic": "Classic",
    "classic+gan": "Classic+GAN",
    "gan": "Real+GAN (no classic)",
    "classic+gan-unselected": "Classic+GAN (unselected)",
    "synthetic-only": "Synthetic only (train on synthetic, test on real)",
}
PROTOCOLS = {
    "last": "last epoch (the paper's protocol)",
    "best_val": "best-validation epoch (honest protocol)",
}
METRICS = ("accuracy", "auc", "balanced_accuracy", "macro_f1", "qwk")
PAPER_TABLE1 = {  # the paper's Table 1, test accuracy in %
    "none": {"resnet101": 45.96, "densenet121": 46.44},
    "classic": {"resnet101": 47.08, "densenet121": 48.18},
    "classic+gan": {"resnet101": 62.86, "densenet121": 71.27},
}
# (better, baseline, what it tests): the first is the paper's claim
COMPARISONS = (("classic+gan", "classic", "the GAN"), ("classic", "none", "classic augmentation"))
FIDELITY_KEYS = ("fid", "kid_mean", "precision", "recall", "density", "coverage", "n")
MEMORISATION_PAIRS = 8  # pairs in selection's memorisation figures (select.MEMORISATION_PAIRS)
BOOTSTRAP_SEED = 0  # the bootstrap's own seed, so a report is reproducible
GENERATOR_NOTE = (
    "Each row is one generator (one per seed with experiment.generator_per_seed; otherwise one "
    "serves every seed, and its accuracy columns are the mean over them). FID, precision and "
    "recall of its selected samples against the real test split, which neither the generator "
    "nor selection ever saw, at equal n. The floor is real val vs real test in the same space "
    "(both unseen by the extractor; at val's n, so smaller n than the synthetic rows and biased "
    "up by it): real-vs-real distances from the train split are inflated, because the extractor "
    "trained on those images. Accuracy: best-validation epoch. Lower FID next to a larger gain "
    "would suggest better generators help more; a handful of rows cannot show it."
)
NO_RESULTS = "no classifier results (classify/*/*/seed*/metrics.json); run `ganaug run` first"


@dataclass
class Run:
    """One classifier run: its directory and its metrics.json."""

    path: Path
    metrics: dict[str, Any]


Results = dict[str, dict[str, dict[int, Run]]]  # regime -> model -> seed -> Run


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    title: str = ""


@dataclass
class Section:
    """One part of the report, rendered the same way to results.md and report.html."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # file name -> caption


# ---------------------------------------------------------------------------------------------
# reading


def load_results(run_dir: Path, experiment: dict[str, Any]) -> tuple[Results, list[str]]:
    """classify/<regime>/<model>/seed<k>/metrics.json of the cells config.yaml names.

    `experiment` (config.yaml's experiment section) restricts the cells by its regimes, models
    and seeds; a key it lacks (no config.yaml at all: every key) restricts nothing. Cells on
    disk outside the grid, results of an earlier config, are returned as ignored
    (`regime/model/seed<k>`) unread. No cell left is an InputError.
    """
    named = {
        key: {f"seed{v}" if key == "seeds" else str(v) for v in experiment[key]}
        for key in ("regimes", "models", "seeds")
        if isinstance(experiment.get(key), list)
    }
    results: Results = {}
    ignored = []
    for path in sorted(Path(run_dir).glob("classify/*/*/seed*/metrics.json")):
        cell = dict(zip(("regimes", "models", "seeds"), path.parts[-4:-1], strict=True))
        if any(cell[key] not in allowed for key, allowed in named.items()):
            ignored.append("/".join(path.parts[-4:-1]))
            continue
        metrics = _read_metrics(path)
        by_seed = results.setdefault(cell["regimes"], {}).setdefault(cell["models"], {})
        by_seed[int(metrics["seed"])] = Run(path.parent, metrics)
    if not results:
        stale = f" ({len(ignored)} cell(s) outside config.yaml's grid ignored)" if ignored else ""
        raise InputError(f"{run_dir}: {NO_RESULTS}{stale}")
    return results, ignored


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable metrics.json ({err}); rerun `ganaug run`") from None
    need = [("seed",), ("test_labels",)] + [
        (p, *k) for p in PROTOCOLS for k in [("epoch",), ("test_pred",), ("test", "confusion")]
    ]
    need += [(p, "test", m) for p in PROTOCOLS for m in METRICS]
    for keys in need:
        node = metrics
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise InputError(
                    f"{path}: missing key '{'.'.join(keys)}'; rerun `ganaug run` to rewrite it"
                )
            node = node[key]
    for p in PROTOCOLS:
        if not metrics["test_labels"] or len(metrics[p]["test_pred"]) != len(
            metrics["test_labels"]
        ):
            raise InputError(f"{path}: {p}.test_pred and test_labels are empty or differ in length")
    return metrics


def _read_config(run_dir: Path, missing: list[str]) -> tuple[str, dict[str, Any]]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        missing.append("config.yaml not found: resolved config not shown; defaults used")
        return "", {}
    text = path.read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict):
        missing.append("config.yaml is not a YAML mapping: defaults used")
        config = {}
    return text, config


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a numeric CSV as float arrays (empty or non-numeric cells -> NaN)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError("no rows")
    return {key: np.array([_to_float(row.get(key)) for row in rows]) for key in rows[0]}


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# ---------------------------------------------------------------------------------------------
# numbers: Table 1, the floor, the paired bootstrap


def table_cell(runs: dict[int, Run] | None, protocol: str) -> dict[str, Any] | None:
    """Test metrics of one regime x model over seeds, at the given epoch choice."""
    if not runs:
        return None
    seeds = sorted(runs)
    cell: dict[str, Any] = {"seeds": seeds}
    cell["epochs"] = [runs[s].metrics[protocol]["epoch"] for s in seeds]
    for name in METRICS:
        cell[name] = stats.mean_std([runs[s].metrics[protocol]["test"][name] for s in seeds])
    return cell


def majority_floor(results: Results) -> dict[str, Any]:
    """Accuracy of always predicting the most frequent test class."""
    run = next(iter(next(iter(next(iter(results.values())).values())).values()))
    labels = np.asarray(run.metrics["test_labels"], dtype=np.int64)
    counts = np.bincount(labels)
    top = int(counts.argmax())
    names = run.metrics.get("class_names") or []
    name = str(names[top]) if top < len(names) else str(top)
    floor = {"accuracy": float(counts[top] / len(labels)), "class": name}
    return {**floor, "count": int(counts[top]), "n": len(labels)}


def paired_bootstrap(
    better: dict[int, Run],
    base: dict[int, Run],
    protocol: str,
    *,
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Accuracy difference (points) of `better` minus `base`, seeds paired by number.

    Builds the (n_seeds, n_test) correctness arrays of both regimes and reads the interval and
    p-value off `stats.paired_comparison` (hierarchical bootstrap: seeds, then paired test
    images; from stats.T_INTERVAL_MIN_SEEDS seeds a paired t-interval too).
    """
    seeds = sorted(set(better) & set(base))
    if not seeds:
        return {"error": "no seed present in both regimes"}
    labels = np.asarray(base[seeds[0]].metrics["test_labels"])
    correct: dict[str, list[np.ndarray]] = {"b": [], "a": []}
    for s in seeds:
        if any(r[s].metrics["test_labels"] != labels.tolist() for r in (better, base)):
            return {"error": f"seed {s}: the runs were tested on different test labels"}
        for key, runs in (("b", better), ("a", base)):
            correct[key].append(np.asarray(runs[s].metrics[protocol]["test_pred"]) == labels)
    b, a = np.array(correct["b"]), np.array(correct["a"])  # (n_seeds, n_test) each
    return {"seeds": seeds} | stats.paired_comparison(b, a, resamples=resamples, seed=seed)


def verdict_sentence(comp: dict[str, Any], better: str, base: str, model: str, what: str) -> str:
    """One plain sentence on whether `better` beat `base`, read off the hierarchical interval
    alone ("evidence that X helped" / "no evidence either way" / "evidence that X hurt")."""
    b, a = LABELS.get(better, better), LABELS.get(base, base)
    if "error" in comp:
        return f"{b} vs {a} for {model}: not available ({comp['error']})."
    diff, (low, high), n = comp["diff_points"], comp["ci_points"], comp["n_seeds"]
    p = f"p = {stats.format_p(comp['p_value'])}" + (
        f", Holm-adjusted {stats.format_p(comp['p_holm'])}" if "p_holm" in comp else ""
    )
    comp["verdict"] = stats.verdict(comp["ci_points"])  # the sentence and the key agree
    conclusion = {
        "helped": f"excludes zero: evidence that {what} helped.",
        "hurt": f"excludes zero: evidence that {what} hurt.",
        "no evidence": "includes zero: no evidence either way.",
    }[comp["verdict"]]
    sentence = (
        f"{b} {'beats' if diff >= 0 else 'trails'} {a} for {model} by {abs(diff):.2f} points "
        f"(95 % CI [{low:+.2f}, {high:+.2f}], {n} paired seed(s), {comp['n_test']} test images; "
        f"{p}): the interval {conclusion}"
    )
    if n == 1:
        sentence += " 1 seed: the interval covers test images only, not seed-to-seed variance."
    if t := comp.get("t_interval"):
        (tl, th), tp = t["ci_points"], t["p_value"]
        sentence += f" Paired t over the {n} per-seed differences: [{tl:+.2f}, {th:+.2f}], "
        sentence += f"p = {stats.format_p(tp)}."
    return sentence


def _comparisons(results: Results, models: list[str], resamples: int) -> dict[str, list]:
    """Every comparison of COMPARISONS x models x PROTOCOLS, with p-values Holm-adjusted over
    all of them (the family is every comparison this report makes)."""
    out: dict[str, list] = {}
    for protocol in PROTOCOLS:
        out[protocol] = []
        for better, base, _ in COMPARISONS:
            for model in models:
                runs_b = results.get(better, {}).get(model)
                runs_a = results.get(base, {}).get(model)
                if not runs_b or not runs_a:
                    miss = [r for r, runs in ((better, runs_b), (base, runs_a)) if not runs]
                    comp: dict[str, Any] = {"error": f"no {' or '.join(miss)} results"}
                else:
                    comp = paired_bootstrap(runs_b, runs_a, protocol, resamples=resamples)
                out[protocol].append({"better": better, "base": base, "model": model, **comp})
    stats.add_holm([c for comps in out.values() for c in comps])
    what = {(better, base): w for better, base, w in COMPARISONS}
    for comps in out.values():
        for c in comps:
            c["sentence"] = verdict_sentence(
                c, c["better"], c["base"], c["model"], what[c["better"], c["base"]]
            )
    return out


# ---------------------------------------------------------------------------------------------
# figures (matplotlib's object API: no global pyplot state)


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


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
    _save(fig, path)


def fig_curves(runs: dict[int, Run], title: str, path: Path) -> None:
    """Figs. 2-3: loss and accuracy per epoch, train vs val vs test, mean over seeds.

    With a steps budget (metrics.json `budget`) and curves that have a `step` column, the x axis
    is the optimiser step, so regimes of one grid line up; else the epoch.
    """
    paths = [runs[s].path / "curves.csv" for s in sorted(runs)]
    tables = [_read_csv(p) for p in paths if p.is_file()]  # seeds without curves are left out
    if not tables:
        raise FileNotFoundError(f"no curves.csv in {paths[0].parent.parent}/seed*")
    by_step = all(r.metrics.get("budget") == "steps" for r in runs.values())
    x = "step" if by_step and all("step" in t for t in tables) else "epoch"
    length = min(len(t["epoch"]) for t in tables)  # an unfinished seed shortens the curve
    fig = Figure(figsize=(11, 4), layout="constrained")
    for ax, kind in zip(fig.subplots(1, 2), ("loss", "acc"), strict=True):
        for split in ("train", "val", "test"):
            ys = np.mean([t[f"{split}_{kind}"][:length] for t in tables], axis=0)
            ax.plot(tables[0][x][:length], ys, label=split)
        ax.set_xlabel("optimiser step" if x == "step" else "epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if kind == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title} (mean over {len(tables)} seed(s))")
    _save(fig, path)


def fig_confusion(run: Run, title: str, path: Path) -> None:
    """Figs. 4-5: the last epoch's test confusion matrix, counts and row-normalised."""
    cm = np.asarray(run.metrics["last"]["test"]["confusion"], dtype=float)
    names = run.metrics.get("class_names") or [str(i) for i in range(len(cm))]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    panels = ((cm, "counts", "{:.0f}"), (norm, "row-normalised", "{:.2f}"))
    for ax, (mat, name, fmt) in zip(fig.subplots(1, 2), panels, strict=True):
        ax.imshow(mat, cmap="Blues")
        ticks = range(len(names))
        ax.set_xticks(ticks, names, rotation=45, ha="right")
        ax.set_yticks(ticks, names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
        for (i, j), value in np.ndenumerate(mat):
            colour = "white" if value > mat.max() / 2 else "black"
            ax.text(j, i, fmt.format(value), ha="center", va="center", color=colour, fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def _copy_png(source: Path, path: Path) -> None:
    """A figure another stage made, copied into the report (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(source.read_bytes())


def fig_gan_losses(log_csv: Path, path: Path) -> None:
    """Critic loss, generator loss and the Wasserstein estimate, mean per epoch."""
    cols = _read_csv(log_csv)
    epochs = np.unique(cols["epoch"][np.isfinite(cols["epoch"])])
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    panels = {"critic_loss": "critic loss", "gen_loss": "generator loss"}
    panels["wasserstein"] = "Wasserstein estimate"
    for ax, (key, name) in zip(fig.subplots(1, 3), panels.items(), strict=True):
        values, means = cols.get(key, np.full(len(cols["epoch"]), np.nan)), []
        for epoch in epochs:  # a mean per epoch; an all-NaN epoch stays a gap
            v = values[cols["epoch"] == epoch]
            means.append(np.nanmean(v) if np.isfinite(v).any() else np.nan)
        ax.plot(epochs, means)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    _save(fig, path)


def _write_figures(
    run_dir: Path,
    out: Path,
    results: Results,
    models: list[str],
    missing: list[str],
    first: tuple[int, str, str],
) -> dict[str, str]:
    """Every figure its inputs allow; returns file name -> caption, notes skips in `missing`.
    `first` is (seed, gan dir, data dir) of the first generator, whose samples Fig. 1 shows."""
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


# ---------------------------------------------------------------------------------------------
# tables and sections


def _fmt(stats: dict[str, Any] | None, scale: float = 1.0, digits: int = 3) -> str:
    """mean ± std, or mean (n=1) for a single seed."""
    if not stats or stats["mean"] is None:
        return "missing"
    text = f"{stats['mean'] * scale:.{digits}f}"
    std = stats["std"]
    return f"{text} (n=1)" if std is None else f"{text} ± {std * scale:.{digits}f}"


def _num(value: Any) -> str:
    if isinstance(value, (bool, int)):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) and np.isfinite(value) else "—"


def table1(cells: dict, regimes: list[str], models: list[str], paper: dict) -> Table:
    """The paper's Table 1 shape: a row per regime, our accuracy and the paper's per model."""
    header = ["augmentation"] + [f"{m} {who}" for m in models for who in ("(ours)", "(paper)")]
    rows = []
    for regime in regimes:
        row = [LABELS.get(regime, regime)]
        for model in models:
            cell, theirs = cells[regime][model], paper.get(regime, {}).get(model)
            row.append(_fmt(cell and cell["accuracy"], 100, 2))
            row.append("—" if theirs is None else f"{theirs:.2f}")
        rows.append(row)
    return Table(header, rows)


def budget_note(results: Results, regimes: list[str]) -> str:
    """Table 1's note on the training budget of its cells, from their metrics.json (`budget`,
    `steps`; a file without `budget` was trained by epochs)."""
    found = [
        (regime, run.metrics)
        for regime in regimes
        for by_seed in results.get(regime, {}).values()
        for run in by_seed.values()
    ]
    if not found:
        return ""
    steps = {
        r: sorted({m["steps"] for rr, m in found if rr == r and "steps" in m}) for r in regimes
    }
    per_regime = ", ".join(f"{r} {'/'.join(map(str, v))}" for r, v in steps.items() if v)
    budgets = {m.get("budget", "epochs") for _, m in found}
    if budgets == {"steps"}:
        counts = {m.get("steps") for _, m in found}
        if len(counts) == 1:
            return f"Budget: {counts.pop()} optimiser steps per cell, equal in every regime."
        return f"Budget: a step budget per cell, not equal in every regime ({per_regime} steps)."
    if budgets == {"epochs"}:
        epochs = "/".join(str(e) for e in sorted({m.get("epochs") for _, m in found}, key=str))
        differ = f" (regimes differ in steps: {per_regime})" if per_regime else ""
        return f"Budget: {epochs} epochs per cell{differ}."
    return f"Budget: mixed, some cells by epochs, some by steps (steps: {per_regime or 'unknown'})."


def metrics_table(cells: dict, regimes: list[str], models: list[str]) -> Table:
    """Every metric of every regime x model found; accuracies in %."""
    columns = {"accuracy": ("accuracy %", 100, 2), "auc": ("AUC", 1, 3)}
    columns |= {"balanced_accuracy": ("balanced acc. %", 100, 2), "macro_f1": ("macro F1", 1, 3)}
    columns["qwk"] = ("QWK", 1, 3)
    rows = [
        [LABELS.get(r, r), m, str(c["accuracy"]["n"])]
        + [_fmt(c[k], scale, digits) for k, (_, scale, digits) in columns.items()]
        for r in regimes
        for m in models
        if (c := cells[r][m])
    ]
    header = ["augmentation", "model", "seeds"] + [h for h, _, _ in columns.values()]
    return Table(header, rows, "All metrics (test split)")


def fidelity_tables(fidelity: dict[str, Any]) -> list[Table]:
    """Raw vs selected synthetic images against train and test; then the memorisation numbers."""
    keys = ("fid", "precision", "recall", "density", "coverage", "n")
    rows = []
    for which in ("raw", "selected"):
        for ref in ("vs_train", "vs_test"):
            f = ((fidelity.get(which) or {}).get(ref) or {}).get("overall")
            if isinstance(f, dict):
                kid = f"{_num(f.get('kid_mean'))} ± {_num(f.get('kid_std'))}"
                rows.append([which, ref.replace("_", " "), kid] + [_num(f.get(k)) for k in keys])
    header = ["synthetic", "reference", "KID", "FID", "precision", "recall", "density"]
    title = (
        f"Fidelity in the selection labeller's features "
        f"({fidelity.get('feature_extractor', 'not recorded')}): selection ranked by this "
        "network, so the selected set is favoured by construction; see the independent table"
    )
    tables = [Table(header + ["coverage", "n"], rows, title)]
    memo = fidelity.get("memorisation") if isinstance(fidelity.get("memorisation"), dict) else {}
    trained_on = memo.get("trained_on") if isinstance(memo.get("trained_on"), dict) else {}
    originals = {k: v for k, v in memo.items() if k != "trained_on"}
    for block in (originals, trained_on):
        if flat := _flatten(block):
            rows = [[key, _num(value)] for key, value in flat.items()]
            metric = block.get("metric")
            metric = f" (distance: {metric})" if isinstance(metric, str) else ""
            tables.append(Table(["quantity", "value"], rows, f"Memorisation{metric}"))
    return tables


def generator_rows(
    run_dir: Path, owners: dict[int, tuple[str, str]], results: Results, models: list[str]
) -> list[dict[str, Any]]:
    """Per generator: its independent fidelity (<data dir>/fidelity_eval.json) next to the
    Classic+GAN accuracy of the seeds it served and their gain over Classic, best-val protocol."""
    rows = []
    shared = len(owners) == 1
    for seed, (_, data_dir) in owners.items():
        path = run_dir / data_dir / "fidelity_eval.json"
        try:
            found = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            found = None
        row: dict[str, Any] = {"seed": seed, "fidelity_file": f"{data_dir}/fidelity_eval.json"}
        if isinstance(found, dict):
            sets = found.get("sets") or {}
            for which in ("selected", "raw"):
                for split in ("train", "val", "test"):
                    block = (sets.get(which) or {}).get(f"vs_{split}") or {}
                    row[f"{which}_vs_{split}"] = {k: block.get(k) for k in FIDELITY_KEYS}
            for name, block in (found.get("floor") or {}).items():
                row[f"floor_{name}"] = {k: (block or {}).get(k) for k in FIDELITY_KEYS}
            row["extractor"] = found.get("extractor")
            row["note"] = found.get("note")
        for model in models:
            served = [seed] if not shared else sorted(results.get("classic+gan", {}).get(model, {}))
            accs = {}
            for regime in ("classic", "classic+gan"):
                runs = results.get(regime, {}).get(model, {})
                got = [runs[s].metrics["best_val"]["test"]["accuracy"] for s in served if s in runs]
                accs[regime] = float(np.mean(got)) if len(got) == len(served) and got else None
            gain = None
            if None not in accs.values():
                gain = accs["classic+gan"] - accs["classic"]
            row[model] = {"classic+gan_accuracy": accs["classic+gan"], "gain_over_classic": gain}
        rows.append(row)
    return rows


def generator_table(rows: list[dict[str, Any]], models: list[str]) -> Table:
    """One row per generator: independent FID/precision/recall of its selected samples vs the
    real test split, the floor, and the accuracy its seed(s) reached with its images."""
    header = ["generator (seed)", "FID sel. vs test", "FID raw vs test", "precision", "recall"]
    header += ["n", "floor FID val vs test (n)"]
    for model in models:
        header += [f"{model}: Classic+GAN acc. %", f"{model}: gain over Classic (points)"]
    body = []
    for row in rows:
        sel, raw = row.get("selected_vs_test") or {}, row.get("raw_vs_test") or {}
        floor = row.get("floor_val_vs_test") or {}
        cells = [str(row["seed"]), _num(sel.get("fid")), _num(raw.get("fid"))]
        cells += [_num(sel.get("precision")), _num(sel.get("recall")), _num(sel.get("n"))]
        cells.append(f"{_num(floor.get('fid'))} ({_num(floor.get('n'))})")
        for model in models:
            acc, gain = row[model]["classic+gan_accuracy"], row[model]["gain_over_classic"]
            cells.append("missing" if acc is None else f"{acc * 100:.2f}")
            cells.append("—" if gain is None else f"{gain * 100:+.2f}")
        body.append(cells)
    return Table(header, body, "Per generator: independent fidelity and what its images did")


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Numeric (or None) leaves of a nested dict, keyed by dotted path; lists are left out."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
    return out


def _sections(summary: dict[str, Any], figures: dict[str, str]) -> list[Section]:
    regimes, models, floor = summary["regimes"], summary["models"], summary["floor"]
    notes = [
        "Mean ± std over seeds (std with ddof=1; (n=1) marks a single seed). The paper's "
        "numbers are single runs with no stated epoch choice.",
        f"Majority-class floor: {floor['accuracy'] * 100:.2f} % (always predicting class "
        f"{floor['class']}: {floor['count']} of {floor['n']} test images).",
    ]
    notes += [summary["budget"]] if summary.get("budget") else []
    if ignored := summary["ignored_cells"]:
        notes.append(
            f"Ignored {len(ignored)} result cell(s) on disk that config.yaml's grid does not name "
            f"(left from an earlier run): {', '.join(ignored)}."
        )
    sections = []
    for p, name in PROTOCOLS.items():
        cells = summary["table"][p]
        tables = [table1(cells, regimes, models, summary["paper"])]
        tables.append(metrics_table(cells, regimes, models))
        sections.append(Section(f"Table 1: test accuracy (%), {name}", notes, tables))
    sentences = [
        f"{name}: {c['sentence']}"
        for p, name in PROTOCOLS.items()
        for c in summary["comparisons"][p]
    ]
    n = sum("p_value" in c for comps in summary["comparisons"].values() for c in comps)
    method = stats.method_text(summary["bootstrap_resamples"], summary["generator_per_seed"])
    paragraphs = [method, stats.multiplicity_text(n)] + sentences
    sections.append(Section("Did the GAN help? Paired comparison", paragraphs))
    gens = summary["generators"]
    if any("selected_vs_test" in row for row in gens):
        notes = [GENERATOR_NOTE, next((r["note"] for r in gens if r.get("note")), "")]
        table = generator_table(gens, models)
        sections.append(Section("Generators: independent fidelity per seed", notes, [table]))
    fid = summary["fidelity"]
    sections.append(
        Section("Fidelity and memorisation of the synthetic images", [], fidelity_tables(fid))
        if fid
        else Section("Fidelity and memorisation", ["data/fidelity.json not found or unreadable."])
    )
    sections.append(Section("Figures", figures=figures))
    if summary["missing"]:
        sections.append(Section("Missing", list(summary["missing"])))
    return sections


# ---------------------------------------------------------------------------------------------
# writing: markdown, CSV, HTML


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table.rows])


def _markdown(sections: list[Section], summary: dict[str, Any]) -> str:
    parts = [f"# ganaug report: {Path(summary['run_dir']).resolve().name}"]
    parts.append(
        f"Run directory `{summary['run_dir']}`; ganaug {__version__}; {summary['created']}."
    )
    for sec in sections:
        parts.append(f"## {sec.title}")
        for table in sec.tables:
            parts += ([f"**{table.title}**"] if table.title else []) + [markdown_table(table)]
        if sec.title == "Missing":
            parts.append("\n".join(f"- {p}" for p in sec.paragraphs))
        else:
            parts += sec.paragraphs
        parts += [f"![{caption}]({name})" for name, caption in sec.figures.items()]
    return "\n\n".join(parts) + "\n"


def _results_csv(summary: dict[str, Any]) -> str:
    """One row per protocol x regime x model x metric (mean, std as fractions); the paper's
    accuracy in % on the accuracy rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["protocol", "regime", "model", "metric", "mean", "std", "n", "paper_pct"])
    for p, by_regime in summary["table"].items():
        for regime, by_model in by_regime.items():
            for model, cell in by_model.items():
                paper = summary["paper"].get(regime, {}).get(model, "")
                for metric in METRICS:
                    stats = cell[metric] if cell else {"mean": None, "std": None, "n": 0}
                    mean, std = ("" if v is None else v for v in (stats["mean"], stats["std"]))
                    extra = paper if metric == "accuracy" else ""
                    writer.writerow([p, regime, model, metric, mean, std, stats["n"], extra])
    return buf.getvalue()


def _html(sections: list[Section], out: Path, summary: dict[str, Any], config: str) -> str:
    """One self-contained page: every PNG inlined as a data URI, no external CSS or JS."""
    uris = {}
    for name in (n for sec in sections for n in sec.figures):
        uris[name] = "data:image/png;base64," + base64.b64encode((out / name).read_bytes()).decode()
    template = resources.files("ganaug").joinpath("report_template.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(
        sections=sections, uris=uris, summary=summary, config=config
    )


# ---------------------------------------------------------------------------------------------
# the entry point


def build_report(run_dir: Path, *, paper_table: dict | None = None) -> dict[str, Any]:
    """Write run_dir/report/: results.md/.csv/.json, the figures, fidelity.json, report.html.

    `paper_table` (regime -> model -> accuracy %) replaces the paper's Table 1 beside ours.
    Returns the results.json content plus `table1_markdown` (Table 1 at the last epoch).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory; give the run directory `ganaug run` wrote")
    missing: list[str] = []
    config_text, config = _read_config(run_dir, missing)
    experiment = config.get("experiment") if isinstance(config.get("experiment"), dict) else {}
    results, ignored = load_results(run_dir, experiment)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    regimes, models = _order(results, list(experiment.get("models") or []), missing)
    seeds = [s for s in experiment.get("seeds") or [] if isinstance(s, int)]
    owners = layout.generator_dirs(seeds or [0], experiment.get("generator_per_seed") is True)
    first = (next(iter(owners)), *next(iter(owners.values())))
    resamples = experiment.get("bootstrap", 1000)
    resamples = resamples if isinstance(resamples, int) and resamples >= 1 else 1000
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "version": __version__,
        "protocols": PROTOCOLS,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "regimes": regimes,
        "models": models,
        "bootstrap_resamples": resamples,
        "generator_per_seed": experiment.get("generator_per_seed") is True,
        "ignored_cells": ignored,
        "paper": PAPER_TABLE1 if paper_table is None else paper_table,
        "table": {
            p: {r: {m: table_cell(results.get(r, {}).get(m), p) for m in models} for r in regimes}
            for p in PROTOCOLS
        },
        "floor": majority_floor(results),
        "budget": budget_note(results, regimes),
        "comparisons": _comparisons(results, models, resamples),
        "fidelity": _copy_fidelity(run_dir, first[2], out, missing),
        "generators": generator_rows(run_dir, owners, results, models),
    }
    figures = _write_figures(run_dir, out, results, models, missing, first)
    summary.update(figures=list(figures), missing=missing)
    sections = _sections(summary, figures)
    atomic_write_text(out / "results.md", _markdown(sections, summary))
    atomic_write_text(out / "results.csv", _results_csv(summary))
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "report.html", _html(sections, out, summary, config_text))
    log.info("report written to %s", out)
    return {**summary, "table1_markdown": markdown_table(sections[0].tables[0])}


def _order(results: Results, config_models: list[str], missing: list[str]):
    """Table 1's rows (the paper's three, then any extra regime) and columns (config order)."""
    found = {m for by_model in results.values() for m in by_model}
    models = [m for m in config_models if m in found] + sorted(found - set(config_models))
    extra = sorted(
        (r for r in results if r not in REGIMES[:3]), key=lambda r: (r not in REGIMES, r)
    )
    regimes = list(REGIMES[:3]) + extra
    for regime in regimes:
        absent = [m for m in models if not results.get(regime, {}).get(m)]
        if absent:
            missing.append(f"regime {regime}: no results for {', '.join(absent)}")
    return regimes, models


def _copy_fidelity(
    run_dir: Path, data_dir: str, out: Path, missing: list[str]
) -> dict[str, Any] | None:
    """The first generator's fidelity.json (data/ or data/seed<s>/) copied to report/; None
    (noted in `missing`) when absent or unreadable."""
    path, fidelity, problem = run_dir / data_dir / "fidelity.json", None, "not found"
    if path.is_file():
        try:
            fidelity = json.loads(path.read_text())
            problem = "" if isinstance(fidelity, dict) else "not a JSON object"
        except (OSError, ValueError) as err:
            problem = f"unreadable ({err})"
    if problem:
        missing.append(f"{data_dir}/fidelity.json {problem}: no fidelity or memorisation numbers")
        (out / "fidelity.json").unlink(missing_ok=True)
        return None
    atomic_write_json(out / "fidelity.json", fidelity)
    return fidelity
