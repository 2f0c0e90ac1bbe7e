"""Runtime helpers shared by every stage: device choice, seeding, atomic files, run lock, logging.

Library code never seeds global RNGs itself: commands call `seed_everything` once at their entry
and pass explicit `torch.Generator`s (from `make_generator`) to anything random.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug import InputError, __version__

log = logging.getLogger("ganaug")


# ---------------------------------------------------------------------------------------------
# device and seeding


def pick_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda > mps > cpu; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    if name == "mps" and not (torch.backends.mps.is_available()):
        raise InputError("--device mps: MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch once, at a command's entry point."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """An explicit generator: the only source of randomness library code uses."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def rng_state() -> dict[str, Any]:
    """Global RNG states, for checkpoints (resume must continue the same random stream)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


# ---------------------------------------------------------------------------------------------
# atomic files


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and `os.replace` it into place.

    A crash mid-write leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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


def safe_torch_load(path: Path | str, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)`: a checkpoint can never run code. Bad files -> InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found; check the path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"{path}: not a loadable ganaug checkpoint ({first[:160]}); "
            "use a file written by ganaug"
        ) from None


def refuse_overwrite(path: Path | str, force: bool) -> None:
    """Nothing a user made is overwritten silently: an existing output needs --force."""
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; pass --force to overwrite it or choose --out")


# ---------------------------------------------------------------------------------------------
# run-directory lock


class RunLock:
    """`run.lock` holding host and pid; a second live process on the directory is refused.

    A lock left by a dead process on this host (a kill -9) is stale and taken over.
    """

    def __init__(self, directory: Path | str, name: str = "run.lock") -> None:
        self.path = Path(directory) / name
        self.held = False

    def _owner_alive(self) -> tuple[bool, str]:
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False, "unreadable"
        desc = f"pid {info.get('pid')} on {info.get('host')}"
        if info.get("host") != socket.gethostname():
            return True, desc  # cannot check another host's process: assume alive
        try:
            os.kill(int(info["pid"]), 0)
        except (ProcessLookupError, KeyError, ValueError, TypeError):
            return False, desc
        except PermissionError:
            return True, desc
        return True, desc

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                alive, owner = self._owner_alive()
                if alive:
                    raise InputError(
                        f"{self.path}: another ganaug process ({owner}) is working in this "
                        "directory; wait for it or use another --out"
                    ) from None
                log.warning("taking over stale lock %s (%s is gone)", self.path, owner)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
            self.held = True
            return
        raise InputError(f"{self.path}: could not take the lock; remove it if no run is active")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------
# logging and progress


def setup_logging(verbose: bool = False, log_file: Path | None = None) -> None:
    """Human log to stderr (and to `log_file` when given)."""
    logger = logging.getLogger("ganaug")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_ganaug", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._ganaug = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
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


def provenance(stage: str, **extra: Any) -> dict[str, Any]:
    """The common part of every output's `meta`."""
    return {"stage": stage, "version": __version__, "torch": torch.__version__, **extra}


def save_image_grid(
    path: Path | str, images: np.ndarray, ncol: int | None = None, pad: int = 2
) -> None:
    """Write uint8 images as one PNG grid, atomically.

    `images` is (rows, cols, H, W, C) for an explicit layout, or (N, H, W, C) laid out `ncol` wide.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.ndim == 4:
        n = len(images)
        ncol = ncol or int(np.ceil(np.sqrt(n)))
        nrow = int(np.ceil(n / ncol))
        padded = np.zeros((nrow * ncol, *images.shape[1:]), dtype=np.uint8)
        padded[:n] = images
        images = padded.reshape(nrow, ncol, *images.shape[1:])
    rows, cols, h, w, c = images.shape
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for r in range(rows):
        for k in range(cols):
            y, x = pad + r * (h + pad), pad + k * (w + pad)
            canvas[y : y + h, x : x + w] = images[r, k]
    pil = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
