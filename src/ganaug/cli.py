"""The `ganaug` command line: each command parses, builds a Config, calls one library function.

Exit status: 0 done, 2 bad input or config (one line on stderr, no traceback unless --debug),
1 anything else.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from ganaug import InputError
from ganaug.config import DEFAULT_PROFILE, Config, load_config, save_config
from ganaug.runtime import refuse_overwrite, seed_everything, set_quiet, set_threads, setup_logging

log = logging.getLogger("ganaug")


class _App(typer.Typer):
    """Typer app whose call turns InputError into exit 2 and other errors into exit 1."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = list(args[0]) if args else sys.argv[1:]
        debug = "--debug" in argv
        try:
            return super().__call__(*args, **kwargs)
        except InputError as err:
            if debug:
                traceback.print_exc()
            print(f"ganaug: error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("ganaug: interrupted; rerun the same command to resume", file=sys.stderr)
            sys.exit(130)
        except Exception as err:  # the last line of defence: one line, exit 1
            if debug:
                traceback.print_exc()
            line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            print(
                f"ganaug: failed: {type(err).__name__}: {line} (rerun with --debug)",
                file=sys.stderr,
            )
            sys.exit(1)


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
    setup_logging()
    logging.getLogger("ganaug").setLevel(logging.WARNING if quiet else logging.INFO)
    overrides = list(extra or []) + list(sets or [])
    if device:
        overrides.append(f"runtime.device={device}")
    cfg = load_config(profile, overrides)
    set_threads(cfg.runtime.threads)
    return cfg


def _echo(text: str, quiet: bool) -> None:
    if not quiet:
        typer.echo(text)


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
    refuse_overwrite(out, force)
    result = load_spec(cfg)
    write_npz(out, result)
    save_config(cfg, out.with_suffix(".config.yaml"))
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

    extra = [f"augment.seed={seed}"] if seed is not None else []
    cfg = build_config(profile, sets, quiet=quiet, extra=extra)
    refuse_overwrite(out, force)
    seed_everything(cfg.augment.seed)
    real = read_npz(data)
    result = augment_imageset(real, cfg, source=str(data), preview=out.with_suffix(".preview.png"))
    write_npz(out, result)
    save_config(cfg, out.with_suffix(".config.yaml"))
    _echo(f"wrote {out}\n{summarize(result)}", quiet)


if __name__ == "__main__":
    app()
