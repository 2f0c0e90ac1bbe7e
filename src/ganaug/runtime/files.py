"""Output files: atomic writes, a full disk reported as DiskFull, checkpoints loaded with
`weights_only=True`, and no silent overwrite of a user's file."""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug import InputError, first_line

# errno values of a full disk or an exhausted quota (EDQUOT is missing on some platforms)
_NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class DiskFull(OSError):
    """A write failed because the disk (or the user's quota) is full.

    The atomic helpers raise it after removing their temp file, so the previous file at `path` is
    intact and rerunning the same command resumes; the CLI prints `str(err)` on one line, exit 1.
    """

    def __init__(self, path: Path | str | None, code: int = errno.ENOSPC) -> None:
        super().__init__(code, os.strerror(code), None if path is None else str(path))
        self.path = None if path is None else Path(path)

    def __str__(self) -> str:
        quota = self.errno == getattr(errno, "EDQUOT", None)
        what = "disk quota exceeded" if quota else "no space left on device"
        where = f"{self.path}: " if self.path is not None else ""
        return f"{where}{what}; free some space and rerun the same command to resume"

    def __reduce__(self):  # pickled across process pools: rebuild from (path, errno)
        return (type(self), (self.path, self.errno))


def disk_full(err: BaseException) -> DiskFull | None:
    """`err` as a DiskFull when it, or an exception it was raised from, is ENOSPC / EDQUOT."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return current
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return DiskFull(current.filename, current.errno)
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and `os.replace` it into place.

    A crash mid-write leaves the old file (or none), never a half-written one; any failure
    removes the temp file, and a full disk is raised as DiskFull naming `path`. The temp file is
    named `.NAME.<random>.tmp`: RunLock removes the ones a killed process left.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as err:
        if err.errno in _NO_SPACE and not isinstance(err, DiskFull):
            raise DiskFull(path, err.errno) from err
        raise
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_torch_save(obj: Any, path: Path | str) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


# UserWarnings torch.load gives just before weights_only refuses (or loads) a file: a pickle
# protocol other than torch's own, a TorchScript archive. On a user's stderr they are noise in
# front of the one-line refusal; matched by message, so any other warning still shows.
_LOAD_NOISE = (
    r"Detected pickle protocol \d+ in the checkpoint",
    r"'torch\.load' received a zip file",
)


def safe_torch_load(path: Path | str, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)`: a checkpoint can never run code. Bad files -> InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found; check the path")
    try:
        with warnings.catch_warnings():  # restores the caller's filters afterwards
            for message in _LOAD_NOISE:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        first = first_line(err, limit=None)
        if "weights only load failed" in first.lower():
            raise InputError(
                f"{path}: not a loadable ganaug checkpoint: it holds pickled objects other than "
                "tensors (code could run), refused by weights_only=True; use a ganaug file"
            ) from None
        raise InputError(
            f"{path}: not a loadable ganaug checkpoint ({first[:160]}); "
            "use a file written by ganaug"
        ) from None


def refuse_overwrite(path: Path | str, force: bool) -> None:
    """Nothing a user made is overwritten silently: an existing output needs --force."""
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; pass --force to overwrite it or choose --out")
