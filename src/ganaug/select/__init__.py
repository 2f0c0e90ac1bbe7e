"""Selection of synthetic images: score, label, keep the top K under per-class quotas.

The paper keeps 443 "high quality" fakes of about 2000 and splits them 101/96/84/80/82 into the 5
classes without saying how. This package makes that step explicit and auditable: every raw sample
gets a row in `selection.csv` with its scores, its label, whether it was kept and why. One module
per job:

- `stage.py`: `select_samples`, the stage (input checks, then the steps below, then the outputs)
- `labeller.py`: the classifier trained on the real train split that labels and scores samples
- `scores.py`: the registry of selection scores (critic, confidence) and `combined_rank`
- `memorisation.py`: distances to the nearest original / trained-on image, copy detection
- `table.py`: the per-sample table and selection.csv
- `quotas.py`: per-class quotas, eligibility and the top K (`choose`)
- `fidelity.py`: fidelity.json's KID / FID / PRDC and Inception blocks
- `figures.py`: memorisation*.png and selected_contact.png

Same inputs, config and seed give an identical selection.csv, fidelity.json and figures.
"""

from ganaug.select.fidelity import fidelity_block, inception_block, load_inception
from ganaug.select.figures import CONTACT_PER_CLASS, write_figures
from ganaug.select.labeller import Labeller, train_labeller
from ganaug.select.memorisation import (
    MEMORISATION_PAIRS,
    ORIGINALS,
    TRAINED_ON,
    Reference,
    closest_samples,
    memorisation_block,
    memorised,
    nearest_columns,
    reference_memorisation,
    reference_sets,
)
from ganaug.select.quotas import (
    PAPER_QUOTA,
    choose,
    drop_reasons,
    largest_remainder,
    quota_counts,
    select_top_k,
)
from ganaug.select.scores import (
    SCORES,
    ScoreInputs,
    SelectionScore,
    ordinal_rank,
    score_columns,
    score_critic,
    selection_score,
)
from ganaug.select.stage import check_inputs, select_samples
from ganaug.select.table import score_samples, selection_csv

__all__ = [
    "CONTACT_PER_CLASS",
    "MEMORISATION_PAIRS",
    "ORIGINALS",
    "PAPER_QUOTA",
    "SCORES",
    "TRAINED_ON",
    "Labeller",
    "Reference",
    "ScoreInputs",
    "SelectionScore",
    "check_inputs",
    "choose",
    "closest_samples",
    "drop_reasons",
    "fidelity_block",
    "inception_block",
    "largest_remainder",
    "load_inception",
    "memorisation_block",
    "memorised",
    "nearest_columns",
    "ordinal_rank",
    "quota_counts",
    "reference_memorisation",
    "reference_sets",
    "score_columns",
    "score_critic",
    "score_samples",
    "select_samples",
    "select_top_k",
    "selection_csv",
    "selection_score",
    "train_labeller",
    "write_figures",
]
