"""What a finished fit leaves behind: curves.csv, the figures and metrics.json.

metrics.json holds the test metrics of the LAST epoch (the paper's protocol) and of the
BEST-VALIDATION epoch (the honest one; ties go to the earlier epoch). It is written last: its
presence marks a finished run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganaug import __version__
from ganaug.metrics import classification_metrics
from ganaug.runtime import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from ganaug.classify.state import Run

CURVE_COLUMNS = (  # step: optimiser steps done by the end of the row (cumulative)
    "epoch,step,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_s,lr"
).split(",")


def write_curves(path: Path, rows: list[dict[str, float]]) -> None:
    """curves.csv: a row per epoch (budget=steps: per round), floats as repr (exact round trip)."""
    lines = [",".join(CURVE_COLUMNS)]
    lines += [",".join(repr(row[c]) for c in CURVE_COLUMNS) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _protocol(evaluation: dict[str, Any], truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """One reporting protocol of metrics.json (last epoch or best-val epoch)."""
    out: dict[str, Any] = {"epoch": evaluation["epoch"], "step": evaluation["step"]}
    for split in ("val", "test"):
        prob = evaluation[f"{split}_prob"].numpy()
        out[split] = classification_metrics(truth[split], prob)
        out[split]["loss"] = evaluation[f"{split}_loss"]
    prob = evaluation["test_prob"].numpy().astype(np.float64)
    out["test_pred"] = prob.argmax(axis=1).tolist()
    out["test_prob"] = np.round(prob, 6).tolist()
    return out


def write_results(run: Run) -> dict[str, Any]:
    """Figures, then metrics.json (last and best-val protocols) as the finished-run marker."""
    from ganaug.plots import plot_confusion, plot_curves  # matplotlib: only when a run finishes

    ccfg, state = run.cfg.classify, run.state
    # again from the checkpointed state: a run stopped between its last checkpoint and this
    # file's write resumes with nothing left to train, and would keep a curve one row short
    write_curves(run.out_dir / "curves.csv", state["curves"])
    truth = {s: run.tensors[s][1].cpu().numpy() for s in ("train", "val", "test")}
    last, best = _protocol(state["last"], truth), _protocol(state["best"], truth)
    names = list(run.class_names)
    for file, result, which in (
        ("confusion.png", last, "last"),
        ("confusion_best_val.png", best, "best-val"),
    ):
        title = f"{ccfg.model} seed {ccfg.seed}: test, {which} epoch ({result['epoch']})"
        plot_confusion(run.out_dir / file, result["test"]["confusion"], names, title)
    title = f"{ccfg.model} seed {ccfg.seed}"
    x = "epoch" if ccfg.budget == "epochs" else "step"
    columns = {key: [row[key] for row in state["curves"]] for key in CURVE_COLUMNS}
    plot_curves(run.out_dir / "curves.png", columns, title, x=x, mark_best=True)
    metrics = {
        "model": ccfg.model,
        "seed": ccfg.seed,
        "epochs": ccfg.epochs,
        "budget": ccfg.budget,
        "steps": state["step"],  # optimiser steps done (per rank under DDP: each is global)
        "num_classes": len(names),
        "class_names": names,
        "train_counts": np.bincount(truth["train"], minlength=len(names)).tolist(),
        "train_size": len(truth["train"]),
        "val_size": len(truth["val"]),
        "test_size": len(truth["test"]),
        "config_hash": run.config_hash,
        "version": __version__,
        "device": str(run.device),
        "epoch_seconds": [row["seconds"] for row in state["curves"]],
        "test_labels": truth["test"].tolist(),
        "last": last,
        "best_val": best,
    }
    atomic_write_json(run.out_dir / "metrics.json", metrics)
    return json.loads(json.dumps(metrics))
