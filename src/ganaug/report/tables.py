"""The report's numbers laid out as tables: Table 1 in the paper's shape (ours beside the
paper's), every metric per regime x model, the fidelity and memorisation numbers, and one row per
generator. Each is a `Table` of strings that render.py writes as markdown and as HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ganaug.report.load import LABELS

PAPER_TABLE1 = {  # the paper's Table 1, test accuracy in %
    "none": {"resnet101": 45.96, "densenet121": 46.44},
    "classic": {"resnet101": 47.08, "densenet121": 48.18},
    "classic+gan": {"resnet101": 62.86, "densenet121": 71.27},
}


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    title: str = ""


def _fmt(stats: dict[str, Any] | None, scale: float = 1.0, digits: int = 3) -> str:
    """mean ± std, or mean (n=1) for a single seed."""
    if not stats or stats["mean"] is None:
        return "missing"
    text = f"{stats['mean'] * scale:.{digits}f}"
    std = stats["std"]
    return f"{text} (n=1)" if std is None else f"{text} ± {std * scale:.{digits}f}"


def _num(value: Any) -> str:
    if isinstance(value, (bool, int)):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) and np.isfinite(value) else "—"


def table1(cells: dict, regimes: list[str], models: list[str], paper: dict) -> Table:
    """The paper's Table 1 shape: a row per regime, our accuracy and the paper's per model."""
    header = ["augmentation"] + [f"{m} {who}" for m in models for who in ("(ours)", "(paper)")]
    rows = []
    for regime in regimes:
        row = [LABELS.get(regime, regime)]
        for model in models:
            cell, theirs = cells[regime][model], paper.get(regime, {}).get(model)
            row.append(_fmt(cell and cell["accuracy"], 100, 2))
            row.append("—" if theirs is None else f"{theirs:.2f}")
        rows.append(row)
    return Table(header, rows)


def metrics_table(cells: dict, regimes: list[str], models: list[str]) -> Table:
    """Every metric of every regime x model found; accuracies in %."""
    columns = {"accuracy": ("accuracy %", 100, 2), "auc": ("AUC", 1, 3)}
    columns |= {"balanced_accuracy": ("balanced acc. %", 100, 2), "macro_f1": ("macro F1", 1, 3)}
    columns["qwk"] = ("QWK", 1, 3)
    rows = [
        [LABELS.get(r, r), m, str(c["accuracy"]["n"])]
        + [_fmt(c[k], scale, digits) for k, (_, scale, digits) in columns.items()]
        for r in regimes
        for m in models
        if (c := cells[r][m])
    ]
    header = ["augmentation", "model", "seeds"] + [h for h, _, _ in columns.values()]
    return Table(header, rows, "All metrics (test split)")


def fidelity_tables(fidelity: dict[str, Any]) -> list[Table]:
    """Raw vs selected synthetic images against train and test; then the memorisation numbers."""
    keys = ("fid", "precision", "recall", "density", "coverage", "n")
    rows = []
    for which in ("raw", "selected"):
        for ref in ("vs_train", "vs_test"):
            f = ((fidelity.get(which) or {}).get(ref) or {}).get("overall")
            if isinstance(f, dict):
                kid = f"{_num(f.get('kid_mean'))} ± {_num(f.get('kid_std'))}"
                rows.append([which, ref.replace("_", " "), kid] + [_num(f.get(k)) for k in keys])
    header = ["synthetic", "reference", "KID", "FID", "precision", "recall", "density"]
    title = (
        f"Fidelity in the selection labeller's features "
        f"({fidelity.get('feature_extractor', 'not recorded')}): selection ranked by this "
        f"network (scores: {', '.join(fidelity.get('ranked_by') or ['not recorded'])}), so the "
        "selected set is favoured by construction; see the independent table"
    )
    tables = [Table(header + ["coverage", "n"], rows, title)]
    memo = fidelity.get("memorisation") if isinstance(fidelity.get("memorisation"), dict) else {}
    trained_on = memo.get("trained_on") if isinstance(memo.get("trained_on"), dict) else {}
    originals = {k: v for k, v in memo.items() if k != "trained_on"}
    for block in (originals, trained_on):
        if flat := _flatten(block):
            rows = [[key, _num(value)] for key, value in flat.items()]
            metric = block.get("metric")
            metric = f" (distance: {metric})" if isinstance(metric, str) else ""
            tables.append(Table(["quantity", "value"], rows, f"Memorisation{metric}"))
    return tables


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Numeric (or None) leaves of a nested dict, keyed by dotted path; lists are left out."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
    return out


def generator_table(rows: list[dict[str, Any]], models: list[str]) -> Table:
    """One row per generator: independent FID/precision/recall of its selected samples vs the
    real test split, the floor, and the accuracy its seed(s) reached with its images."""
    header = ["generator (seed)", "FID sel. vs test", "FID raw vs test", "precision", "recall"]
    header += ["n", "floor FID val vs test (n)"]
    for model in models:
        header += [f"{model}: Classic+GAN acc. %", f"{model}: gain over Classic (points)"]
    body = []
    for row in rows:
        sel, raw = row.get("selected_vs_test") or {}, row.get("raw_vs_test") or {}
        floor = row.get("floor_val_vs_test") or {}
        cells = [str(row["seed"]), _num(sel.get("fid")), _num(raw.get("fid"))]
        cells += [_num(sel.get("precision")), _num(sel.get("recall")), _num(sel.get("n"))]
        cells.append(f"{_num(floor.get('fid'))} ({_num(floor.get('n'))})")
        for model in models:
            acc, gain = row[model]["classic+gan_accuracy"], row[model]["gain_over_classic"]
            cells.append("missing" if acc is None else f"{acc * 100:.2f}")
            cells.append("—" if gain is None else f"{gain * 100:+.2f}")
        body.append(cells)
    return Table(header, body, "Per generator: independent fidelity and what its images did")
