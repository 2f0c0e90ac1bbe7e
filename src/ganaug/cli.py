"""The `ganaug` command line: each command parses, builds a Config, calls one library function.

Exit status: 0 done, 2 bad input or config (one line on stderr, no traceback unless --debug),
1 anything else (also one line; a full disk names the file it could not write), 130 Ctrl-C and
143 SIGTERM (one line; the last checkpoint stays, so the same command resumes).
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from ganaug import InputError, install_signal_handlers
from ganaug.config import DEFAULT_PROFILE, Config, load_config, save_config
from ganaug.runtime import (
    disk_full,
    is_main,
    refuse_overwrite,
    seed_everything,
    set_quiet,
    set_threads,
    setup_logging,
)

log = logging.getLogger("ganaug")


class _App(typer.Typer):
    """Typer app whose call turns InputError into exit 2 and other errors into exit 1.

    Either way stderr gets one line (a traceback too with --debug).
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = list(args[0]) if args else sys.argv[1:]
        debug = "--debug" in argv
        install_signal_handlers()  # SIGTERM unwinds like Ctrl-C: locks released, temp files gone
        try:
            return super().__call__(*args, **kwargs)
        except InputError as err:
            if debug:
                traceback.print_exc()
            print(f"ganaug: error: {err}", file=sys.stderr)
            sys.exit(2)
        except SystemExit as done:  # typer turns KeyboardInterrupt into a silent exit 130
            stop = _interrupt_behind(done)
            if stop is None:
                raise
            signum = getattr(stop, "signum", signal.SIGINT)
            name = signal.Signals(signum).name
            line = f"ganaug: interrupted ({name}); rerun the same command to resume"
            print(line, file=sys.stderr)
            sys.exit(128 + int(signum))
        except Exception as err:  # the last line of defence: one line, exit 1
            if debug:
                traceback.print_exc()
            full = disk_full(err)
            if full is not None:  # the atomic writes kept the previous files: rerun resumes
                print(f"ganaug: error: {full}", file=sys.stderr)
                sys.exit(1)
            line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            print(
                f"ganaug: failed: {type(err).__name__}: {line} (rerun with --debug)",
                file=sys.stderr,
            )
            sys.exit(1)


