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

import ganaug
from conftest import assert_clean_interrupt, make_imageset
from ganaug import InputError
from ganaug.config import load_config, save_config
from ganaug.data import read_npz, write_npz
from ganaug.experiment import (
    check_run_config,
    generator_seeds,
    grid_cells,
    grid_step_budget,
    random_subset,
    regime_train_files,
    seed_config,
    selection_labels,
    synthetic_copy_config,
    synthetic_dirs,
)

# the smoke run below: two seeds, so two generators (gan/seed<s>/, data/seed<s>/); 20 optimiser
# steps per cell (the profile's 0 = the largest regime's epochs is tested in
# test_step_budget_is_the_largest_cells_epochs), to keep the fixture and its reruns short
SEEDS = (0, 1)
PER_SEED = [
    "data/seed{s}/synthetic_raw.npz",
    "data/seed{s}/synthetic.npz",
    "data/seed{s}/synthetic_classic.npz",
    "data/seed{s}/selection.csv",
    "data/seed{s}/fidelity.json",
    "data/seed{s}/fidelity_eval.json",
    "data/seed{s}/memorisation_trained_on.png",
    "gan/seed{s}/checkpoints/last.pt",
    "gan/seed{s}/log.csv",
]
ARTEFACTS = [
    "config.yaml",
    "log.txt",
    "data/real.npz",
    "data/classic.npz",
    *(name.format(s=s) for s in SEEDS for name in PER_SEED),
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


def test_unselected_ablation_takes_selections_labels(tmp_path: Path):
    """An unconditional generator labels every sample 0: the ablation must use the labels
    selection gave (selection.csv), or its Classic+GAN rows train on one class."""
    raw = make_imageset(n=30, splits=("train",))
    raw.labels["train"][:] = 0
    raw.extras["train_seeds"] = np.arange(30, dtype=np.int64)
    table = tmp_path / "selection.csv"
    given = (np.arange(30) * 7) % 3
    rows = [f"{i},{given[i]},x" for i in range(30)][::-1]  # any row order
    table.write_text("index,label,label_name\n" + "\n".join(rows) + "\n")
    labels = selection_labels(table, 30)
    np.testing.assert_array_equal(labels, given)
    subset = random_subset(raw, 12, seed=2, labels=labels)
    np.testing.assert_array_equal(subset.labels["train"], given[subset.extras["train_seeds"]])
    assert len(set(subset.labels["train"].tolist())) > 1
    table.write_text("index,label\n0,1\n")  # a table of fewer samples is refused, not padded
    with pytest.raises(InputError, match="selection"):
        selection_labels(table, 30)


def test_each_seed_owns_a_generator_seeded_from_it():
    cfg = load_config("smoke", ["experiment.seeds=[0, 1, 2]"])
    assert generator_seeds(cfg) == [0, 1, 2]
    assert [synthetic_dirs(cfg, s) for s in (0, 2)] == [
        ("gan/seed0", "data/seed0"),
        ("gan/seed2", "data/seed2"),
    ]
    configs = [seed_config(cfg, s) for s in (0, 1, 2)]
    assert len({c.section_hash("gan") for c in configs}) == 3  # three generator caches
    assert len({c.section_hash("select") for c in configs}) == 3
    n = cfg.gan.n_samples  # per-image sample seeds of two generators never overlap
    assert configs[1].gan.sample_seed - configs[0].gan.sample_seed == n
    assert regime_train_files("classic+gan", "data/seed2")[1] == "data/seed2/synthetic_classic.npz"
    assert regime_train_files("synthetic-only", "data/seed1") == ("data/seed1/synthetic.npz",)
    shared = cfg.replace(experiment={"generator_per_seed": False})
    assert generator_seeds(shared) == [0]
    assert synthetic_dirs(shared, 2) == ("gan", "data")
    assert seed_config(shared, 2) == shared
    one = load_config("smoke")  # one seed: one generator in the shared layout
    assert generator_seeds(one) == [0] and synthetic_dirs(one, 0) == ("gan", "data")


def test_step_budget_is_the_largest_cells_epochs(tmp_path: Path):
    """budget=steps with steps 0: every cell gets the step count of the largest training set of
    the grid (here seed 1's Classic+GAN: 80 + 40 images, batch 8, 2 epochs -> 30 steps)."""
    for name, n in (("real", 20), ("classic", 80), ("seed0/synthetic_classic", 30)):
        write_npz(tmp_path / f"data/{name}.npz", make_imageset(n=n, splits=("train",)))
    write_npz(tmp_path / "data/seed1/synthetic_classic.npz", make_imageset(n=40, splits=("train",)))
    sets = ["experiment.seeds=0,1", "classify.batch_size=8", "classify.epochs=2"]
    cfg = load_config("smoke", [*sets, "classify.budget=steps", "classify.steps=0"])
    assert grid_step_budget(cfg, tmp_path).classify.steps == 30
    fixed = cfg.replace(classify={"steps": 7})  # an explicit budget is kept
    assert grid_step_budget(fixed, tmp_path).classify.steps == 7
    epochs = cfg.replace(classify={"budget": "epochs"})  # the paper's protocol: untouched
    assert grid_step_budget(epochs, tmp_path) == epochs
    none = cfg.replace(experiment={"regimes": ("none",)})
    assert grid_step_budget(none, tmp_path).classify.steps == 2 * 3  # 20 images: 3 batches


def test_repeated_seeds_are_refused():
    with pytest.raises(InputError, match="experiment.seeds.*distinct"):
        load_config("smoke", ["experiment.seeds=0,1,1"])


def test_run_dir_with_other_upstream_config_is_refused(tmp_path: Path):
    save_config(load_config("smoke"), tmp_path / "config.yaml")
    check_run_config(load_config("smoke", ["classify.epochs=5"]), tmp_path)  # grid-only change
    with pytest.raises(InputError, match="different gan config"):
        check_run_config(load_config("smoke", ["gan.width=64"]), tmp_path)


def _cmd(out: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ganaug.cli", "run", "--profile", "smoke", "--data", str(data),
            "--out", str(out), "--quiet", "--set", "experiment.seeds=[0,1]",
            "--set", "classify.steps=20", "--set", "classify.evals=2", *extra]  # fmt: skip


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
    ex = cfg.experiment
    assert len(metrics) == len(ex.regimes) * len(ex.models) * len(SEEDS)
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
    for seed in SEEDS:
        synthetic = read_npz(smoke_run / f"data/seed{seed}/synthetic.npz")
        assert len(synthetic.images["train"]) == cfg.select.k
        assert "train_seeds" in synthetic.extras
        classic_gan = read_npz(smoke_run / f"data/seed{seed}/synthetic_classic.npz")
        assert len(classic_gan.images["train"]) == cfg.select.k * cfg.experiment.synthetic_copies
    # each seed's comparison is its own generator draw; the interval says how it was made
    for protocol in ("last", "best_val"):
        for comp in results["comparisons"][protocol]:
            assert comp["ci_method"].startswith("paired hierarchical bootstrap")
            assert comp["n_seeds"] == len(SEEDS) and comp["n_test"] == 400
    assert results["generator_per_seed"] is True
    assert [row["seed"] for row in results["generators"]] == list(SEEDS)
    assert all(row["selected_vs_test"]["fid"] is not None for row in results["generators"])
    # every cell trained the same number of optimiser steps, whatever its set's size
    assert {json.loads(p.read_text())["steps"] for p in metrics} == {20}
    # the report names the code the run ran on: this checkout's commit (None outside git)
    (entry,) = json.loads((smoke_run / "source.json").read_text())
    head = subprocess.run(
        ["git", "-C", str(Path(ganaug.__file__).parent), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
    )
    commit = head.stdout.strip() if head.returncode == 0 else None
    assert entry["commit"] == commit and entry["profile"] == "smoke"
    md = (smoke_run / "report/results.md").read_text()
    assert (f"code: commit {commit[:12]}" if commit else "code: an unknown commit") in md


@pytest.mark.slow
def test_each_seed_trained_its_own_generator(smoke_run: Path):
    seeds = [
        read_npz(smoke_run / f"data/seed{s}/synthetic_raw.npz").extras["train_seeds"] for s in SEEDS
    ]
    assert not set(seeds[0].tolist()) & set(seeds[1].tolist())  # disjoint per-image seeds
    logs = [(smoke_run / f"gan/seed{s}/log.csv").read_text() for s in SEEDS]
    assert logs[0] != logs[1]  # two trainings, two loss histories
    classic_gan = [read_npz(smoke_run / f"data/seed{s}/synthetic_classic.npz") for s in SEEDS]
    a, b = (c.images["train"] for c in classic_gan)
    assert not np.array_equal(a, b)
    assert not (smoke_run / "gan/checkpoints").exists()  # no shared generator was trained


@pytest.mark.slow
def test_rerun_skips_finished_cells(smoke_run: Path, retina_npz: Path):
    before = {p: p.stat().st_mtime_ns for p in smoke_run.glob("classify/**/metrics.json")}
    ckpt = (smoke_run / "gan/seed1/checkpoints/last.pt").stat().st_mtime_ns
    start = time.perf_counter()
    done = _run(smoke_run, retina_npz)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - start < 60
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert (smoke_run / "gan/seed1/checkpoints/last.pt").stat().st_mtime_ns == ckpt
    assert len(json.loads((smoke_run / "source.json").read_text())) >= 2  # each invocation
    assert "invocations (resumed)" in (smoke_run / "report/results.md").read_text()


@pytest.mark.slow
def test_interrupted_mid_grid_then_resumed_equals_uninterrupted(
    smoke_run: Path, tmp_path: Path, retina_npz: Path
):
    """Ctrl-C to the installed `ganaug` script in the classifier grid, then the same command."""
    out = tmp_path / "run"
    _copy_upstream(smoke_run, out)  # the interrupt lands in the classifier grid
    script = shutil.which("ganaug", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen(
        [script, *_cmd(out, retina_npz)[3:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("classify/classic/*/seed*/last.pt")):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGINT)
    assert_clean_interrupt(proc, out, signal.SIGINT)
    assert not list(out.glob("classify/**/run.lock"))
    assert not (out / "report" / "results.json").exists()
    done = _run(out, retina_npz)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _accuracies(out) == _accuracies(smoke_run)


@pytest.mark.slow
def test_ray_executor_runs_the_same_cells(smoke_run: Path, tmp_path: Path, retina_npz: Path):
    import ray  # noqa: F401  (make test installs the ray extra)

    out = tmp_path / "ray"
    _copy_upstream(smoke_run, out)
    # the Classic+GAN cells only (each seed's own synthetic files), to keep the test short
    done = _run(out, retina_npz, "--executor", "ray", "--set", "experiment.regimes=[classic+gan]")
    assert done.returncode == 0, done.stderr[-3000:]
    ray_acc, local_acc = _accuracies(out), _accuracies(smoke_run)
    assert sorted(ray_acc) == [f"classify/classic+gan/resnet18/seed{s}/metrics.json" for s in SEEDS]
    # Ray tasks run single-threaded: same cells, same seeds, float rounding may differ slightly
    for key, (last, best) in ray_acc.items():
        assert abs(last - local_acc[key][0]) < 0.1 and abs(best - local_acc[key][1]) < 0.1
    assert (out / "report" / "results.md").is_file()
