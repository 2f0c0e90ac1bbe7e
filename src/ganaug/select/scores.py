"""Selection scores: the registry of per-sample scores whose ranks make `combined_rank`.

The paper keeps "high quality" fakes without saying how quality was judged; these scores are our
explicit version. Each score is one function registered with `@selection_score`: it reads the raw
samples, their labelling and the checkpoint (`ScoreInputs`) and returns one value per sample,
higher = better, or None when it cannot be computed for this run (e.g. no checkpoint).

- `critic`: the generator family's realism score (`generators.sample.realism_scores`: a GAN's
  critic, higher = judged more real); only when a checkpoint of a family that has one is given.
- `confidence`: the labeller's probability of each sample's label (its selection.csv column is
  written with the labelling columns, see `table.py`).
- `knn_realism`: the k-NN realism score of Kynkäänniemi et al. 2019 (metrics.knn_realism, k =
  select.prdc_k) of each sample's labeller features against the real train split's; only for a
  checkpoint whose family has no realism score of its own (a diffusion model), where it stands in
  for the critic. Without a checkpoint selection ranks as before, by confidence alone.

Ranks: `<name>_rank` is the ordinal rank of a score over all raw samples (0 = the highest score;
equal scores ordered by index; -1 in every row when the score is not available). `combined_rank`
= sum(weight * rank) / sum(weight) over the scores in registry order, the weight of each being its
`select.<weight>` config field (0 when the score is not available); lower is better.

Adding a score: one decorated function below, and its weight field in `SelectConfig`
(`config/sections.py`, with a comment and a check). Its columns then appear in selection.csv
after those of the scores registered before it, and its rank enters `combined_rank`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ganaug.config import SelectConfig
from ganaug.metrics import knn_realism as realism_metric


@dataclass(frozen=True)
class ScoreInputs:
    """What a selection score may read about the raw samples."""

    images: np.ndarray  # (N, H, W, C) uint8, the raw samples
    label: np.ndarray  # (N,) int64, the class each sample counts for
    labelled: bool  # label is the generator's class (False: the labeller's argmax)
    probs: np.ndarray  # (N, C) the labeller's class probabilities
    confidence: np.ndarray  # (N,) float64, the labeller's probability of `label`
    features: np.ndarray  # (N, D) the labeller's penultimate-layer features
    checkpoint: Path | None  # the generator checkpoint, when one is given
    device: torch.device  # where scores that run a network compute
    real_features: np.ndarray | None = None  # (R, D) the labeller's features of real train
    knn_k: int = 5  # k of the k-NN realism balls


@dataclass(frozen=True)
class SelectionScore:
    """A registered score: how it is computed, how it is weighted, where it is written."""

    name: str  # registry name; selection.csv column of its rank: f"{name}_rank"
    weight: str  # SelectConfig field weighting its rank in combined_rank
    compute: Callable[[ScoreInputs], np.ndarray | None]  # (N,) higher = better; None = unavailable
    value_column: bool  # write the score as column `name` (False: the labelling columns hold it)

    @property
    def columns(self) -> tuple[str, ...]:
        """Its selection.csv columns, in order."""
        return (*((self.name,) if self.value_column else ()), f"{self.name}_rank")


SCORES: dict[str, SelectionScore] = {}  # in registry order: the order of columns and of the sum


def selection_score(
    name: str, *, weight: str, value_column: bool = True
) -> Callable[[Callable[[ScoreInputs], np.ndarray | None]], Callable]:
    """Register the decorated function (ScoreInputs -> (N,) scores or None) as score `name`."""
    if weight not in {f.name for f in fields(SelectConfig)}:
        raise ValueError(
            f"selection score {name}: select.{weight} is not a SelectConfig field; add it to "
            "SelectConfig in config/sections.py"
        )
    if name in SCORES:
        raise ValueError(f"selection score {name} is registered twice")

    def register(compute: Callable[[ScoreInputs], np.ndarray | None]) -> Callable:
        SCORES[name] = SelectionScore(name, weight, compute, value_column)
        return compute

    return register


def score_critic(
    checkpoint: Path, images: np.ndarray, labels: np.ndarray | None, device: torch.device
) -> np.ndarray | None:
    """The generator family's realism score of each image (a GAN: its critic; higher = judged
    more real), or None when the family has none."""
    from ganaug.generators.sample import realism_scores

    scores = realism_scores(Path(checkpoint), images, labels, device=device)
    return None if scores is None else np.asarray(scores, np.float64)


@selection_score("critic", weight="critic_weight")
def critic(inputs: ScoreInputs) -> np.ndarray | None:
    """The realism score of the checkpoint's family; None without a checkpoint or such a score."""
    if inputs.checkpoint is None:
        return None
    labels = inputs.label if inputs.labelled else None  # conditional critics judge (image, class)
    return score_critic(inputs.checkpoint, inputs.images, labels, inputs.device)


@selection_score("confidence", weight="confidence_weight", value_column=False)
def confidence(inputs: ScoreInputs) -> np.ndarray:
    """The labeller's probability of the sample's label: a labelled sample it doubts ranks low."""
    return inputs.confidence


@selection_score("knn_realism", weight="knn_realism_weight")
def knn_realism(inputs: ScoreInputs) -> np.ndarray | None:
    """Feature-space realism against the real train split, for a family without a critic."""
    if inputs.checkpoint is None or inputs.real_features is None:
        return None
    if has_realism_score(inputs.checkpoint) or len(inputs.real_features) <= inputs.knn_k:
        return None
    return realism_metric(inputs.real_features, inputs.features, inputs.knn_k)


def has_realism_score(checkpoint: Path) -> bool:
    """Whether the checkpoint's generator family scores realism itself (a GAN's critic)."""
    from ganaug.generators.checkpoint import family_of, load_checkpoint
    from ganaug.generators.family import GeneratorFamily

    family = family_of(load_checkpoint(Path(checkpoint)))
    return type(family).realism is not GeneratorFamily.realism


def ordinal_rank(values: np.ndarray) -> np.ndarray:
    """0 = highest value; equal values ordered by index; NaN ranks last."""
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((np.arange(len(values)), np.nan_to_num(-values, nan=np.inf)))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return rank


def score_columns(inputs: ScoreInputs, select: SelectConfig) -> dict[str, np.ndarray]:
    """Every registered score's selection.csv columns, in registry order, then combined_rank."""
    n = len(inputs.images)
    columns: dict[str, np.ndarray] = {}
    weighted = []  # (weight, rank) per score; weight 0 when the score is not available
    for score in SCORES.values():
        found = score.compute(inputs)
        values = np.full(n, np.nan) if found is None else np.asarray(found, np.float64)
        rank = ordinal_rank(values)
        if score.value_column:
            columns[score.name] = values
        columns[f"{score.name}_rank"] = np.full(n, -1) if found is None else rank
        weighted.append((0.0 if found is None else getattr(select, score.weight), rank))
    total = sum(weight for weight, _ in weighted)
    columns["combined_rank"] = sum(weight * rank for weight, rank in weighted) / max(total, 1e-12)
    return columns
