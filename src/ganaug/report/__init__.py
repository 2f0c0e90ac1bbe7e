"""Report: Table 1, the paired comparison, Figures 1-5 and a self-contained HTML page.

Implements the paper's outputs (Table 1; Fig. 1 real vs synthetic; Fig. 2-3 training curves;
Fig. 4-5 confusion matrices) from the files a run directory holds. It only reads files: it never
imports the training stages. Beyond the paper it reports mean ± std over seeds, two epoch choices
(the last epoch, as the paper does, and the best-validation epoch), AUC / balanced accuracy /
macro F1 / QWK, the majority-class floor, the GAN's fidelity and memorisation numbers, and for
each paired comparison a hierarchical bootstrap interval (`ganaug.stats`: seeds, then test
images) with Holm-adjusted p-values over all comparisons. The interval covers seed-to-seed
variance (with experiment.generator_per_seed, each seed's own GAN draw too) and test-image
sampling; not the data split itself, other datasets, or a different test population. Only the
cells config.yaml's grid names are read; stale ones on disk are listed as ignored.

One job per module, in the order build_report runs them:
- load.py: reading the run directory (metrics.json, config.yaml, CSV logs); the `Run` type.
- aggregate.py: numbers over seeds (Table 1's cells, the floor, the budget note, per generator).
- compare.py: the paired comparisons, Holm-adjusted, and their one-sentence verdicts.
- figures.py: Figs. 1-5 and the GAN's losses (curves and confusion via `ganaug.plots`).
- tables.py: the numbers as tables of strings.
- render.py: sections -> results.md, results.csv, report.html (report.html.j2).
- build.py: `build_report`, which runs them and writes run_dir/report/.
"""

from ganaug.report.aggregate import budget_note
from ganaug.report.build import build_report
from ganaug.report.compare import paired_bootstrap, verdict_sentence
from ganaug.report.load import Run

__all__ = ["Run", "budget_note", "build_report", "paired_bootstrap", "verdict_sentence"]
