"""Writing the report: the summary laid out as sections, each rendered the same way to
results.md (markdown) and report.html (one self-contained page from report.html.j2: figures
inlined as data URIs, no external CSS or JS); results.csv holds Table 1's numbers flat.
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ganaug import __version__, stats
from ganaug.report.load import METRICS, PROTOCOLS
from ganaug.report.tables import Table, fidelity_tables, generator_table, metrics_table, table1

GENERATOR_NOTE = (
    "Each row is one generator (one per seed with experiment.generator_per_seed; otherwise one "
    "serves every seed, and its accuracy columns are the mean over them). FID, precision and "
    "recall of its selected samples against the real test split, which neither the generator "
    "nor selection ever saw, at equal n. The floor is real val vs real test in the same space "
    "(both unseen by the extractor; at val's n, so smaller n than the synthetic rows and biased "
    "up by it): real-vs-real distances from the train split are inflated, because the extractor "
    "trained on those images. Accuracy: best-validation epoch. Lower FID next to a larger gain "
    "would suggest better generators help more; a handful of rows cannot show it."
)


@dataclass
class Section:
    """One part of the report, rendered the same way to results.md and report.html."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # file name -> caption


def sections(summary: dict[str, Any], figures: dict[str, str]) -> list[Section]:
    """The report's parts in order: Table 1 per protocol, the paired comparison, the generators,
    fidelity and memorisation, the figures, and what was missing."""
    regimes, models, floor = summary["regimes"], summary["models"], summary["floor"]
    notes = [
        "Mean ± std over seeds (std with ddof=1; (n=1) marks a single seed). The paper's "
        "numbers are single runs with no stated epoch choice.",
        f"Majority-class floor: {floor['accuracy'] * 100:.2f} % (always predicting class "
        f"{floor['class']}: {floor['count']} of {floor['n']} test images).",
    ]
    notes += [summary["budget"]] if summary.get("budget") else []
    if ignored := summary["ignored_cells"]:
        notes.append(
            f"Ignored {len(ignored)} result cell(s) on disk that config.yaml's grid does not name "
            f"(left from an earlier run): {', '.join(ignored)}."
        )
    parts = []
    for p, name in PROTOCOLS.items():
        cells = summary["table"][p]
        tables = [table1(cells, regimes, models, summary["paper"])]
        tables.append(metrics_table(cells, regimes, models))
        parts.append(Section(f"Table 1: test accuracy (%), {name}", notes, tables))
    sentences = [
        f"{name}: {c['sentence']}"
        for p, name in PROTOCOLS.items()
        for c in summary["comparisons"][p]
    ]
    n = sum("p_value" in c for comps in summary["comparisons"].values() for c in comps)
    method = stats.method_text(summary["bootstrap_resamples"], summary["generator_per_seed"])
    paragraphs = [method, stats.multiplicity_text(n)] + sentences
    parts.append(Section("Did the GAN help? Paired comparison", paragraphs))
    gens = summary["generators"]
    if any("selected_vs_test" in row for row in gens):
        notes = [GENERATOR_NOTE, next((r["note"] for r in gens if r.get("note")), "")]
        table = generator_table(gens, models)
        parts.append(Section("Generators: independent fidelity per seed", notes, [table]))
    fid = summary["fidelity"]
    parts.append(
        Section("Fidelity and memorisation of the synthetic images", [], fidelity_tables(fid))
        if fid
        else Section("Fidelity and memorisation", ["data/fidelity.json not found or unreadable."])
    )
    parts.append(Section("Figures", figures=figures))
    if summary["missing"]:
        parts.append(Section("Missing", list(summary["missing"])))
    return parts


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table.rows])


def markdown(parts: list[Section], summary: dict[str, Any]) -> str:
    """results.md: a heading per section, its tables, paragraphs and figure links."""
    lines = [f"# ganaug report: {Path(summary['run_dir']).resolve().name}"]
    lines.append(
        f"Run directory `{summary['run_dir']}`; ganaug {__version__}; {summary['source']}; "
        f"{summary['created']}."
    )
    for sec in parts:
        lines.append(f"## {sec.title}")
        for table in sec.tables:
            lines += ([f"**{table.title}**"] if table.title else []) + [markdown_table(table)]
        if sec.title == "Missing":
            lines.append("\n".join(f"- {p}" for p in sec.paragraphs))
        else:
            lines += sec.paragraphs
        lines += [f"![{caption}]({name})" for name, caption in sec.figures.items()]
    return "\n\n".join(lines) + "\n"


def results_csv(summary: dict[str, Any]) -> str:
    """One row per protocol x regime x model x metric (mean, std as fractions); the paper's
    accuracy in % on the accuracy rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["protocol", "regime", "model", "metric", "mean", "std", "n", "paper_pct"])
    for p, by_regime in summary["table"].items():
        for regime, by_model in by_regime.items():
            for model, cell in by_model.items():
                paper = summary["paper"].get(regime, {}).get(model, "")
                for metric in METRICS:
                    spread = cell[metric] if cell else {"mean": None, "std": None, "n": 0}
                    mean, std = ("" if v is None else v for v in (spread["mean"], spread["std"]))
                    extra = paper if metric == "accuracy" else ""
                    writer.writerow([p, regime, model, metric, mean, std, spread["n"], extra])
    return buf.getvalue()


def html_page(parts: list[Section], out: Path, summary: dict[str, Any], config: str) -> str:
    """One self-contained page: every PNG inlined as a data URI, no external CSS or JS."""
    uris = {}
    for name in (n for sec in parts for n in sec.figures):
        uris[name] = "data:image/png;base64," + base64.b64encode((out / name).read_bytes()).decode()
    template = resources.files("ganaug.report").joinpath("report.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(
        sections=parts, uris=uris, summary=summary, config=config
    )
