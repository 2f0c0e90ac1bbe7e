"""GAN training: outputs, leakage guard, bitwise resume (in-process, after kill -9 or SIGTERM),
guards."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_clean_interrupt, make_imageset
from ganaug import InputError
from ganaug.config import load_config
from ganaug.data import write_npz
from ganaug.generators.checkpoint import load_checkpoint
from ganaug.generators.loop import LOG_COLUMNS, TrainingDiverged, train_gan, training_tensors
from ganaug.generators.wgan import losses
from ganaug.runtime import atomic_torch_save

TINY = [
    "gan.width=16",
    "gan.z_dim=8",
    "gan.batch_size=8",
    "gan.n_critic=2",
    "gan.subset=0",
    "gan.epochs_lr1=2",
    "gan.epochs_lr2=1",
    "gan.grid_every=1",
    "gan.ckpt_every=1",
    "runtime.device=cpu",
]


def tiny_cfg(*sets: str):
    return load_config("smoke", TINY + list(sets))


def tiny_data(n: int = 24):
    return make_imageset(n=n, size=16, classes=3)


def assert_same_state(a, b, where="ckpt"):
    """Every tensor equal (torch.equal), every other value equal, recursively."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def comparable(ckpt: dict) -> dict:
    """The training state: global RNGs (unused by training, process-specific) and paths left out."""
    out = {k: v for k, v in ckpt.items() if k not in ("config", "source", "rng")}
    return {**out, "rng": ckpt["rng"]["train"]}


