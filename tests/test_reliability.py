"""Crash recovery, concurrency, numerical guards and output hygiene, through the CLI.

The bad-input corpus is in test_bad_inputs.py; the GAN's kill -9 test in test_gan_train.py; the
killed `ganaug run` in test_experiment.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import assert_clean_interrupt, learnable_imageset, make_imageset
from ganaug import __version__
from ganaug.config import load_config
from ganaug.data import read_npz, write_npz
from ganaug.experiment import _fresh, stage_data
from ganaug.runtime import RunLock, safe_torch_load


def classify_args(data: Path, out: Path, *sets: str) -> list[str]:
    args = ["classify", "--train", data, "--eval", data, "--out", out, "--model", "resnet18"]
    args += ["--profile", "smoke", "--quiet"]
    for item in ("classify.batch_size=16", "runtime.threads=1", "runtime.device=cpu", *sets):
        args += ["--set", item]
    return [str(a) for a in args]


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with (size, mtime_ns)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------
# crash recovery: `ganaug classify` killed (SIGKILL) or interrupted (SIGINT, SIGTERM) at seeded
# random points

KILL_SCRIPT = """
import sys, time
import ganaug.classify.fit as classify_fit
save = classify_fit.atomic_torch_save
def slow_save(obj, path):  # leaves room for a kill between and inside epochs
    save(obj, path)
    time.sleep(0.4)
