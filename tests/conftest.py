"""Shared fixtures: the real RetinaMNIST file, tiny generated image sets, a CLI runner."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganaug.data import ImageSet, write_npz

REPO = Path(__file__).resolve().parents[1]
SHARED_NPZ = REPO.parent / "shared" / "data" / "retinamnist.npz"


@pytest.fixture(scope="session")
def retina_npz() -> Path:
    assert SHARED_NPZ.is_file(), f"the shared RetinaMNIST file is missing at {SHARED_NPZ}"
    return SHARED_NPZ


def make_imageset(
    n: int = 20,
    size: int = 8,
    channels: int = 3,
    classes: int = 3,
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> ImageSet:
    """A tiny random image set with every class present in every split."""
    rng = np.random.default_rng(seed)
    images, labels = {}, {}
    for split in splits:
        images[split] = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
        labels[split] = np.arange(n, dtype=np.int64) % classes
    names = tuple(f"c{i}" for i in range(classes))
    meta = {"stage": "data", "source_splits": {s: [s] for s in splits}}
    return ImageSet(images, labels, names, meta, {})


def learnable_imageset(
    n: int = 40,
    size: int = 16,
    classes: int = 3,
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> ImageSet:
    """Classes differ in brightness, so a few classifier epochs learn something."""
    rng = np.random.default_rng(seed)
    images, labels = {}, {}
    for split in splits:
        lab = np.arange(n) % classes
        noise = rng.integers(0, 80, (n, size, size, 3))
        images[split] = (noise + 80 * lab[:, None, None, None]).astype(np.uint8)
        labels[split] = lab.astype(np.int64)
    meta = {"stage": "data", "source_splits": {s: [s] for s in splits}}
    return ImageSet(images, labels, tuple(f"grade {i}" for i in range(classes)), meta, {})


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.npz"
    write_npz(path, make_imageset())
    return path


def run_cli(args: list[str]) -> int:
    """Run the ganaug CLI in-process; returns the exit status."""
    from ganaug.cli import app

    try:
        app([str(a) for a in args])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


@pytest.fixture
def cli():
    return run_cli


def pytest_configure(config):
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tests use tiny tensors: one torch thread is fastest, and two threads on two busy cores
    mostly wait on each other. Subprocess tests (the CLI end to end) keep torch's default."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class StopRun(Exception):
    """Raised by stop_after_epoch's hook: a test's stand-in for an interrupted fit."""


def stop_after_epoch(epoch: int):
    """An `on_epoch` hook for fit_classifier that stops the run after `epoch` (or round)."""

    def hook(row):
        if row["epoch"] == epoch:
            raise StopRun

    return hook


def assert_clean_interrupt(proc: subprocess.Popen, out: Path, signum: int) -> None:
    """Ctrl-C / SIGTERM: exit 128 + signum, one line saying how to resume, lock and temp files
    gone. SIGKILL: the process had no say; its lock stays for the rerun to take over."""
    _, err = proc.communicate(timeout=60)
    err = err.decode().strip()
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and (out / "run.lock").is_file()
        return
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    name = signal.Signals(signum).name
    assert err == f"ganaug: interrupted ({name}); rerun the same command to resume"
    assert not (out / "run.lock").exists()
    assert not [p for p in out.rglob(".*.tmp")], "an interrupted write left its temp file"
