"""The `ganaug` command line's frame: the app, its exit statuses, the options every command
shares, and the checks of --out; the commands are in commands.py and gan.py. Each command parses,
builds a Config, calls one library function.

Exit status: 0 done, 2 bad input or config (one line on stderr, no traceback unless --debug),
1 anything else (also one line; a full disk names the file it could not write), 130 Ctrl-C and
143 SIGTERM (one line; the last checkpoint stays, so the same command resumes).
"""

from __future__ import annotations

import functools
import inspect
import logging
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ganaug import InputError, first_line, install_signal_handlers
from ganaug.config import DEFAULT_PROFILE, Config, load_config
from ganaug.runtime import (
    disk_full,
    is_main,
    refuse_overwrite,
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
            line = first_line(err, limit=None)
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
    str,
    typer.Option("--profile", help="Profile name (smoke, quick, standard, paper) or a YAML file."),
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


@dataclass(frozen=True)
class Shared:
    """The options every command takes (declared once, in SHARED_OPTIONS)."""

    profile: str = DEFAULT_PROFILE
    sets: list[str] | None = None
    device: str | None = None
    quiet: bool = False
    debug: bool = False  # read from argv by _App (tracebacks); here for --help and typing

    def config(self, extra: list[str] | None = None) -> Config:
        return build_config(
            self.profile, self.sets, quiet=self.quiet, device=self.device, extra=extra
        )

    def echo(self, text: str) -> None:
        if not self.quiet and is_main():  # under torchrun only rank 0 reports
            typer.echo(text)


SHARED_OPTIONS = {  # name -> (typer annotation, default)
    "profile": (ProfileOpt, DEFAULT_PROFILE),
    "sets": (SetOpt, None),
    "device": (DeviceOpt, None),
    "quiet": (QuietOpt, False),
    "debug": (DebugOpt, False),
}


def shared_options(
    command: Callable[..., None] | None = None, *, config: bool = True
) -> Callable[..., Any]:
    """Give a command --profile, --set, --device, --quiet and --debug after its own options (with
    config=False, for a command that builds no config: --quiet and --debug); it receives them as
    `shared: Shared`."""
    if command is None:
        return functools.partial(shared_options, config=config)
    names = list(SHARED_OPTIONS) if config else ["quiet", "debug"]
    own = inspect.signature(command, eval_str=True)  # typer reads the annotations' objects
    params = [p for p in own.parameters.values() if p.name != "shared"]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        for name, (hint, default) in SHARED_OPTIONS.items()
        if name in names
    ]

    @functools.wraps(command)
    def with_shared(**kwargs: Any) -> None:
        shared = Shared(**{name: kwargs.pop(name) for name in names})
        command(shared=shared, **kwargs)

    with_shared.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    return with_shared


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
