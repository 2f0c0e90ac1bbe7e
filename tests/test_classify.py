"""fit_classifier and `ganaug classify`: outputs, metrics.json schema, resume, skip, bad input."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import StopRun, learnable_imageset, stop_after_epoch
from ganaug import InputError
from ganaug.classify import CURVE_COLUMNS, fit_classifier, load_classifier, predict
from ganaug.config import load_config
from ganaug.data import write_npz

EPOCHS = 3


def _cfg(**classify):
    values = {"model": "resnet18", "epochs": EPOCHS, "batch_size": 16, "lr": 1e-3, **classify}
    return load_config("smoke", [f"classify.{k}={v}" for k, v in values.items()])


def _curves(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fit") / "run"
    data = learnable_imageset()
    return out, fit_classifier(data, data, _cfg(), out, device="cpu")


def test_outputs_and_metrics_schema(finished):
    out, result = finished
    for name in ("curves.csv", "metrics.json", "best.pt", "last.pt", "config.yaml"):
        assert (out / name).is_file(), name
    for name in ("confusion.png", "confusion_best_val.png", "curves.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert json.loads((out / "metrics.json").read_text()) == result
    assert result["model"] == "resnet18" and result["epochs"] == EPOCHS
    assert result["train_counts"] == [14, 13, 13] and result["train_size"] == 40
    assert result["val_size"] == result["test_size"] == 40 and result["num_classes"] == 3
    assert result["class_names"] == ["grade 0", "grade 1", "grade 2"]
    assert result["test_labels"] == (np.arange(40) % 3).tolist()
    assert result["last"]["epoch"] == EPOCHS and 1 <= result["best_val"]["epoch"] <= EPOCHS
    keys = {"accuracy", "auc", "balanced_accuracy", "macro_f1", "qwk", "loss", "confusion"}
    for protocol in ("last", "best_val"):
        block = result[protocol]
        assert set(block["val"]) == keys and set(block["test"]) == keys
        confusion = np.array(block["test"]["confusion"])
        assert confusion.shape == (3, 3) and confusion.sum() == 40
        assert len(block["test_pred"]) == 40 and np.array(block["test_prob"]).shape == (40, 3)
        pred = np.array(block["test_pred"])
        assert block["test"]["accuracy"] == pytest.approx(np.mean(pred == result["test_labels"]))
    # best.pt rebuilds the best-val epoch's model from the checkpoint alone
    probs, _ = predict(
        load_classifier(out / "best.pt"), learnable_imageset().images["test"], device="cpu"
    )
    assert np.allclose(probs, result["best_val"]["test_prob"], atol=1e-5)


def test_curves_and_best_val_epoch(finished):
    out, result = finished
    with open(out / "curves.csv") as fh:
        header = fh.readline().strip().split(",")
    assert header == CURVE_COLUMNS
    rows = _curves(out / "curves.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    val_acc = [float(r["val_acc"]) for r in rows]
    assert result["best_val"]["epoch"] == int(np.argmax(val_acc)) + 1  # ties -> earlier epoch
    assert result["last"]["test"]["accuracy"] == pytest.approx(float(rows[-1]["test_acc"]))
    assert result["best_val"]["val"]["accuracy"] == pytest.approx(max(val_acc))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_resume_gives_the_same_run(finished, tmp_path):
    out, result = finished
    data = learnable_imageset()
    part = tmp_path / "part"
    with pytest.raises(StopRun):
        fit_classifier(data, data, _cfg(), part, device="cpu", on_epoch=stop_after_epoch(2))
    assert len(_curves(part / "curves.csv")) == 2 and not (part / "metrics.json").exists()
    seen = []
    resumed = fit_classifier(data, data, _cfg(), part, device="cpu", on_epoch=seen.append)
    assert [row["epoch"] for row in seen] == [3]  # epochs 1-2 came from last.pt
    assert _curves(part / "curves.csv") == _curves(out / "curves.csv")
    for protocol in ("last", "best_val"):
        assert resumed[protocol]["test_prob"] == result[protocol]["test_prob"]


def test_finished_run_is_skipped_and_other_config_refused(finished):
    out, result = finished
    data = learnable_imageset()
    before = (out / "metrics.json").stat().st_mtime_ns
    again = fit_classifier(data, data, _cfg(), out, device="cpu", on_epoch=stop_after_epoch(1))
    assert again == result and (out / "metrics.json").stat().st_mtime_ns == before
    with pytest.raises(InputError, match="another config or data"):
        fit_classifier(data, data, _cfg(lr=0.01), out, device="cpu")
    other = learnable_imageset(seed=1)  # same shapes, other pixels: other data hash
    with pytest.raises(InputError, match="another config or data"):
        fit_classifier(other, data, _cfg(), out, device="cpu")


def test_seed_changes_the_run(finished, tmp_path):
    out, result = finished
    data = learnable_imageset()
    cfg = _cfg(epochs=1, seed=1)
    other = fit_classifier(data, data, cfg, tmp_path / "s1", device="cpu")
    first = _curves(out / "curves.csv")[0]
    assert _curves(tmp_path / "s1" / "curves.csv")[0] != first
    assert other["seed"] == 1


def test_train_sets_must_agree(tmp_path):
    data = learnable_imageset()
    with pytest.raises(InputError, match="same image shape and class count"):
        fit_classifier(
            [data, learnable_imageset(size=8)], data, _cfg(), tmp_path / "a", device="cpu"
        )
    with pytest.raises(InputError, match="same image shape and class count"):
        fit_classifier(
            [data, learnable_imageset(classes=4)], data, _cfg(), tmp_path / "b", device="cpu"
        )
    leaky = learnable_imageset()
    leaky.meta["source_splits"]["train"] = ["test"]
    with pytest.raises(InputError, match="test split"):
        fit_classifier(leaky, data, _cfg(), tmp_path / "c", device="cpu")
    no_val = learnable_imageset(splits=("train", "test"))
    with pytest.raises(InputError, match="no val split"):
        fit_classifier(data, no_val, _cfg(), tmp_path / "d", device="cpu")
    with pytest.raises(InputError, match="valid names"):
        fit_classifier(data, data, _cfg(model="alexnet"), tmp_path / "e", device="cpu")


def test_cli_classify_two_train_files(tmp_path, cli, capsys):
    real, extra = tmp_path / "real.npz", tmp_path / "extra.npz"
    write_npz(real, learnable_imageset(n=24))
    write_npz(extra, learnable_imageset(n=12, seed=3, splits=("train",)))
    out = tmp_path / "run"
    args = [
        "classify",
        "--train",
        real,
        "--train",
        extra,
        "--eval",
        real,
        "--out",
        out,
        "--model",
        "resnet18",
        "--profile",
        "smoke",
        "--set",
        "classify.epochs=2",
        "--quiet",
    ]
    assert cli(args) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["train_size"] == 36 and result["epochs"] == 2
    assert (out / "config.yaml").is_file() and not (out / "run.lock").exists()
    assert cli(args[:-1]) == 0  # finished: skipped, summary printed
    printed = capsys.readouterr().out
    assert "at the last epoch (2)" in printed and "seconds per epoch:" in printed
    small = tmp_path / "small.npz"
    write_npz(small, learnable_imageset(n=12, size=8, splits=("train",)))
    bad = ["classify", "--train", real, "--train", small, "--eval", real, "--out", tmp_path / "x"]
    assert cli(bad) == 2
    assert "same image shape" in capsys.readouterr().err
