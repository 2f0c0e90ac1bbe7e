"""`build_report`: a run directory in, run_dir/report/ out.

Reads the results (load.py), computes the numbers (aggregate.py, compare.py), draws the figures
(figures.py) and writes results.md / .csv / .json, fidelity.json and report.html (render.py).
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

from ganaug import InputError, __version__, layout
from ganaug.report.aggregate import budget_note, generator_rows, majority_floor, table_cell
from ganaug.report.compare import comparisons
from ganaug.report.figures import write_figures
from ganaug.report.load import PROTOCOLS, REGIMES, Results, load_results, read_config, source_text
from ganaug.report.render import html_page, markdown, markdown_table, results_csv, sections
from ganaug.report.tables import PAPER_TABLE1
from ganaug.runtime import atomic_write_json, atomic_write_text

log = logging.getLogger("ganaug")


def build_report(run_dir: Path, *, paper_table: dict | None = None) -> dict[str, Any]:
    """Write run_dir/report/: results.md/.csv/.json, the figures, fidelity.json, report.html.

    `paper_table` (regime -> model -> accuracy %) replaces the paper's Table 1 beside ours.
    Returns the results.json content plus `table1_markdown` (Table 1 at the last epoch).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory; give the run directory `ganaug run` wrote")
    missing: list[str] = []
    config_text, config = read_config(run_dir, missing)
    experiment = config.get("experiment") if isinstance(config.get("experiment"), dict) else {}
    results, ignored = load_results(run_dir, experiment)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    regimes, models = _order(results, list(experiment.get("models") or []), missing)
    seeds = [s for s in experiment.get("seeds") or [] if isinstance(s, int)]
    owners = layout.generator_dirs(seeds or [0], experiment.get("generator_per_seed") is True)
    first = (next(iter(owners)), *next(iter(owners.values())))
    resamples = experiment.get("bootstrap", 1000)
    resamples = resamples if isinstance(resamples, int) and resamples >= 1 else 1000
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "version": __version__,
        "source": source_text(run_dir),
        "protocols": PROTOCOLS,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "regimes": regimes,
        "models": models,
        "bootstrap_resamples": resamples,
        "generator_per_seed": experiment.get("generator_per_seed") is True,
        "ignored_cells": ignored,
        "paper": PAPER_TABLE1 if paper_table is None else paper_table,
        "table": {
            p: {r: {m: table_cell(results.get(r, {}).get(m), p) for m in models} for r in regimes}
            for p in PROTOCOLS
        },
        "floor": majority_floor(results),
        "budget": budget_note(results, regimes),
        "comparisons": comparisons(results, models, resamples),
        "fidelity": _copy_fidelity(run_dir, first[2], out, missing),
        "generators": generator_rows(run_dir, owners, results, models),
    }
    figures = write_figures(run_dir, out, results, models, missing, first, summary["generators"])
    summary.update(figures=list(figures), missing=missing)
    parts = sections(summary, figures)
    atomic_write_text(out / "results.md", markdown(parts, summary))
    atomic_write_text(out / "results.csv", results_csv(summary))
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "report.html", html_page(parts, out, summary, config_text))
    log.info("report written to %s", out)
    return {**summary, "table1_markdown": markdown_table(parts[0].tables[0])}


def _order(results: Results, config_models: list[str], missing: list[str]):
    """Table 1's rows (the paper's three, then any extra regime) and columns (config order)."""
    found = {m for by_model in results.values() for m in by_model}
    models = [m for m in config_models if m in found] + sorted(found - set(config_models))
    extra = sorted(
        (r for r in results if r not in REGIMES[:3]), key=lambda r: (r not in REGIMES, r)
    )
    regimes = list(REGIMES[:3]) + extra
    for regime in regimes:
        absent = [m for m in models if not results.get(regime, {}).get(m)]
        if absent:
            missing.append(f"regime {regime}: no results for {', '.join(absent)}")
    return regimes, models


def _copy_fidelity(
    run_dir: Path, data_dir: str, out: Path, missing: list[str]
) -> dict[str, Any] | None:
    """The first generator's fidelity.json (data/ or data/seed<s>/) copied to report/; None
    (noted in `missing`) when absent or unreadable."""
    path = run_dir / data_dir / "fidelity.json"
    fidelity, problem = None, "not found"
    if path.is_file():
        try:
            fidelity = json.loads(path.read_text())
            problem = "" if isinstance(fidelity, dict) else "not a JSON object"
        except (OSError, ValueError) as err:
            problem = f"unreadable ({err})"
    if problem:
        missing.append(f"{data_dir}/fidelity.json {problem}: no fidelity or memorisation numbers")
        (out / "fidelity.json").unlink(missing_ok=True)
        return None
    atomic_write_json(out / "fidelity.json", fidelity)
    return fidelity
