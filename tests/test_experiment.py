"""The whole recipe: unit checks of the grid plumbing, then `ganaug run --profile smoke` on the
real RetinaMNIST file (every artefact of DESIGN.md's run directory), resume, kill and Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_imageset
from ganaug import InputError
from ganaug.config import load_config, save_config
from ganaug.data import read_npz
from ganaug.experiment import (
    check_run_config,
    grid_cells,
    random_subset,
    regime_train_files,
    synthetic_copy_config,
)

ARTEFACTS = [
    "config.yaml",
    "log.txt",
    "data/real.npz",
    "data/classic.npz",
    "data/synthetic_raw.npz",
    "data/synthetic.npz",
    "data/selection.csv",
    "gan/checkpoints/last.pt",
    "gan/log.csv",
    "report/results.md",
    "report/results.csv",
    "report/results.json",
    "report/fig1_real_vs_synthetic.png",
    "report/fig2_curves_classic.png",
    "report/fig3_curves_classic_gan.png",
    "report/fig4_confusion_classic.png",
    "report/fig5_confusion_classic_gan.png",
    "report/fidelity.json",
    "report/report.html",
]


def test_synthetic_copies_make_the_papers_5649():
    cfg = load_config("paper")
    copies = synthetic_copy_config(cfg).augment
    assert 1 + copies.n_vflip + copies.n_hflip + copies.n_color == 3
    assert 4320 + 443 * 3 == 5649
    five = synthetic_copy_config(cfg.replace(experiment={"synthetic_copies": 5})).augment
    assert (five.n_vflip, five.n_color, five.n_hflip) == (2, 1, 1)


def test_grid_and_regime_files():
    cfg = load_config("paper")
    cells = grid_cells(cfg)
    assert len(cells) == 3 * 2 * 3
    assert {c.regime for c in cells} == {"none", "classic", "classic+gan"}
    assert regime_train_files("classic+gan") == ("data/classic.npz", "data/synthetic_classic.npz")
    assert cells[0].out_dir(Path("r")) == Path("r/classify/none/resnet101/seed0")


def test_random_subset_is_seeded_and_keeps_sidecars():
    raw = make_imageset(n=30, splits=("train",))
    raw.extras["train_seeds"] = np.arange(30, dtype=np.int64) + 100
    a, b = random_subset(raw, 10, seed=1), random_subset(raw, 10, seed=1)
    assert len(a.images["train"]) == 10
    np.testing.assert_array_equal(a.extras["train_seeds"], b.extras["train_seeds"])
    rows = a.extras["train_seeds"] - 100
    np.testing.assert_array_equal(a.images["train"], raw.images["train"][rows])


def test_run_dir_with_other_upstream_config_is_refused(tmp_path: Path):
    save_config(load_config("smoke"), tmp_path / "config.yaml")
    check_run_config(load_config("smoke", ["classify.epochs=5"]), tmp_path)  # grid-only change
    with pytest.raises(InputError, match="different gan config"):
        check_run_config(load_config("smoke", ["gan.width=64"]), tmp_path)


def _cmd(out: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ganaug.cli", "run", "--profile", "smoke", "--data", str(data),
            "--out", str(out), "--quiet", *extra]  # fmt: skip


def _run(out: Path, data: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(out, data, *extra), capture_output=True, text=True, timeout=timeout)


def _copy_upstream(finished: Path, out: Path) -> None:
    """A run directory holding the finished upstream stages of `finished`, but no grid cells."""
    shutil.copytree(finished / "data", out / "data")
    shutil.copytree(finished / "gan", out / "gan")
    shutil.copy(finished / "config.yaml", out / "config.yaml")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, retina_npz) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "run"
    done = _run(out, retina_npz)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _accuracies(run: Path) -> dict:
    result = {}
    for path in sorted(run.glob("classify/*/*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        result[str(path.relative_to(run))] = (
            m["last"]["test"]["accuracy"],
            m["best_val"]["test"]["accuracy"],
        )
    return result


@pytest.mark.slow
def test_smoke_run_writes_every_artefact(smoke_run: Path):
    missing = [a for a in ARTEFACTS if not (smoke_run / a).is_file()]
    assert not missing
    cfg = load_config(str(smoke_run / "config.yaml"))
    metrics = list(smoke_run.glob("classify/*/*/seed*/metrics.json"))
    assert len(metrics) == len(cfg.experiment.regimes) * len(cfg.experiment.models)
    for path in metrics:
        m = json.loads(path.read_text())
        assert np.array(m["last"]["test"]["confusion"]).sum() == 400
        assert np.array(m["best_val"]["test"]["confusion"]).sum() == 400
    results = json.loads((smoke_run / "report" / "results.json").read_text())
    text = json.dumps(results)
    for regime in ("none", "classic", "classic+gan"):
        assert regime in text
    for png in (smoke_run / "report").glob("*.png"):
        with Image.open(png) as img:
            img.verify()
    synthetic = read_npz(smoke_run / "data" / "synthetic.npz")
    assert len(synthetic.images["train"]) == cfg.select.k
    assert "train_seeds" in synthetic.extras
    classic_gan = read_npz(smoke_run / "data" / "synthetic_classic.npz")
    assert len(classic_gan.images["train"]) == cfg.select.k * cfg.experiment.synthetic_copies


@pytest.mark.slow
def test_rerun_skips_finished_cells(smoke_run: Path, retina_npz: Path):
    before = {p: p.stat().st_mtime_ns for p in smoke_run.glob("classify/**/metrics.json")}
    ckpt = (smoke_run / "gan/checkpoints/last.pt").stat().st_mtime_ns
    start = time.perf_counter()
    done = _run(smoke_run, retina_npz)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - start < 60
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (smoke_run / "gan/checkpoints/last.pt").stat().st_mtime_ns == ckpt


@pytest.mark.slow
def test_killed_mid_grid_then_resumed_equals_uninterrupted(
    smoke_run: Path, tmp_path: Path, retina_npz: Path
):
    out = tmp_path / "run"
    _copy_upstream(smoke_run, out)  # the kill lands in the classifier grid
    proc = subprocess.Popen(
        _cmd(out, retina_npz), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("classify/classic/*/seed*/last.pt")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "report" / "results.json").exists()
    done = _run(out, retina_npz)  # the stale lock of the killed process is taken over
    assert done.returncode == 0, done.stderr[-2000:]
    assert _accuracies(out) == _accuracies(smoke_run)


@pytest.mark.slow
def test_ray_executor_runs_the_same_cells(smoke_run: Path, tmp_path: Path, retina_npz: Path):
    import ray  # noqa: F401  (make test installs the ray extra)

    out = tmp_path / "ray"
    _copy_upstream(smoke_run, out)
    done = _run(out, retina_npz, "--executor", "ray")
    assert done.returncode == 0, done.stderr[-3000:]
    ray_acc, local_acc = _accuracies(out), _accuracies(smoke_run)
    assert ray_acc.keys() == local_acc.keys()
    # Ray tasks run single-threaded: same cells, same seeds, float rounding may differ slightly
    for key, (last, best) in ray_acc.items():
        assert abs(last - local_acc[key][0]) < 0.1 and abs(best - local_acc[key][1]) < 0.1
    assert (out / "report" / "results.md").is_file()
