"""Runtime helpers shared by every stage: device choice, seeding, torchrun helpers, atomic files,
run lock, logging.

Library code never seeds global RNGs itself: commands call `seed_everything` once at their entry
and pass explicit `torch.Generator`s (from `make_generator`) to anything random.
"""

from __future__ import annotations

import atexit
import errno
import io
import json
import logging
import os
import random
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------------------------
# fast paths (CUDA by default; each one can be forced on any device, which the tests do on CPU)


@dataclass(frozen=True)
class FastPaths:
    """Which speed-ups a training loop uses; `fast_paths` resolves them from runtime.*.

    Each path changes speed, not meaning: tests compare each with the plain path on CPU.
    """

    amp: bool = False  # bf16 autocast of forward passes (losses and optimiser state stay float32)
    channels_last: bool = False  # NHWC memory format for convolution weights and inputs
    fused: bool = False  # fused (Adam) or multi-tensor (RMSprop) optimiser kernels
    compile: bool = False  # torch.compile the networks' forward
    pin_memory: bool = False  # page-locked host batches before a host -> device copy

    def describe(self) -> str:
        on = [name for name in self.__dataclass_fields__ if getattr(self, name)]
        return ", ".join(on) or "none (plain path)"


PLAIN = FastPaths()  # no speed-ups: the reference every fast path is tested against


