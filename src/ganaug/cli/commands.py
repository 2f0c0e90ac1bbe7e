"""The commands of the recipe's stages: data, augment, run, classify, report, select."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganaug import InputError
from ganaug.cli.app import (
    ForceOpt,
    Shared,
    _check_at_least,
    _check_out_dir,
    _check_out_file,
    app,
    shared_options,
)
from ganaug.config import save_config
from ganaug.runtime import seed_everything, set_quiet, setup_logging


@app.command("data")
@shared_options
def data_cmd(
    shared: Shared,
    data: Annotated[str, typer.Option("--data", help="npz path, image folder or MedMNIST flag.")],
    out: Annotated[Path, typer.Option("--out", help="Output contract npz, e.g. real.npz.")],
    size: Annotated[int | None, typer.Option("--size", help="Output side in pixels.")] = None,
    force: ForceOpt = False,
) -> None:
    """Load, validate and resize a data set into the npz contract.

    Example: ganaug data --data ../shared/data/retinamnist.npz --size 64 --out real.npz
    """
    from ganaug.data import load_spec, summarize, write_npz

    extra = [f"data.spec={data}"] + ([f"data.size={size}"] if size is not None else [])
    cfg = shared.config(extra)
    _check_out_file(out, force, "real.npz")
    result = load_spec(cfg)
    save_config(cfg, out.with_suffix(".config.yaml"))
    write_npz(out, result)  # last: an interrupted command leaves no npz, so a rerun is not refused
    shared.echo(f"wrote {out}\n{summarize(result)}")


@app.command("augment")
@shared_options
def augment_cmd(
    shared: Shared,
    data: Annotated[Path, typer.Option("--data", help="Contract npz with a train split.")],
    out: Annotated[Path, typer.Option("--out", help="Output npz (train split only).")],
    seed: Annotated[int | None, typer.Option("--seed", help="Augmentation seed.")] = None,
    force: ForceOpt = False,
) -> None:
    """Classic augmentation (the paper's flips and colour jitter) of the train split.

    Example: ganaug augment --data real.npz --out classic.npz --set augment.n_color=2
    """
    from ganaug.augment import augment_imageset
    from ganaug.data import read_npz, summarize, write_npz

    _check_at_least("--seed", seed, 0, "a seed")
    extra = [f"augment.seed={seed}"] if seed is not None else []
    cfg = shared.config(extra)
    _check_out_file(out, force, "classic.npz")
    seed_everything(cfg.augment.seed)
    real = read_npz(data)
    result = augment_imageset(real, cfg, source=str(data), preview=out.with_suffix(".preview.png"))
    save_config(cfg, out.with_suffix(".config.yaml"))
    write_npz(out, result)  # last: an interrupted command leaves no npz, so a rerun is not refused
    shared.echo(f"wrote {out}\n{summarize(result)}")


@app.command("run")
@shared_options
def run_cmd(
    shared: Shared,
    data: Annotated[
        str | None, typer.Option("--data", help="Data spec (default: profile's).")
    ] = None,
    size: Annotated[int | None, typer.Option("--size", help="Image side in pixels.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run dir (runs/<name>).")] = None,
    executor: Annotated[
        str | None, typer.Option("--executor", help="Grid executor: local or ray.")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Local process pool.")] = None,
) -> None:
    """The whole recipe: data, classic augmentation, GAN, selection, classifier grid, report.

    Rerunning the same command resumes: finished artefacts and grid cells are skipped.

    Examples:
      ganaug run --profile smoke --data ../shared/data/retinamnist.npz --out runs/smoke
      ganaug run --profile standard --data ../shared/data/retinamnist.npz --out runs/standard
      ganaug run --profile paper --device cuda --executor ray
    """
    from ganaug.experiment import run_experiment

    extra = [f"data.spec={data}"] if data else []
    extra += [f"data.size={size}"] if size is not None else []
    extra += [f"experiment.executor={executor}"] if executor else []
    extra += [f"experiment.workers={workers}"] if workers is not None else []
    cfg = shared.config(extra)
    run_dir = out or Path("runs") / cfg.experiment.name
    _check_out_dir(run_dir)
    report_dir = run_experiment(cfg, run_dir)
    shared.echo(f"report: {report_dir / 'results.md'}")
    results = report_dir / "results.md"
    if results.is_file() and not shared.quiet:
        typer.echo(results.read_text())


@app.command("classify")
@shared_options
def classify_cmd(
    shared: Shared,
    train: Annotated[
        list[Path], typer.Option("--train", help="Training npz (repeatable; train splits joined).")
    ],
    eval_data: Annotated[
        Path, typer.Option("--eval", help="npz whose val/test splits are scored.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run directory (rerun to resume).")],
    model: Annotated[
        str | None, typer.Option("--model", help="resnet18, resnet50, resnet101, densenet121.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Classifier seed.")] = None,
) -> None:
    """Train a classifier on the --train splits; score val and test of --eval after every epoch.

    Example: ganaug classify --train classic.npz --eval real.npz --model resnet101 --out runs/c
    """
    from ganaug.classify import fit_classifier
    from ganaug.data import read_npz
    from ganaug.runtime import main_process_lock

    _check_at_least("--seed", seed, 0, "a seed")
    extra = [f"classify.model={model}"] if model else []
    extra += [f"classify.seed={seed}"] if seed is not None else []
    cfg = shared.config(extra)
    _check_out_dir(out)
    seed_everything(cfg.classify.seed)
    train_sets = [read_npz(path) for path in train]
    real = read_npz(eval_data, required=("val", "test"))
    with main_process_lock(out):  # torchrun: rank 0 locks, every rank trains (DDP)
        result = fit_classifier(train_sets, real, cfg, out)  # writes out/config.yaml first
    last, best = result["last"], result["best_val"]
    last_acc, best_acc = 100 * last["test"]["accuracy"], 100 * best["test"]["accuracy"]
    seconds = ", ".join(f"{s:.1f}" for s in result["epoch_seconds"])
    budget = ""
    if result.get("budget") == "steps":  # an "epoch" is then one evaluation round
        budget = f"\nbudget: {result['steps']} optimiser steps, an epoch = an evaluation round"
    shared.echo(
        f"wrote {out / 'metrics.json'}\n"
        f"test accuracy: {last_acc:.2f} % at the last epoch ({last['epoch']}), {best_acc:.2f} % "
        f"at the best-val epoch ({best['epoch']}, val {100 * best['val']['accuracy']:.2f} %)\n"
        f"seconds per epoch: {seconds}{budget}"
    )


@app.command("report")
@shared_options(config=False)
def report_cmd(
    shared: Shared,
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `ganaug run`.")],
) -> None:
    """Tables, figures and a self-contained HTML page from a run directory's result files.

    Reads files only (classify/*/*/seed*/metrics.json, curves.csv, gan/log.csv, data/*.npz,
    data/fidelity.json, config.yaml) and writes RUN_DIR/report/. Prints results.md's path and
    Table 1 (the Table 1 only without --quiet).

    Example: ganaug report runs/retinamnist
    """
    from ganaug.report import build_report

    set_quiet(shared.quiet)
    setup_logging()  # after set_quiet: with --quiet stderr shows warnings only
    summary = build_report(run_dir)
    typer.echo(str(run_dir / "report" / "results.md"))
    shared.echo(summary["table1_markdown"])


@app.command("select")
@shared_options
def select_cmd(
    shared: Shared,
    samples: Annotated[Path, typer.Option("--samples", help="Raw synthetic npz (gan sample).")],
    real: Annotated[Path, typer.Option("--real", help="Real contract npz (its train split).")],
    out: Annotated[Path, typer.Option("--out", help="Selected synthetic npz, e.g. synthetic.npz.")],
    k: Annotated[int | None, typer.Option("--k", help="Images kept; paper: 443.")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="GAN checkpoint for critic scores.")
    ] = None,
    trained_on: Annotated[
        Path | None,
        typer.Option(
            "--trained-on",
            help="The set the GAN trained on, e.g. classic.npz; memorisation is then checked "
            "against it too.",
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Score, label and keep the top K synthetic images under per-class quotas.

    Writes --out, and selection.csv, fidelity.json, memorisation.png, selected_contact.png
    (and with --trained-on memorisation_trained_on.png) beside it.

    Example: ganaug select --samples raw.npz --real real.npz --k 443 --out synthetic.npz
    --checkpoint gan/checkpoints/last.pt --set select.quota=balanced
    """
    from ganaug.data import read_npz, write_npz
    from ganaug.select import select_samples

    _check_at_least("--k", k, 1, "the number of images kept")
    extra = [f"select.k={k}"] if k is not None else []
    cfg = shared.config(extra)
    _check_out_file(out, force, "synthetic.npz")
    if checkpoint is not None and not checkpoint.is_file():
        raise InputError(f"--checkpoint {checkpoint}: file not found; check the path")
    if checkpoint is not None:  # a bad checkpoint is refused before the labeller trains
        from ganaug.generators.checkpoint import check_checkpoint

        check_checkpoint(checkpoint)
    seed_everything(cfg.select.seed)
    raw, real_set = read_npz(samples), read_npz(real)
    trained_set = read_npz(trained_on) if trained_on is not None else None
    n_raw = len(raw.labels["train"])
    if cfg.select.k > n_raw:
        given = f"--k {k}" if k is not None else f"select.k {cfg.select.k}"
        raise InputError(
            f"{given}: more than the {n_raw} samples in {samples}; keep fewer, or generate "
            "more with `ganaug gan sample --n`"
        )
    result = select_samples(
        raw, real_set, cfg, out.parent, checkpoint=checkpoint, trained_on=trained_set
    )
    save_config(cfg, out.with_suffix(".config.yaml"))
    write_npz(out, result)  # last: an interrupted command leaves no npz, so a rerun is not refused
    counts = " / ".join(f"{n}: {c}" for n, c in result.meta["kept_counts"].items())
    short = result.meta["shortfall"]
    shared.echo(
        f"wrote {out} and selection.csv, fidelity.json beside it\n"
        f"kept {len(result.labels['train'])} of {len(raw.labels['train'])} ({counts})"
        + (f"\nshort of quota: {short}" if short else "")
    )
