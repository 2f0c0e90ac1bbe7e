"""classify.budget: a fixed number of optimiser steps whatever the training set's size (steps),
or classify.epochs passes (epochs, the paper's protocol); resume, curves, metrics.json, report."""

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

import ganaug.classify.engine as engine
from conftest import StopRun, learnable_imageset, stop_after_epoch
from ganaug import InputError
from ganaug.classify import (
    CURVE_COLUMNS,
    ClassifierDiverged,
    fit_classifier,
    pass_batches,
    resolve_steps,
    train_steps,
)
from ganaug.config import load_config
from ganaug.data import write_npz
from ganaug.report import Run, budget_note
from ganaug.runtime import safe_torch_load

EVAL = learnable_imageset(n=12)  # val and test of every fit here


def _cfg(**classify_sets):
    values = {"model": "resnet18", "batch_size": 8, "lr": 1e-3, "budget": "steps"}
    values.update(classify_sets)
    return load_config("smoke", [f"classify.{k}={v}" for k, v in values.items()])


def _curves(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


def _metrics(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    metrics.pop("epoch_seconds")
    return metrics


@pytest.fixture
def optimiser_steps():
    """Counts every optimiser step taken while the test runs."""
    calls = {"n": 0}

    def count(optimiser, args, kwargs):
        calls["n"] += 1

    handle = register_optimizer_step_post_hook(count)
    yield calls
    handle.remove()


def test_pass_batches_and_resolve_steps():
    assert pass_batches(1080, 64) == 17  # 16 full batches and a 56-image tail
    assert pass_batches(4320, 64) == 68 and pass_batches(5649, 64) == 89
    assert pass_batches(64, 64) == 1 and pass_batches(65, 64) == 1  # a 1-image tail is dropped
    assert pass_batches(66, 64) == 2 and pass_batches(1, 64) == 0
    cfg = load_config("quick", ["classify.steps=0", "classify.epochs=4"])
    assert resolve_steps(cfg, 1080) == 4 * 17 and resolve_steps(cfg, 5649) == 4 * 89
    assert resolve_steps(load_config("quick"), 1080) == 232  # the quick profile's fixed budget
    assert load_config("quick").classify.budget == "steps"
    assert load_config("paper").classify.budget == "epochs"


def test_budget_settings_are_checked(tmp_path):
    for bad in ("classify.steps=-1", "classify.evals=-1", "classify.budget=minutes"):
        with pytest.raises(InputError, match=bad.split("=")[0]):
            load_config("smoke", [bad])
    data = learnable_imageset(n=12)
    with pytest.raises(InputError, match="classify.evals 3"):
        fit_classifier(data, EVAL, _cfg(steps=2, evals=3), tmp_path / "a", device="cpu")
    assert not (tmp_path / "a" / "config.yaml").exists()  # refused before anything is written


def test_stream_batches_are_a_pure_function_of_the_step(monkeypatch):
    """Every pass covers each image once in its own order; a later start gives the same batches."""
    seen: list[list[int]] = []

    def record(model, optimiser, criterion, images, labels, idx, where, fast):
        seen.append(idx.tolist())
        return torch.zeros(()), torch.zeros((), dtype=torch.long), len(idx)

    monkeypatch.setattr(engine, "train_batch", record)
    model = nn.Linear(1, 1)
    images, labels = torch.zeros(20, 4, 4, 3, dtype=torch.uint8), torch.zeros(20, dtype=torch.long)
    args = (model, None, None, images, labels)
    train_steps(*args, start=0, stop=7, batch_size=8, seed=3)  # 3 batches (8, 8, 4) per pass
    assert [len(b) for b in seen] == [8, 8, 4, 8, 8, 4, 8]
    first, second = sum(seen[:3], []), sum(seen[3:6], [])
    assert sorted(first) == sorted(second) == list(range(20)) and first != second
    whole = list(seen)
    seen.clear()
    train_steps(*args, start=4, stop=7, batch_size=8, seed=3)
    assert seen == whole[4:7]
    seen.clear()
    train_steps(*args, start=0, stop=3, batch_size=8, seed=4)
    assert sum(seen, []) != first  # another seed, another order


@pytest.mark.parametrize("n_train", [12, 60])
def test_steps_budget_trains_the_same_steps_whatever_the_size(n_train, tmp_path, optimiser_steps):
    data = learnable_imageset(n=n_train)
    out = tmp_path / "run"
    result = fit_classifier(data, EVAL, _cfg(steps=10, evals=3), out, device="cpu")
    assert optimiser_steps["n"] == 10
    rows = _curves(out / "curves.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [3, 7, 10]  # round(r * 10 / 3)
    assert result["budget"] == "steps" and result["steps"] == 10
    assert result["last"]["epoch"] == 3 and result["last"]["step"] == 10
    best = result["best_val"]
    assert best["step"] == [3, 7, 10][best["epoch"] - 1]
    assert safe_torch_load(out / "last.pt")["state"]["step"] == 10


def test_steps_budget_resumes_to_the_uninterrupted_run(tmp_path):
    data = learnable_imageset(n=20)  # 3 batches per pass: rounds of 3, 4, 3 steps cross passes
    cfg = _cfg(steps=10, evals=3)
    whole = tmp_path / "whole"
    fit_classifier(data, EVAL, cfg, whole, device="cpu")
    part = tmp_path / "part"
    with pytest.raises(StopRun):
        fit_classifier(data, EVAL, cfg, part, device="cpu", on_epoch=stop_after_epoch(1))
    assert safe_torch_load(part / "last.pt")["state"]["step"] == 3
    rounds = []
    fit_classifier(data, EVAL, cfg, part, device="cpu", on_epoch=rounds.append)
    assert [(row["epoch"], row["step"]) for row in rounds] == [(2, 7), (3, 10)]
    assert _metrics(part / "metrics.json") == _metrics(whole / "metrics.json")
    assert _curves(part / "curves.csv") == _curves(whole / "curves.csv")
    for name in ("last.pt", "best.pt"):
        one, two = safe_torch_load(part / name), safe_torch_load(whole / name)
        for key, value in one["model"].items():
            assert torch.equal(value, two["model"][key]), (name, key)
    one, two = safe_torch_load(part / "last.pt"), safe_torch_load(whole / "last.pt")
    for k, state in one["optimiser"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, two["optimiser"]["state"][k][name]), (k, name)


def test_epochs_budget_keeps_its_curves_and_adds_the_step(tmp_path, optimiser_steps):
    data = learnable_imageset(n=20)  # 3 optimiser steps per epoch
    out = tmp_path / "run"
    result = fit_classifier(data, EVAL, _cfg(budget="epochs", epochs=2), out, device="cpu")
    assert optimiser_steps["n"] == 6
    with open(out / "curves.csv") as fh:
        assert fh.readline().strip().split(",") == CURVE_COLUMNS
    rows = _curves(out / "curves.csv")
    assert [(int(r["epoch"]), int(r["step"])) for r in rows] == [(1, 3), (2, 6)]
    assert result["budget"] == "epochs" and result["steps"] == 6 and result["epochs"] == 2
    assert (result["last"]["epoch"], result["last"]["step"]) == (2, 6)


def test_non_finite_loss_names_the_round_and_the_step(tmp_path, monkeypatch):
    calls = {"n": 0}
    forward = nn.CrossEntropyLoss.forward

    def poisoned(self, logits, target):  # the 5th training step (round 2) is NaN
        calls["n"] += 1
        loss = forward(self, logits, target)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(nn.CrossEntropyLoss, "forward", poisoned)
    out = tmp_path / "run"
    with pytest.raises(ClassifierDiverged) as err:
        fit_classifier(learnable_imageset(n=20), EVAL, _cfg(steps=6, evals=2), out, device="cpu")
    message = str(err.value)
    assert "at step 5 of 6 (round 2 of 2)" in message
    assert f"{out / 'last.pt'} (round 1, step 3)" in message


def test_cli_summary_prints_the_step_budget(tmp_path, cli, capsys):
    data = tmp_path / "real.npz"
    write_npz(data, learnable_imageset(n=12))
    args = ["classify", "--train", data, "--eval", data, "--out", tmp_path / "run"]
    args += ["--model", "resnet18", "--profile", "smoke"]
    for item in ("classify.batch_size=8", "classify.steps=3", "classify.evals=1"):
        args += ["--set", item]
    assert cli(args) == 0
    assert "budget: 3 optimiser steps" in capsys.readouterr().out


def _run(budget: str | None, steps: int | None, epochs: int = 4) -> Run:
    metrics: dict = {"seed": 0, "epochs": epochs}
    metrics |= {} if budget is None else {"budget": budget}
    metrics |= {} if steps is None else {"steps": steps}
    return Run(Path("."), metrics)


def test_report_budget_note():
    regimes = ["none", "classic", "classic+gan"]
    same = {r: {"resnet18": {0: _run("steps", 232)}} for r in regimes}
    assert (
        budget_note(same, regimes) == "Budget: 232 optimiser steps per cell, equal in every regime."
    )
    by_epochs = {
        r: {"resnet18": {0: _run("epochs", s)}}
        for r, s in zip(regimes, (68, 272, 356), strict=True)
    }
    assert budget_note(by_epochs, regimes) == (
        "Budget: 4 epochs per cell (regimes differ in steps: none 68, classic 272, "
        "classic+gan 356)."
    )
    old = {r: {"resnet18": {0: _run(None, None)}} for r in regimes}  # before the budget setting
    assert budget_note(old, regimes) == "Budget: 4 epochs per cell."