def fast_paths(runtime: Any, device: torch.device) -> FastPaths:
    """The paths in effect for `runtime` (a RuntimeConfig) on `device`.

    amp, channels_last, fused and pin_memory apply on CUDA only (on a CPU they cost speed or
    change nothing); compile applies wherever it is asked for (CPU needs a C++ compiler).
    """
    cuda = device.type == "cuda"
    return FastPaths(
        amp=runtime.amp and cuda,
        channels_last=runtime.channels_last and cuda,
        fused=runtime.fused and cuda,
        compile=runtime.compile,
        pin_memory=cuda,
    )


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    """bf16 autocast on `device` when enabled, else a no-op context."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def prepare_module(module: torch.nn.Module, fast: FastPaths) -> torch.nn.Module:
    """channels_last weights and a compiled forward (`Module.compile`), both in place.

    In place keeps state-dict keys, checkpoints, EMA copies and DDP wrapping unchanged; returns
    `module` for chaining. Call it before wrapping in DDP (gradient buckets follow the layout).
    """
    if fast.channels_last:
        module.to(memory_format=torch.channels_last)
    if fast.compile:
        module.compile()
    return module


def as_input(x: torch.Tensor, fast: FastPaths) -> torch.Tensor:
    """A float (B, C, H, W) batch in the memory format the prepared module expects."""
    return x.contiguous(memory_format=torch.channels_last) if fast.channels_last else x


def to_device(x: torch.Tensor, device: torch.device, fast: FastPaths) -> torch.Tensor:
    """Host -> device copy; pinned and asynchronous when fast.pin_memory and x is on the host."""
    if fast.pin_memory and x.device.type == "cpu" and device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def make_optimiser(
    kind: str, params: Iterable[torch.nn.Parameter], fast: FastPaths, **kwargs: Any
) -> torch.optim.Optimizer:
    """`adam` or `rmsprop` with fused (Adam) / multi-tensor (RMSprop) kernels when fast.fused."""
    if kind == "adam":
        return torch.optim.Adam(params, fused=True if fast.fused else None, **kwargs)
    if kind == "rmsprop":  # torch has no fused RMSprop: the multi-tensor kernel instead
        return torch.optim.RMSprop(params, foreach=True if fast.fused else None, **kwargs)
    raise ValueError(f"unknown optimiser {kind!r}")


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
# distributed training under torchrun (one process per device; one process needs no launcher)
#
# `fit_classifier` and `train_gan` call init_distributed themselves, so the library and the CLI
# agree on the job; every helper below is a no-op in a single process.


@dataclass(frozen=True)
class DistInfo:
    rank: int  # this process's place in the job; 0 is the main process (it writes the files)
    world: int  # processes in the job; 1 = not distributed
    local_rank: int  # place on this machine: rank r trains on cuda:local_rank


def dist_info() -> DistInfo:
    """torchrun's RANK, WORLD_SIZE and LOCAL_RANK; without a launcher (0, 1, 0)."""
    env = os.environ
    return DistInfo(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def distributed() -> bool:
    """True once init_distributed joined a job of more than one process."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def init_distributed(device: torch.device) -> torch.device:
    """Join the torchrun job when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA); idempotent.

    Returns this rank's device (cuda:LOCAL_RANK for a plain `cuda`); one process gets `device`
    back and nothing is initialised. Ranks > 0 log warnings only and show no progress bars.
    """
    info = dist_info()
    if info.world <= 1:
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device {device}: multi-process runs need cpu or cuda devices")
    if not distributed():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave_distributed)
        log.debug("rank %d of %d on %s", info.rank, info.world, device)
    if info.rank > 0:
        set_quiet(True)
        logging.getLogger("ganaug").setLevel(logging.WARNING)
    return device


def _leave_distributed() -> None:
    if distributed():
        torch.distributed.destroy_process_group()


def is_main() -> bool:
    """True in the process that writes files, logs and checkpoints (rank 0, or the only one)."""
    return dist_info().rank == 0


def barrier() -> None:
    """Wait for every rank (e.g. while rank 0 evaluates and writes); no-op in one process."""
    if distributed():
        torch.distributed.barrier()


def all_reduce_mean_grads(module: torch.nn.Module) -> None:
    """Average `module`'s gradients over the ranks in one flat all-reduce (StyleGAN3's loop).

    Call after backward and before optimiser.step; parameters without a gradient are left out
    (the same ones on every rank, as every rank runs the same code).
    """
    if not distributed():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= torch.distributed.get_world_size()
    for grad, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(part.view_as(grad))


@torch.no_grad()
def broadcast_params(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if distributed():
        for tensor in [*module.parameters(), *module.buffers()]:
            torch.distributed.broadcast(tensor, src=0)


def broadcast_from_main(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's `tensor` on every rank (in place; same shape and dtype everywhere)."""
    if distributed():
        torch.distributed.broadcast(tensor, src=0)
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over the ranks (in place)."""
    if distributed():
        torch.distributed.all_reduce(tensor)
    return tensor


def all_finite(value: torch.Tensor) -> bool:
    """Whether `value` is finite on every rank: ranks agree on skipping or stopping, so no rank
    waits in an all-reduce that another one left."""
    flag = torch.isfinite(value.detach()).all().to(torch.int32)
    if distributed():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def gather_objects(obj: Any) -> list[Any]:
    """`obj` of every rank, in rank order (pickled in memory only); [obj] in one process."""
    if not distributed():
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


# ---------------------------------------------------------------------------------------------
# atomic files


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
    removes the temp file, and a full disk is raised as DiskFull naming `path`.
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
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
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


# ---------------------------------------------------------------------------------------------
# run-directory lock


class RunLock:
    """`run.lock` holding host and pid; a second live process on the directory is refused.

    A lock left by a dead process on this host (a kill -9) is stale and taken over, and the
    temporary files its interrupted atomic writes left (`.NAME.<random>.tmp`, see atomic_path) are
    removed: with the lock held no other process can be writing them. Directories
    the lock had to create are removed again on release when nothing else was written into them,
    so a command refused for bad input leaves no empty output directory behind.
    """

    def __init__(self, directory: Path | str, name: str = "run.lock") -> None:
        self.path = Path(directory) / name
        self.held = False
        self.created: list[Path] = []  # directories acquire() made, deepest first

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
        missing = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = missing
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
            self._remove_leftovers()
            return
        raise InputError(f"{self.path}: could not take the lock; remove it if no run is active")

    def _remove_leftovers(self) -> None:
        leftovers = [p for p in self.path.parent.rglob(".*.tmp") if p.is_file()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        if leftovers:
            log.debug("removed %d temporary file(s) of interrupted writes", len(leftovers))

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
        for directory in self.created:  # deepest first; stops at the first one holding files
            try:
                directory.rmdir()
            except OSError:
                break
        self.created = []

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def main_process_lock(directory: Path | str) -> AbstractContextManager:
    """A RunLock taken by rank 0 only: the other ranks of a torchrun job work under its lock."""
    return RunLock(directory) if is_main() else nullcontext()


# ---------------------------------------------------------------------------------------------
# logging and progress


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


def provenance(stage: str, **extra: Any) -> dict[str, Any]:
    """The common part of every output's `meta`."""
    return {"stage": stage, "version": __version__, "torch": torch.__version__, **extra}


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 images laid out as one (H', W', C) canvas on white.

    `images` is (rows, cols, H, W, C) for an explicit layout, or (N, H, W, C) laid out `ncol` wide.
    """
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
    return canvas


def save_image_grid(
    path: Path | str, images: np.ndarray, ncol: int | None = None, pad: int = 2
) -> np.ndarray:
    """Write uint8 images as one PNG grid (see image_grid), atomically; returns the canvas."""
    from PIL import Image

    canvas = image_grid(images, ncol, pad)
    pil = Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return canvas
