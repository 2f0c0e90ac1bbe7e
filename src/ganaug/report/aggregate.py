"""The report's numbers over seeds: Table 1's cells (mean ± std of every metric), the
majority-class floor, the note on the training budget, and per generator its independent
fidelity next to the accuracy its images reached. Mean ± std with ddof=1 (`stats.mean_std`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ganaug import stats
from ganaug.report.load import METRICS, Results, Run

FIDELITY_KEYS = ("fid", "kid_mean", "precision", "recall", "density", "coverage", "n")


def table_cell(runs: dict[int, Run] | None, protocol: str) -> dict[str, Any] | None:
    """Test metrics of one regime x model over seeds, at the given epoch choice."""
    if not runs:
        return None
    seeds = sorted(runs)
    cell: dict[str, Any] = {"seeds": seeds}
    cell["epochs"] = [runs[s].metrics[protocol]["epoch"] for s in seeds]
    for name in METRICS:
        cell[name] = stats.mean_std([runs[s].metrics[protocol]["test"][name] for s in seeds])
    return cell


def majority_floor(results: Results) -> dict[str, Any]:
    """Accuracy of always predicting the most frequent test class."""
    run = next(iter(next(iter(next(iter(results.values())).values())).values()))
    labels = np.asarray(run.metrics["test_labels"], dtype=np.int64)
    counts = np.bincount(labels)
    top = int(counts.argmax())
    names = run.metrics.get("class_names") or []
    name = str(names[top]) if top < len(names) else str(top)
    floor = {"accuracy": float(counts[top] / len(labels)), "class": name}
    return {**floor, "count": int(counts[top]), "n": len(labels)}


def budget_note(results: Results, regimes: list[str]) -> str:
    """Table 1's note on the training budget of its cells, from their metrics.json (`budget`,
    `steps`; a file without `budget` was trained by epochs)."""
    found = [
        (regime, run.metrics)
        for regime in regimes
        for by_seed in results.get(regime, {}).values()
        for run in by_seed.values()
    ]
    if not found:
        return ""
    steps = {
        r: sorted({m["steps"] for rr, m in found if rr == r and "steps" in m}) for r in regimes
    }
    per_regime = ", ".join(f"{r} {'/'.join(map(str, v))}" for r, v in steps.items() if v)
    budgets = {m.get("budget", "epochs") for _, m in found}
    if budgets == {"steps"}:
        counts = {m.get("steps") for _, m in found}
        if len(counts) == 1:
            return f"Budget: {counts.pop()} optimiser steps per cell, equal in every regime."
        return f"Budget: a step budget per cell, not equal in every regime ({per_regime} steps)."
    if budgets == {"epochs"}:
        epochs = "/".join(str(e) for e in sorted({m.get("epochs") for _, m in found}, key=str))
        differ = f" (regimes differ in steps: {per_regime})" if per_regime else ""
        return f"Budget: {epochs} epochs per cell{differ}."
    return f"Budget: mixed, some cells by epochs, some by steps (steps: {per_regime or 'unknown'})."


def generator_rows(
    run_dir: Path, owners: dict[int, tuple[str, str]], results: Results, models: list[str]
) -> list[dict[str, Any]]:
    """Per generator: its independent fidelity (<data dir>/fidelity_eval.json) next to the
    Classic+GAN accuracy of the seeds it served and their gain over Classic, best-val protocol."""
    rows = []
    shared = len(owners) == 1
    for seed, (_, data_dir) in owners.items():
        path = run_dir / data_dir / "fidelity_eval.json"
        try:
            found = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            found = None
        row: dict[str, Any] = {"seed": seed, "fidelity_file": f"{data_dir}/fidelity_eval.json"}
        if isinstance(found, dict):
            sets = found.get("sets") or {}
            for which in ("selected", "raw"):
                for split in ("train", "val", "test"):
                    block = (sets.get(which) or {}).get(f"vs_{split}") or {}
                    row[f"{which}_vs_{split}"] = {k: block.get(k) for k in FIDELITY_KEYS}
            for name, block in (found.get("floor") or {}).items():
                row[f"floor_{name}"] = {k: (block or {}).get(k) for k in FIDELITY_KEYS}
            row["extractor"] = found.get("extractor")
            row["note"] = found.get("note")
        for model in models:
            served = [seed] if not shared else sorted(results.get("classic+gan", {}).get(model, {}))
            accs = {}
            for regime in ("classic", "classic+gan"):
                runs = results.get(regime, {}).get(model, {})
                got = [runs[s].metrics["best_val"]["test"]["accuracy"] for s in served if s in runs]
                accs[regime] = float(np.mean(got)) if len(got) == len(served) and got else None
            gain = None
            if None not in accs.values():
                gain = accs["classic+gan"] - accs["classic"]
            row[model] = {"classic+gan_accuracy": accs["classic+gan"], "gain_over_classic": gain}
        rows.append(row)
    return rows