def test_training_writes_log_grids_reals_and_checkpoint(tmp_path: Path):
    cfg = tiny_cfg("gan.mode=conditional", "gan.diffaug=color,translation,cutout")
    path = train_gan(tiny_data(), cfg, tmp_path, source="tiny.npz")
    assert path == tmp_path / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["step"] == 3  # 24 images / (8 x 2) -> 1 step per epoch
    assert ckpt["class_names"] == ["c0", "c1", "c2"] and ckpt["model_args"]["size"] == 16
    with open(tmp_path / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == LOG_COLUMNS
    assert [r["lr"] for r in rows] == ["0.0002", "0.0002", "0.0001"]  # lr, then lr2
    assert all(float(r["gp"]) > 0 for r in rows)
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == [
        f"epoch_{e:04d}.png" for e in (1, 2, 3)
    ]
    from PIL import Image

    grid = Image.open(tmp_path / "grids" / "epoch_0003.png")
    assert grid.size == (8 * 18 + 2, 3 * 18 + 2)  # rows = the 3 classes, 8 fixed z per row
    assert (tmp_path / "reals.png").is_file()
    # rerunning a finished run trains nothing and changes nothing
    before = path.stat().st_mtime_ns
    train_gan(tiny_data(), cfg, tmp_path)
    assert path.stat().st_mtime_ns == before


def test_leakage_guard_refuses_val_or_test_derived_data(tmp_path: Path):
    data = tiny_data()
    data.meta["source_splits"] = {"train": ["train", "val"]}
    with pytest.raises(InputError, match="val split"):
        train_gan(data, tiny_cfg(), tmp_path, source="leaky.npz")
    assert not (tmp_path / "checkpoints").exists()


def test_subset_is_stratified_and_per_class_needs_every_class(tmp_path: Path):
    images, labels = training_tensors(tiny_data(), tiny_cfg("gan.subset=12").gan)
    assert images.shape == (12, 16, 16, 3) and torch.bincount(labels).tolist() == [4, 4, 4]
    data = tiny_data()
    data.labels["train"] = np.arange(24) % 2  # class c2 has no images
    with pytest.raises(InputError, match="needs images of every class"):
        train_gan(data, tiny_cfg("gan.mode=per_class"), tmp_path)


def test_weight_clipping_keeps_critic_in_range(tmp_path: Path):
    cfg = tiny_cfg("gan.loss=wgan", "gan.clip=0.01", "gan.epochs_lr2=0")
    ckpt = load_checkpoint(train_gan(tiny_data(), cfg, tmp_path))
    assert ckpt["model_args"]["critic_batch_norm"]  # the original WGAN critic
    weights = [w for k, w in ckpt["D"][0].items() if "running" not in k and "num_batches" not in k]
    assert max(w.abs().max().item() for w in weights) <= 0.01
    assert ckpt["opt_D"][0]["param_groups"][0].get("alpha") == 0.99  # RMSprop


PER_CLASS = ["gan.mode=per_class", "gan.diffaug=color,translation,cutout", "gan.ema_decay=0.9"]


def test_resume_in_process_is_bitwise_identical(tmp_path: Path):
    cfg, data = tiny_cfg(*PER_CLASS), tiny_data(48)
    full = load_checkpoint(train_gan(data, cfg, tmp_path / "full"))
    train_gan(data, cfg, tmp_path / "part", stop_after=1)
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")["epoch"] == 1
    resumed = load_checkpoint(train_gan(data, cfg, tmp_path / "part"))
    assert_same_state(comparable(full), comparable(resumed))
    assert len(full["G"]) == 3 and len(full["G_ema"]) == 3  # one GAN per class
    with open(tmp_path / "part" / "log.csv", newline="") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2", "3"]
    # a finished shorter run, extended by more epochs, equals the longer run too
    train_gan(data, tiny_cfg(*PER_CLASS, "gan.epochs_lr2=0"), tmp_path / "ext")
    extended = load_checkpoint(train_gan(data, cfg, tmp_path / "ext"))
    assert_same_state(comparable(full), comparable(extended))
    # another seed trains another GAN
    other = load_checkpoint(train_gan(data, tiny_cfg(*PER_CLASS, "gan.seed=1"), tmp_path / "s1"))
    assert not torch.equal(other["G"][0]["fc.weight"], full["G"][0]["fc.weight"])


SLOW_CLI = """
import sys, time
import ganaug.generators.loop as train
save = train.save_checkpoint
def slow_save(*args, **kwargs):  # leaves time to stop the process between checkpoints
    save(*args, **kwargs)
    time.sleep(2.0)
train.save_checkpoint = slow_save
from ganaug.cli import app
app(sys.argv[1:])
"""


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_stopped_run_resumes_bitwise_identical(tmp_path: Path, cli, signum):
    """`ganaug gan train` killed (-9) or terminated after its first checkpoint; rerun = full run."""
    data = tmp_path / "tiny.npz"
    write_npz(data, tiny_data())
    sets = TINY + ["gan.epochs_lr1=4", "gan.epochs_lr2=2", "gan.diffaug=translation"]
    sets += ["runtime.threads=1"]

    def argv(out: Path) -> list[str]:
        args = ["gan", "train", "--data", str(data), "--out", str(out), "--profile", "smoke"]
        return args + ["--quiet", *(a for item in sets for a in ("--set", item))]

    out = tmp_path / "stopped"
    ckpt = out / "checkpoints" / "last.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *argv(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signum)
    assert_clean_interrupt(proc, out, signum)
    assert 1 <= load_checkpoint(ckpt)["epoch"] < 6
    assert cli(argv(out)) == 0  # the same command resumes (a stale lock is taken over)
    assert cli(argv(tmp_path / "full")) == 0
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    assert full["epoch"] == 6
    assert_same_state(comparable(full), comparable(load_checkpoint(ckpt)))


def test_checkpoint_from_another_config_or_file_is_refused(tmp_path: Path):
    train_gan(tiny_data(), tiny_cfg("gan.epochs_lr2=0"), tmp_path)
    with pytest.raises(InputError, match="another architecture.*width"):
        train_gan(tiny_data(), tiny_cfg("gan.width=32"), tmp_path)
    with pytest.raises(InputError, match=r"gan.lr 0.0002 -> 0.001"):
        train_gan(tiny_data(), tiny_cfg("gan.lr=0.001"), tmp_path)
    with pytest.raises(InputError, match="different data"):
        train_gan(make_imageset(n=24, size=16, classes=3, seed=5), tiny_cfg(), tmp_path)
    atomic_torch_save({"weights": torch.ones(2)}, tmp_path / "checkpoints" / "last.pt")
    with pytest.raises(InputError, match="not a ganaug GAN checkpoint"):
        train_gan(tiny_data(), tiny_cfg(), tmp_path)


def test_non_finite_loss_stops_or_skips(tmp_path: Path, monkeypatch):
    train_gan(tiny_data(), tiny_cfg(), tmp_path, stop_after=1)
    monkeypatch.setattr(losses, "critic_loss", lambda real, fake: real.mean() * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"epoch 2.*last.pt \(epoch 1\)"):
        train_gan(tiny_data(), tiny_cfg(), tmp_path)
    with pytest.raises(TrainingDiverged, match="critic loss at epoch 1.*none yet"):
        train_gan(tiny_data(), tiny_cfg(), tmp_path / "fresh")
    skip = tiny_cfg("gan.nan_policy=skip", "gan.max_nan_skips=3")
    with pytest.raises(
        TrainingDiverged, match="epoch 2.* after 3 skipped"
    ):  # 2 critic steps per epoch
        train_gan(tiny_data(), skip, tmp_path / "skip")
    monkeypatch.undo()
    assert load_checkpoint(train_gan(tiny_data(), tiny_cfg(), tmp_path))["epoch"] == 3