def _interrupt_behind(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (KeyboardInterrupt) or SIGTERM (Interrupted) that caused `err`, if any."""
    current: BaseException | None = err
    while current is not None:
        if isinstance(current, KeyboardInterrupt):
            return current
        current = current.__cause__ or current.__context__
    return None


app = _App(
    name="ganaug",
    help="GAN-based synthetic data augmentation for small medical image classification sets.\n\n"
    "Example: ganaug data --data ../shared/data/retinamnist.npz --out real.npz",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ProfileOpt = Annotated[
    str, typer.Option("--profile", help="Profile name (smoke, quick, paper) or a YAML file.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set gan.width=32 (repeatable)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars or info lines.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]


def build_config(
    profile: str,
    sets: list[str] | None,
    *,
    quiet: bool = False,
    device: str | None = None,
    extra: list[str] | None = None,
) -> Config:
    """The entry point of every command: logging, config (profile, then --set), threads, seed."""
    set_quiet(quiet)
    setup_logging()  # after set_quiet: with --quiet stderr shows warnings only
    overrides = list(extra or []) + list(sets or [])
    if device:
        overrides.append(f"runtime.device={device}")
    cfg = load_config(profile, overrides)
    set_threads(cfg.runtime.threads)
    return cfg


def _echo(text: str, quiet: bool) -> None:
    if not quiet and is_main():  # under torchrun only rank 0 reports
        typer.echo(text)


def _check_at_least(option: str, value: int | None, low: int, what: str) -> None:
    """A count or seed option below its minimum: one line naming the option and its value."""
    if value is not None and value < low:
        raise InputError(f"{option} {value}: {what} must be >= {low}")


def _check_out_file(out: Path, force: bool, example: str) -> None:
    """--out names a file this command writes: not a directory, below no file, and an existing
    file only with --force."""
    if out.is_dir():
        raise InputError(
            f"--out {out}: is a directory, but this command writes one file; give a file path "
            f"such as {out / example}"
        )
    _check_out_parents(out)
    refuse_overwrite(out, force)


def _check_out_dir(out: Path) -> None:
    """--out names a run directory this command writes into: not a file, below no file."""
    if out.exists() and not out.is_dir():
        raise InputError(
            f"--out {out}: is a file, but this command writes a run directory; give a new "
            "directory (or an earlier run's, to resume)"
        )
    _check_out_parents(out)


def _check_out_parents(out: Path) -> None:
    existing = next((p for p in out.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(
            f"--out {out}: {existing} is a file, not a directory; choose another --out"
        )


@app.command("data")
def data_cmd(
    data: Annotated[str, typer.Option("--data", help="npz path, image folder or MedMNIST flag.")],
    out: Annotated[Path, typer.Option("--out", help="Output contract npz, e.g. real.npz.")],
    size: Annotated[int | None, typer.Option("--size", help="Output side in pixels.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    sets: SetOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Load, validate and resize a data set into the npz contract.

    Example: ganaug data --data ../shared/data/retinamnist.npz --size 64 --out real.npz
    """
    from ganaug.data import load_spec, summarize, write_npz

    extra = [f"data.spec={data}"] + ([f"data.size={size}"] if size is not None else [])
    cfg = build_config(profile, sets, quiet=quiet, extra=extra)
    _check_out_file(out, force, "real.npz")
    result = load_spec(cfg)
    save_config(cfg, out.with_suffix(".config.yaml"))
    write_npz(out, result)  # last: an interrupted command leaves no npz, so a rerun is not refused
    _echo(f"wrote {out}\n{summarize(result)}", quiet)


@app.command("augment")
def augment_cmd(
    data: Annotated[Path, typer.Option("--data", help="Contract npz with a train split.")],
    out: Annotated[Path, typer.Option("--out", help="Output npz (train split only).")],
    seed: Annotated[int | None, typer.Option("--seed", help="Augmentation seed.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    sets: SetOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Classic augmentation (the paper's flips and colour jitter) of the train split.

    Example: ganaug augment --data real.npz --out classic.npz --set augment.n_color=2
    """
    from ganaug.augment import augment_imageset
    from ganaug.data import read_npz, summarize, write_npz

    _check_at_least("--seed", seed, 0, "a seed")
    extra = [f"augment.seed={seed}"] if seed is not None else []
    cfg = build_config(profile, sets, quiet=quiet, extra=extra)
    _check_out_file(out, force, "classic.npz")
    seed_everything(cfg.augment.seed)
    real = read_npz(data)
    result = augment_imageset(real, cfg, source=str(data), preview=out.with_suffix(".preview.png"))
    save_config(cfg, out.with_suffix(".config.yaml"))
    write_npz(out, result)  # last: an interrupted command leaves no npz, so a rerun is not refused
    _echo(f"wrote {out}\n{summarize(result)}", quiet)


@app.command("run")
def run_cmd(
    profile: ProfileOpt = DEFAULT_PROFILE,
    data: Annotated[
        str | None, typer.Option("--data", help="Data spec (default: profile's).")
    ] = None,
    size: Annotated[int | None, typer.Option("--size", help="Image side in pixels.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run dir (runs/<name>).")] = None,
    sets: SetOpt = None,
    executor: Annotated[
        str | None, typer.Option("--executor", help="Grid executor: local or ray.")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Local process pool.")] = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The whole recipe: data, classic augmentation, GAN, selection, classifier grid, report.

    Rerunning the same command resumes: finished artefacts and grid cells are skipped.

    Examples:
      ganaug run --profile smoke --data ../shared/data/retinamnist.npz --out runs/smoke
      ganaug run --profile paper --device cuda --executor ray
    """
    from ganaug.experiment import run_experiment

    extra = [f"data.spec={data}"] if data else []
    extra += [f"data.size={size}"] if size is not None else []
    extra += [f"experiment.executor={executor}"] if executor else []
    extra += [f"experiment.workers={workers}"] if workers is not None else []
    cfg = build_config(profile, sets, quiet=quiet, device=device, extra=extra)
    run_dir = out or Path("runs") / cfg.experiment.name
    _check_out_dir(run_dir)
    report_dir = run_experiment(cfg, run_dir)
    _echo(f"report: {report_dir / 'results.md'}", quiet)
    results = report_dir / "results.md"
    if results.is_file() and not quiet:
        typer.echo(results.read_text())


@app.command("classify")
def classify_cmd(
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
    profile: ProfileOpt = DEFAULT_PROFILE,
    sets: SetOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
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
    cfg = build_config(profile, sets, quiet=quiet, device=device, extra=extra)
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
    _echo(
        f"wrote {out / 'metrics.json'}\n"
        f"test accuracy: {last_acc:.2f} % at the last epoch ({last['epoch']}), {best_acc:.2f} % "
        f"at the best-val epoch ({best['epoch']}, val {100 * best['val']['accuracy']:.2f} %)\n"
        f"seconds per epoch: {seconds}{budget}",
        quiet,
    )


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `ganaug run`.")],
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Tables, figures and a self-contained HTML page from a run directory's result files.

    Reads files only (classify/*/*/seed*/metrics.json, curves.csv, gan/log.csv, data/*.npz,
    data/fidelity.json, config.yaml) and writes RUN_DIR/report/. Prints results.md's path and
    Table 1 (the Table 1 only without --quiet).

    Example: ganaug report runs/retinamnist
    """
    from ganaug.report import build_report

    set_quiet(quiet)
    setup_logging()  # after set_quiet: with --quiet stderr shows warnings only
    summary = build_report(run_dir)
    typer.echo(str(run_dir / "report" / "results.md"))
    _echo(summary["table1_markdown"], quiet)


@app.command("select")
def select_cmd(
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
    profile: ProfileOpt = DEFAULT_PROFILE,
    sets: SetOpt = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
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
    cfg = build_config(profile, sets, quiet=quiet, device=device, extra=extra)
    _check_out_file(out, force, "synthetic.npz")
    if checkpoint is not None and not checkpoint.is_file():
        raise InputError(f"--checkpoint {checkpoint}: file not found; check the path")
    if checkpoint is not None:  # a bad checkpoint is refused before the labeller trains
        import torch

        from ganaug.gan.state import load_nets

        load_nets(checkpoint, torch.device("cpu"))
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
    _echo(
        f"wrote {out} and selection.csv, fidelity.json beside it\n"
        f"kept {len(result.labels['train'])} of {len(raw.labels['train'])} ({counts})"
        + (f"\nshort of quota: {short}" if short else ""),
        quiet,
    )


gan_app = typer.Typer(
    help="Train the GAN on a train split, and sample images from its checkpoint.",
    no_args_is_help=True,
)
app.add_typer(gan_app, name="gan")


@gan_app.command("train")
def gan_train_cmd(
    data: Annotated[Path, typer.Option("--data", help="Contract npz, e.g. classic.npz.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (rerun to resume).")],
    profile: ProfileOpt = DEFAULT_PROFILE,
    sets: SetOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train (or resume) the GAN on the train split of --data (train-derived images only).

    Writes DIR/config.yaml, checkpoints/last.pt, log.csv, grids/epoch_NNNN.png, reals.png.
    Example: ganaug gan train --data classic.npz --out runs/gan --set gan.epochs_lr1=2
    """
    from ganaug.data import read_npz
    from ganaug.gan.train import train_gan
    from ganaug.runtime import main_process_lock

    cfg = build_config(profile, sets, quiet=quiet, device=device)
    _check_out_dir(out)
    seed_everything(cfg.gan.seed)
    real = read_npz(data)
    with main_process_lock(out):  # config.yaml is written once data and checkpoint checked out
        checkpoint = train_gan(real, cfg, out, source=str(data), config_file=out / "config.yaml")
    _echo(
        f"wrote {checkpoint}\nlog: {out / 'log.csv'}, grids: {out / 'grids'}, "
        f"reals: {out / 'reals.png'}",
        quiet,
    )


@gan_app.command("sample")
def gan_sample_cmd(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="DIR/checkpoints/last.pt.")],
    out: Annotated[Path, typer.Option("--out", help="Output npz, e.g. synthetic_raw.npz.")],
    n: Annotated[int | None, typer.Option("--n", help="Images (default gan.n_samples).")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of image 0 (image i: seed + i).")
    ] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    sets: SetOpt = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Generate images from a GAN checkpoint, one seed per image, plus a contact sheet PNG.

    Example: ganaug gan sample --checkpoint runs/gan/checkpoints/last.pt --n 2000 --out raw.npz
    """
    from ganaug.data import summarize, write_npz
    from ganaug.gan.sample import contact_sheet, sample_images
    from ganaug.runtime import pick_device, save_image_grid

    _check_at_least("--n", n, 1, "the number of images")
    _check_at_least("--seed", seed, 0, "a seed")
    extra = [f"gan.n_samples={n}"] if n is not None else []
    extra += [f"gan.sample_seed={seed}"] if seed is not None else []
    cfg = build_config(profile, sets, quiet=quiet, device=device, extra=extra)
    _check_out_file(out, force, "synthetic_raw.npz")
    g = cfg.gan
    samples = sample_images(
        checkpoint, g.n_samples, g.sample_seed, device=pick_device(cfg.runtime.device)
    )
    save_image_grid(out.with_suffix(".png"), contact_sheet(samples))
    write_npz(out, samples)  # last: an interrupted command leaves no npz, so a rerun is not refused
    _echo(f"wrote {out} and {out.with_suffix('.png')}\n{summarize(samples)}", quiet)


if __name__ == "__main__":
    app()
