"""Which samples are kept: eligibility, per-class quotas, and the top K by combined rank.

The paper keeps 443 fakes of about 2000 and splits them 101/96/84/80/82 into the 5 classes without
saying how. `select.quota` (always summing to select.k) makes the split explicit: `balanced` K//C
each, the remainder one each to the first classes; `paper` 101/96/84/80/82 (5 classes only),
scaled to K when K != 443; `proportional` to the real train class counts; `inverse` proportional
to 1/count (fills the rare classes); or an explicit comma list (one count per class, summing to
K). Shares are rounded by largest remainder (exact fractions; ties to the lower class index).

Dropped before ranking (`reason` in selection.csv): `memorised` (see memorisation.py),
`low_confidence` (confidence < select.min_confidence), `disagrees` (with select.require_agreement,
a labelled sample the labeller puts in another class). Each class then keeps its eligible samples
of lowest combined rank (ties to the lower index) up to its quota; a class with too few keeps all
it has, and the shortfall is logged and recorded (not refilled from other classes: the class
balance is the point of the quota).
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np

from ganaug import InputError
from ganaug.config import Config
from ganaug.select.memorisation import memorised

log = logging.getLogger("ganaug")

PAPER_QUOTA = (101, 96, 84, 80, 82)  # the paper's split of its 443 kept fakes


def largest_remainder(weights: list[Fraction] | list[int], total: int) -> list[int]:
    """Integer shares of `total` proportional to `weights` (exact; ties to the lower index)."""
    weights = [Fraction(w) for w in weights]
    if sum(weights) <= 0:
        raise InputError("select.quota: every class weight is zero; give an explicit list")
    exact = [w * total / sum(weights) for w in weights]
    shares = [int(e) for e in exact]  # floor: exact is non-negative
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def quota_counts(quota: str, k: int, train_counts: list[int]) -> list[int]:
    """Per-class numbers of kept samples for `select.quota` (see the module docstring)."""
    c = len(train_counts)
    if quota == "balanced":
        base, extra = divmod(k, c)
        return [base + (i < extra) for i in range(c)]
    if quota == "paper":
        if c != 5:
            raise InputError(
                f"select.quota=paper: the paper's 101/96/84/80/82 split needs 5 classes, the data "
                f"has {c}; use balanced, proportional, inverse or an explicit list"
            )
        return largest_remainder(list(PAPER_QUOTA), k)
    if quota == "proportional":
        return largest_remainder(train_counts, k)
    if quota == "inverse":
        return largest_remainder([Fraction(1, n) if n else Fraction(0) for n in train_counts], k)
    counts = [int(p) for p in quota.split(",")]
    if len(counts) != c:
        raise InputError(f"select.quota={quota}: {len(counts)} counts for {c} classes")
    if sum(counts) != k:
        raise InputError(f"select.quota={quota}: sums to {sum(counts)} but select.k is {k}")
    return counts


def select_top_k(
    combined: np.ndarray, labels: np.ndarray, eligible: np.ndarray, quotas: list[int]
) -> np.ndarray:
    """Bool mask (N,): per class, the eligible samples of lowest combined rank, up to its quota."""
    taken = [0] * len(quotas)
    kept = np.zeros(len(labels), dtype=bool)
    for i in np.lexsort((np.arange(len(labels)), combined)):
        c = int(labels[i])
        if eligible[i] and taken[c] < quotas[c]:
            kept[i] = True
            taken[c] += 1
    return kept


def drop_reasons(table: dict[str, np.ndarray], cfg: Config) -> list[list[str]]:
    """Why each sample is ineligible ([] = eligible)."""
    scfg = cfg.select
    reasons: list[list[str]] = [[] for _ in table["index"]]
    copies = memorised(table, scfg.min_nn_distance)  # close to any reference set
    for i in range(len(reasons)):
        if copies[i]:
            reasons[i].append("memorised")
        if table["confidence"][i] < scfg.min_confidence:
            reasons[i].append("low_confidence")
        if scfg.require_agreement and table["agree"][i] == "no":
            reasons[i].append("disagrees")
    return reasons


def choose(
    table: dict[str, np.ndarray], quotas: list[int], names: tuple[str, ...], cfg: Config
) -> tuple[np.ndarray, list[list[str]], dict[str, dict[str, int]]]:
    """Eligibility and top K: kept mask (N,), drop reasons, per-class quota/kept/shortfall."""
    reasons = drop_reasons(table, cfg)
    eligible = np.array([not r for r in reasons])
    kept = select_top_k(table["combined_rank"], table["label"], eligible, quotas)
    got = np.bincount(table["label"][kept], minlength=len(names)).tolist()
    shortfall = {}
    for c, name in enumerate(names):
        if got[c] < quotas[c]:
            shortfall[name] = quotas[c] - got[c]
            log.warning(
                "select: class %s kept %d of its quota %d (%d short: too few eligible samples)",
                *(name, got[c], quotas[c], quotas[c] - got[c]),
            )
    counts = {
        "quota_counts": dict(zip(names, quotas, strict=True)),
        "kept_counts": dict(zip(names, got, strict=True)),
        "shortfall": shortfall,
    }
    return kept, reasons, counts