classify_fit.atomic_torch_save = slow_save
from ganaug.cli import app
app(sys.argv[1:])
"""


def _comparable_metrics(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    metrics.pop("epoch_seconds")
    return metrics


def _comparable_curves(path: Path) -> list[list[str]]:
    lines = [line.split(",") for line in path.read_text().splitlines()]
    drop = {lines[0].index(c) for c in ("seconds", "images_per_s")}
    return [[v for i, v in enumerate(row) if i not in drop] for row in lines]


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    one, two = safe_torch_load(a), safe_torch_load(b)
    assert one["model"].keys() == two["model"].keys()
    for key in one["model"]:
        assert torch.equal(one["model"][key], two["model"][key]), (a.name, key)
    if "optimiser" in one:
        for k, state in one["optimiser"]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, two["optimiser"]["state"][k][name]), (k, name)
        assert torch.equal(one["generator"], two["generator"])


SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)  # kill -9, Ctrl-C, a scheduler's stop


@pytest.mark.slow
def test_classify_killed_or_interrupted_at_random_points_resumes_to_the_uninterrupted_result(
    tmp_path: Path, cli
):
    """SIGKILL, SIGINT and SIGTERM, each at a seeded random point, then the same command again."""
    data = tmp_path / "real.npz"
    write_npz(data, learnable_imageset(n=60))
    ref = tmp_path / "ref"
    assert cli(classify_args(data, ref, "classify.epochs=3")) == 0
    delays = [random.Random(8 + k).uniform(0.0, 1.2) for k in range(len(SIGNALS))]
    runs = [tmp_path / signal.Signals(s).name for s in SIGNALS]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, *classify_args(data, out, "classify.epochs=3")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for out in runs
    ]
    stopped_at = []
    for proc, out, delay, signum in zip(procs, runs, delays, SIGNALS, strict=True):
        deadline = time.monotonic() + 180
        while not (out / "last.pt").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before its first checkpoint"
            time.sleep(0.02)
        time.sleep(delay)
        assert proc.poll() is None, "the run ended before it could be stopped"
        os.kill(proc.pid, signum)
        assert_clean_interrupt(proc, out, signum)
        assert not (out / "metrics.json").exists()
        stopped_at.append(safe_torch_load(out / "last.pt")["state"]["epoch"])
    # the runs go on side by side while each earlier one is stopped and waited for: a late one
    # may have written its last checkpoint (epoch 3) but not yet metrics.json, a stop point too
    assert all(1 <= epoch <= 3 for epoch in stopped_at) and min(stopped_at) < 3, stopped_at
    print(f"stopped after epochs {stopped_at} (delays {[round(d, 2) for d in delays]} s)")
    for out in runs:
        # a stale lock of the killed process is taken over; training resumes from last.pt
        assert cli(classify_args(data, out, "classify.epochs=3")) == 0
        assert not (out / "run.lock").exists()
        assert _comparable_metrics(out / "metrics.json") == _comparable_metrics(
            ref / "metrics.json"
        )
        assert _comparable_curves(out / "curves.csv") == _comparable_curves(ref / "curves.csv")
        for name in ("best.pt", "last.pt"):
            _assert_same_checkpoint(out / name, ref / name)


def test_half_written_or_truncated_npz_is_never_taken_as_finished(tmp_path: Path):
    source = tmp_path / "source.npz"
    write_npz(source, make_imageset(n=6, size=8))
    cfg = load_config("smoke", [f"data.spec={source}", "data.size=8"])
    run, key = tmp_path / "run", cfg.section_hash("data")
    path = run / "data" / "real.npz"
    first = stage_data(cfg, run)
    whole = path.read_bytes()
    assert _fresh(path, key)
    stamp = path.stat().st_mtime_ns
    stage_data(cfg, run)  # finished and same config: skipped, not rewritten
    assert path.stat().st_mtime_ns == stamp
    # a leftover temp file of an interrupted atomic write (os.replace never ran)
    path.unlink()
    (path.parent / ".real.npz.x1y2z3.tmp").write_bytes(whole[: len(whole) // 2])
    assert not _fresh(path, key)
    np.testing.assert_array_equal(stage_data(cfg, run).images["train"], first.images["train"])
    assert read_npz(path).meta["config_hash"] == key
    # a truncated real.npz (a copy cut short, a full disk): rebuilt, never read as finished
    path.write_bytes(whole[: len(whole) // 2])
    assert not _fresh(path, key)
    stage_data(cfg, run)
    np.testing.assert_array_equal(read_npz(path).images["train"], first.images["train"])
    # a finished real.npz of another data config is never reused
    other = cfg.replace(data={"size": 16})
    assert not _fresh(path, other.section_hash("data"))
    assert stage_data(other, run).image_shape == (16, 16, 3)


# ---------------------------------------------------------------------------------------------
# concurrency: the run lock at the CLI


def test_second_run_on_a_locked_directory_is_refused(tmp_path: Path, tiny_npz: Path, cli, capsys):
    run = tmp_path / "run"
    args = ["run", "--profile", "smoke", "--data", tiny_npz, "--out", run]
    with RunLock(run):  # another live process (here: this one) works in the directory
        capsys.readouterr()
        assert cli(args) == 2
        err = capsys.readouterr().err.strip()
        assert sorted(p.name for p in run.iterdir()) == ["run.lock"]  # no config.yaml, no log
    assert len(err.splitlines()) == 1
    assert "run.lock" in err and "another ganaug process" in err and str(os.getpid()) in err
    assert not run.exists()  # the lock's directory goes with the lock when nothing else is in it


def test_stale_lock_of_a_killed_process_is_taken_over_by_run(tmp_path: Path, cli, caplog):
    data = tmp_path / "real.npz"
    write_npz(data, learnable_imageset(n=12, size=16))
    run = tmp_path / "run"
    run.mkdir()
    lock = {"pid": _dead_pid(), "host": socket.gethostname()}
    (run / "run.lock").write_text(json.dumps(lock))
    sets = ["experiment.regimes=none", "classify.epochs=1", "classify.batch_size=8"]
    sets += ["data.size=16", "experiment.bootstrap=10", "runtime.threads=1"]
    args = ["run", "--profile", "smoke", "--data", data, "--out", run, "--quiet"]
    assert cli(args + [a for s in sets for a in ("--set", s)]) == 0
    assert "taking over stale lock" in caplog.text
    assert not (run / "run.lock").exists()
    assert (run / "classify/none/resnet18/seed0/metrics.json").is_file()
    assert (run / "report/results.md").is_file()


# ---------------------------------------------------------------------------------------------
# numerical guard of the classifier


def test_non_finite_classifier_loss_stops_with_epoch_batch_and_checkpoint(
    tmp_path: Path, cli, capsys, monkeypatch
):
    data = tmp_path / "real.npz"
    write_npz(data, learnable_imageset(n=24))  # 24 / batch 8: 3 batches per epoch
    out = tmp_path / "cls"
    calls = {"n": 0}
    forward = torch.nn.CrossEntropyLoss.forward

    def poisoned(self, logits, target):  # the 5th training batch (epoch 2, batch 2) is NaN
        calls["n"] += 1
        loss = forward(self, logits, target)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    epochs = "classify.budget=epochs"  # the smoke profile's budget is steps (test_budget.py)
    args = classify_args(data, out, "classify.epochs=3", "classify.batch_size=8", epochs)
    capsys.readouterr()
    assert cli(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "ClassifierDiverged" in err and "batch 2 of 3 of epoch 2" in err
    assert f"{out / 'last.pt'} (epoch 1)" in err
    assert safe_torch_load(out / "last.pt")["state"]["epoch"] == 1
    assert not (out / "metrics.json").exists() and not (out / "run.lock").exists()
    # a fresh run diverging in its first epoch has no good checkpoint yet
    calls["n"] = 3
    assert cli(classify_args(data, tmp_path / "fresh", "classify.batch_size=8", epochs)) == 1
    assert "batch 2 of 3 of epoch 1; last good checkpoint: none yet" in capsys.readouterr().err
    monkeypatch.undo()
    assert cli(args) == 0  # resumes from epoch 1 once the loss is finite again
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3


# ---------------------------------------------------------------------------------------------
# disk and config hygiene


def test_classify_out_is_never_overwritten_by_another_config(tmp_path: Path, cli, capsys):
    data = tmp_path / "real.npz"
    write_npz(data, learnable_imageset(n=12))
    out = tmp_path / "cls"
    assert cli(classify_args(data, out, "classify.epochs=1")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["version"] == __version__ and len(metrics["config_hash"]) == 16
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["classify"]["epochs"] == 1 and saved["classify"]["model"] == "resnet18"
    before = files(out)
    capsys.readouterr()
    assert cli(classify_args(data, out, "classify.epochs=1", "classify.lr=0.01")) == 2
    assert "another config or data" in capsys.readouterr().err
    assert files(out) == before  # config.yaml included
    assert cli(classify_args(data, out, "classify.epochs=1")) == 0  # same config: skipped
    assert files(out) == before


GAN = [
    "gan.width=16",
    "gan.z_dim=8",
    "gan.batch_size=8",
    "gan.n_critic=1",
    "gan.epochs_lr1=1",
    "gan.epochs_lr2=0",
    "runtime.device=cpu",
    "runtime.threads=1",
]


def test_gan_train_out_is_never_overwritten_by_another_config(tmp_path: Path, cli, capsys):
    data = tmp_path / "real.npz"
    write_npz(data, make_imageset(n=16, size=16, classes=2, splits=("train",)))
    out = tmp_path / "gan"

    def train(*extra: str) -> int:
        sets = [a for s in (*GAN, *extra) for a in ("--set", s)]
        return cli(["gan", "train", "--data", data, "--out", out, "--profile", "smoke", *sets])

    assert train() == 0
    ckpt = safe_torch_load(out / "checkpoints" / "last.pt")
    assert ckpt["version"] == __version__ and ckpt["config"]["gan"]["width"] == 16
    assert yaml.safe_load((out / "config.yaml").read_text())["gan"]["width"] == 16
    before = files(out)
    for extra, needle in (("gan.lr=0.001", "another GAN config"), ("gan.width=32", "architecture")):
        capsys.readouterr()
        assert train(extra) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
        assert files(out) == before  # config.yaml is not rewritten before the refusal
    assert train() == 0  # same config, finished: skipped
    assert files(out) == before


def test_npz_outputs_need_force_and_carry_version_and_config(
    tmp_path: Path, tiny_npz: Path, cli, capsys
):
    out = tmp_path / "real.npz"
    assert cli(["data", "--data", tiny_npz, "--out", out, "--size", "8", "--quiet"]) == 0
    meta = read_npz(out).meta
    assert meta["version"] == __version__ and meta["config_hash"]
    assert yaml.safe_load((tmp_path / "real.config.yaml").read_text())["data"]["size"] == 8
    before = files(tmp_path)
    for argv in (
        ["data", "--data", tiny_npz, "--out", out, "--size", "16"],
        ["select", "--samples", tiny_npz, "--real", tiny_npz, "--out", out],
    ):
        capsys.readouterr()
        assert cli(argv) == 2
        assert "--force" in capsys.readouterr().err
        assert files(tmp_path) == before
    assert cli(["data", "--data", tiny_npz, "--out", out, "--size", "16", "--force"]) == 0
    assert read_npz(out).image_shape == (16, 16, 3)
