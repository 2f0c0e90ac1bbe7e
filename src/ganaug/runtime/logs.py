"""Logging and progress bars: the human log on stderr (and in a log file), tqdm bars with ETA.

`set_quiet` (the CLI's --quiet; ranks > 0 of a torchrun job) writes this module's `_QUIET`, which
`setup_logging` and `progress` read: set it through `set_quiet`, never by assigning a copy.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted, not when the handler was made
    (in-process callers such as tests swap sys.stderr between commands)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; ignored
        pass


def setup_logging(verbose: bool = False, log_file: Path | None = None) -> None:
    """Human log to stderr (warnings only with --quiet) and to `log_file` when given (all)."""
    logger = logging.getLogger("ganaug")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    stderr = [h for h in logger.handlers if getattr(h, "_ganaug", False)]
    if not stderr:
        stderr = [_StderrHandler()]
        stderr[0].setFormatter(logging.Formatter("%(message)s"))
        stderr[0]._ganaug = True  # type: ignore[attr-defined]
        logger.addHandler(stderr[0])
    stderr[0].setLevel(logging.WARNING if _QUIET else logging.NOTSET)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        path = str(log_file.resolve())
        if not any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
            fh = logging.FileHandler(path)
            fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            logger.addHandler(fh)
    logger.propagate = False


_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm progress bar with ETA; off when stderr is not a TTY or with --quiet."""
    from tqdm.auto import tqdm

    disable = _QUIET or not sys.stderr.isatty()
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


def log_above_bars(bar: Any, logger: logging.Logger) -> AbstractContextManager:
    """Log lines printed above a shown progress bar instead of through it; a hidden bar (--quiet,
    no TTY) changes nothing, so the stderr handler keeps its level."""
    if getattr(bar, "disable", True):
        return nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(loggers=[logger])
