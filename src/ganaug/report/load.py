"""Reading a run directory: the classifier results config.yaml's grid names, config.yaml itself,
the CSV logs the figures draw, and source.json (the code each invocation ran on). Also the
vocabulary every part of the report shares: the regimes and their display names, the two epoch
protocols, the metrics a metrics.json must hold.

Bad or missing classifier results are an InputError (the report has nothing to show); a missing
config.yaml is noted in `missing` and defaults are used.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ganaug import InputError
from ganaug.runtime.meta import SOURCE_FILE

REGIMES = ("none", "classic", "classic+gan", "gan", "classic+gan-unselected", "synthetic-only")
LABELS = {
    "none": "None",
    "classic": "Classic",
    "classic+gan": "Classic+GAN",
    "gan": "Real+GAN (no classic)",
    "classic+gan-unselected": "Classic+GAN (unselected)",
    "synthetic-only": "Synthetic only (train on synthetic, test on real)",
}
PROTOCOLS = {
    "last": "last epoch (the paper's protocol)",
    "best_val": "best-validation epoch (honest protocol)",
}
METRICS = ("accuracy", "auc", "balanced_accuracy", "macro_f1", "qwk")
NO_RESULTS = "no classifier results (classify/*/*/seed*/metrics.json); run `ganaug run` first"


@dataclass
class Run:
    """One classifier run: its directory and its metrics.json."""

    path: Path
    metrics: dict[str, Any]


Results = dict[str, dict[str, dict[int, Run]]]  # regime -> model -> seed -> Run


def load_results(run_dir: Path, experiment: dict[str, Any]) -> tuple[Results, list[str]]:
    """classify/<regime>/<model>/seed<k>/metrics.json of the cells config.yaml names.

    `experiment` (config.yaml's experiment section) restricts the cells by its regimes, models
    and seeds; a key it lacks (no config.yaml at all: every key) restricts nothing. Cells on
    disk outside the grid, results of an earlier config, are returned as ignored
    (`regime/model/seed<k>`) unread. No cell left is an InputError.
    """
    named = {
        key: {f"seed{v}" if key == "seeds" else str(v) for v in experiment[key]}
        for key in ("regimes", "models", "seeds")
        if isinstance(experiment.get(key), list)
    }
    results: Results = {}
    ignored = []
    for path in sorted(Path(run_dir).glob("classify/*/*/seed*/metrics.json")):
        cell = dict(zip(("regimes", "models", "seeds"), path.parts[-4:-1], strict=True))
        if any(cell[key] not in allowed for key, allowed in named.items()):
            ignored.append("/".join(path.parts[-4:-1]))
            continue
        metrics = _read_metrics(path)
        by_seed = results.setdefault(cell["regimes"], {}).setdefault(cell["models"], {})
        by_seed[int(metrics["seed"])] = Run(path.parent, metrics)
    if not results:
        stale = f" ({len(ignored)} cell(s) outside config.yaml's grid ignored)" if ignored else ""
        raise InputError(f"{run_dir}: {NO_RESULTS}{stale}")
    return results, ignored


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable metrics.json ({err}); rerun `ganaug run`") from None
    need = [("seed",), ("test_labels",)] + [
        (p, *k) for p in PROTOCOLS for k in [("epoch",), ("test_pred",), ("test", "confusion")]
    ]
    need += [(p, "test", m) for p in PROTOCOLS for m in METRICS]
    for keys in need:
        node = metrics
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise InputError(
                    f"{path}: missing key '{'.'.join(keys)}'; rerun `ganaug run` to rewrite it"
                )
            node = node[key]
    for p in PROTOCOLS:
        if not metrics["test_labels"] or len(metrics[p]["test_pred"]) != len(
            metrics["test_labels"]
        ):
            raise InputError(f"{path}: {p}.test_pred and test_labels are empty or differ in length")
    return metrics


def read_config(run_dir: Path, missing: list[str]) -> tuple[str, dict[str, Any]]:
    """config.yaml's text and mapping; ("", {}) with a note in `missing` when absent or bad."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        missing.append("config.yaml not found: resolved config not shown; defaults used")
        return "", {}
    text = path.read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict):
        missing.append("config.yaml is not a YAML mapping: defaults used")
        config = {}
    return text, config


def source_text(run_dir: Path) -> str:
    """Which code made the run, from run_dir/source.json (one entry per `ganaug run`
    invocation): its commits in order, each marked when the tree had uncommitted changes."""
    try:
        record = json.loads((run_dir / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return "code: not recorded (no readable source.json)"
    seen: list[str] = []
    for entry in record if isinstance(record, list) else []:
        if not isinstance(entry, dict):
            continue
        commit = entry.get("commit")
        text = f"commit {commit[:12]}" if isinstance(commit, str) else "an unknown commit"
        text += " with uncommitted changes" if entry.get("dirty") else ""
        if text not in seen:
            seen.append(text)
    if not seen:
        return "code: not recorded (source.json has no entries)"
    runs = len(record)
    resumed = f", {runs} invocations (resumed)" if runs > 1 else ""
    return f"code: {', then '.join(seen)}{resumed}"


def read_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a numeric CSV as float arrays (empty or non-numeric cells -> NaN)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError("no rows")
    return {key: np.array([_to_float(row.get(key)) for row in rows]) for key in rows[0]}


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
