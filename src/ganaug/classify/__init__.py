"""Classifiers: the paper's ResNet / DenseNet, trained with per-epoch evaluation, resumable.

One module per job:
- models.py: the registry (`@register_classifier`), building by name, local weights, rebuilding
  a classifier from its checkpoint;
- engine.py: inputs, optimiser steps, one shuffled epoch, a range of steps, prediction;
- scratch.py: a classifier trained from scratch with no evaluation (selection labeller, fidelity
  extractor);
- budget.py: classify.budget, how a fit trains between two evaluations (epochs or steps);
- state.py: one fit's state, built seeded and restored from last.pt;
- results.py: curves.csv, the figures and metrics.json;
- fit.py: fit_classifier, the classify stage tying them together.
"""

from ganaug.classify.budget import BUDGETS, budget_ends, resolve_steps
from ganaug.classify.engine import (
    ClassifierDiverged,
    NonFiniteLoss,
    balanced_class_weights,
    forward_all,
    pass_batches,
    pass_seed,
    predict,
    to_input,
    train_batch,
    train_one_epoch,
    train_steps,
)
from ganaug.classify.fit import fit_classifier, merge_train, run_hash
from ganaug.classify.models import (
    GAN_FORMAT_PREFIX,
    MODELS,
    Classifier,
    Family,
    build_model,
    load_classifier,
    load_weights,
    refuse_gan_checkpoint,
    register_classifier,
)
from ganaug.classify.results import CURVE_COLUMNS
from ganaug.classify.scratch import train_from_scratch, train_plain
from ganaug.classify.state import Run, start_run

_start = start_run  # the name tests/test_distributed.py imports

__all__ = [
    "BUDGETS",
    "CURVE_COLUMNS",
    "GAN_FORMAT_PREFIX",
    "MODELS",
    "Classifier",
    "ClassifierDiverged",
    "Family",
    "NonFiniteLoss",
    "Run",
    "balanced_class_weights",
    "budget_ends",
    "build_model",
    "fit_classifier",
    "forward_all",
    "load_classifier",
    "load_weights",
    "merge_train",
    "pass_batches",
    "pass_seed",
    "predict",
    "refuse_gan_checkpoint",
    "register_classifier",
    "resolve_steps",
    "run_hash",
    "start_run",
    "to_input",
    "train_batch",
    "train_from_scratch",
    "train_one_epoch",
    "train_plain",
    "train_steps",
]
