"""TensorBoard event files (`runtime.tensorboard`): what a user watching a run sees."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import event_accumulator  # the tb extra (make setup)

from conftest import learnable_imageset, make_imageset
from ganaug.classify import fit_classifier
from ganaug.config import load_config
from ganaug.generators.loop import train_gan

TINY_GAN = [
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


def events(out_dir: Path):
    acc = event_accumulator.EventAccumulator(str(out_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def series(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def log_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_gan_writes_losses_per_step_epoch_means_and_grids(tmp_path: Path):
    data = make_imageset(n=24, size=16, classes=3)
    train_gan(data, load_config("smoke", TINY_GAN), tmp_path)
    acc = events(tmp_path)
    rows = log_rows(tmp_path / "log.csv")
    last_step = int(rows[-1]["step"])
    for name in ("gen_loss", "critic_loss", "wasserstein", "gp"):
        assert [s for s, _ in series(acc, f"gan/{name}")] == list(range(1, last_step + 1))
    means = series(acc, "gan_epoch/wasserstein")
    assert [s for s, _ in means] == [int(r["step"]) for r in rows]
    for (_, value), row in zip(means, rows, strict=True):
        assert value == pytest.approx(float(row["wasserstein"]), rel=1e-4, abs=1e-6)
    grids = acc.Images("gan/samples")
    assert [g.step for g in grids] == [int(r["step"]) for r in rows]  # grid_every=1
    assert grids[0].width > 16 and grids[0].height > 16


def test_resumed_gan_purges_the_events_after_its_checkpoint(tmp_path: Path):
    """Epoch 2's events were written but its checkpoint never landed: the rerun redoes epoch 2,
    and the board shows each step once, with the values of an uninterrupted run."""
    data, cfg = make_imageset(n=24, size=16, classes=3), load_config("smoke", TINY_GAN)
    out = tmp_path / "resumed"
    ckpt = out / "checkpoints" / "last.pt"
    train_gan(data, cfg, out, stop_after=1)
    shutil.copy(ckpt, tmp_path / "epoch1.pt")
    train_gan(data, cfg, out, stop_after=2)
    shutil.copy(tmp_path / "epoch1.pt", ckpt)  # as if killed before epoch 2's checkpoint
    train_gan(data, cfg, out)
    train_gan(data, cfg, tmp_path / "whole")
    resumed, whole = events(out), events(tmp_path / "whole")
    assert series(resumed, "gan/gen_loss") == series(whole, "gan/gen_loss")
    assert len(list((out / "tb").iterdir())) == 3  # one event file per session


def test_classifier_writes_train_and_val_curves_but_no_test_curve(tmp_path: Path):
    data = learnable_imageset()
    sets = ["classify.model=resnet18", "classify.epochs=2", "classify.batch_size=16"]
    fit_classifier(data, data, load_config("smoke", sets), tmp_path, device="cpu")
    acc = events(tmp_path)
    tags = set(acc.Tags()["scalars"])
    assert {"classify/train_loss", "classify/train_acc", "classify/val_loss"} <= tags
    assert not [t for t in tags if "test" in t]
    rows = log_rows(tmp_path / "curves.csv")
    val = series(acc, "classify/val_acc")
    assert [s for s, _ in val] == [int(r["step"]) for r in rows]
    assert [v for _, v in val] == pytest.approx([float(r["val_acc"]) for r in rows], rel=1e-5)


def test_tensorboard_off_writes_no_event_files(tmp_path: Path):
    data = make_imageset(n=24, size=16, classes=3)
    train_gan(data, load_config("smoke", [*TINY_GAN, "runtime.tensorboard=false"]), tmp_path)
    assert (tmp_path / "log.csv").is_file() and not (tmp_path / "tb").exists()
