"""Did the GAN help? The paired comparisons of the report, each with a one-sentence verdict.

For each pair of COMPARISONS, model and epoch protocol: the accuracy difference with a
hierarchical bootstrap interval (`ganaug.stats`: seeds, then paired test images) and, from
stats.T_INTERVAL_MIN_SEEDS seeds, a paired t-interval; p-values Holm-adjusted over every
comparison the report makes. The interval covers seed-to-seed variance (with
experiment.generator_per_seed, each seed's own GAN draw too) and test-image sampling; not the data
split itself, other datasets, or a different test population.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ganaug import stats
from ganaug.report.load import LABELS, PROTOCOLS, Results, Run

# (better, baseline, what it tests): the first is the paper's claim
COMPARISONS = (
    ("classic+gan", "classic", "the GAN"),
    ("classic", "none", "classic augmentation"),
    ("synthetic-only", "none", "synthetic images in place of real ones"),
)
# regimes a grid runs only on request: their comparison is left out (not an error) without them
OPTIONAL = ("synthetic-only",)
BOOTSTRAP_SEED = 0  # the bootstrap's own seed, so a report is reproducible


def paired_bootstrap(
    better: dict[int, Run],
    base: dict[int, Run],
    protocol: str,
    *,
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Accuracy difference (points) of `better` minus `base`, seeds paired by number.

    Builds the (n_seeds, n_test) correctness arrays of both regimes and reads the interval and
    p-value off `stats.paired_comparison` (hierarchical bootstrap: seeds, then paired test
    images; from stats.T_INTERVAL_MIN_SEEDS seeds a paired t-interval too).
    """
    seeds = sorted(set(better) & set(base))
    if not seeds:
        return {"error": "no seed present in both regimes"}
    labels = np.asarray(base[seeds[0]].metrics["test_labels"])
    correct: dict[str, list[np.ndarray]] = {"b": [], "a": []}
    for s in seeds:
        if any(r[s].metrics["test_labels"] != labels.tolist() for r in (better, base)):
            return {"error": f"seed {s}: the runs were tested on different test labels"}
        for key, runs in (("b", better), ("a", base)):
            correct[key].append(np.asarray(runs[s].metrics[protocol]["test_pred"]) == labels)
    b, a = np.array(correct["b"]), np.array(correct["a"])  # (n_seeds, n_test) each
    return {"seeds": seeds} | stats.paired_comparison(b, a, resamples=resamples, seed=seed)


ALPHA = 0.05  # the family-wise error rate of the report's claims (Holm over all comparisons)


def verdict_sentence(comp: dict[str, Any], better: str, base: str, model: str, what: str) -> str:
    """One plain sentence on whether `better` beat `base`: "evidence that X helped" (or hurt) when
    the hierarchical interval excludes zero and the Holm-adjusted p is below ALPHA, else "no
    evidence either way"."""
    b, a = LABELS.get(better, better), LABELS.get(base, base)
    if "error" in comp:
        return f"{b} vs {a} for {model}: not available ({comp['error']})."
    diff, (low, high), n = comp["diff_points"], comp["ci_points"], comp["n_seeds"]
    p = f"p = {stats.format_p(comp['p_value'])}" + (
        f", Holm-adjusted {stats.format_p(comp['p_holm'])}" if "p_holm" in comp else ""
    )
    comp["verdict"] = stats.verdict(comp["ci_points"])  # the sentence and the key agree
    conclusion = {
        "helped": f"excludes zero: evidence that {what} helped.",
        "hurt": f"excludes zero: evidence that {what} hurt.",
        "no evidence": "includes zero: no evidence either way.",
    }[comp["verdict"]]
    if comp["verdict"] != "no evidence" and comp.get("p_holm", 0.0) >= ALPHA:
        # one of several comparisons: a single interval excluding zero is not evidence yet
        comp["verdict"] = "no evidence"
        conclusion = (
            f"excludes zero, but not after Holm's correction over this report's comparisons "
            f"(adjusted p >= {ALPHA}): no evidence either way."
        )
    sentence = (
        f"{b} {'beats' if diff >= 0 else 'trails'} {a} for {model} by {abs(diff):.2f} points "
        f"(95 % CI [{low:+.2f}, {high:+.2f}], {n} paired seed(s), {comp['n_test']} test images; "
        f"{p}): the interval {conclusion}"
    )
    if n == 1:
        sentence += " 1 seed: the interval covers test images only, not seed-to-seed variance."
    if t := comp.get("t_interval"):
        (tl, th), tp = t["ci_points"], t["p_value"]
        sentence += f" Paired t over the {n} per-seed differences: [{tl:+.2f}, {th:+.2f}], "
        sentence += f"p = {stats.format_p(tp)}."
    return sentence


def comparisons(results: Results, models: list[str], resamples: int) -> dict[str, list]:
    """Every comparison of COMPARISONS x models x PROTOCOLS, with p-values Holm-adjusted over
    all of them (the family is every comparison this report makes)."""
    out: dict[str, list] = {}
    for protocol in PROTOCOLS:
        out[protocol] = []
        for better, base, _ in COMPARISONS:
            if any(r in OPTIONAL and r not in results for r in (better, base)):
                continue
            for model in models:
                runs_b = results.get(better, {}).get(model)
                runs_a = results.get(base, {}).get(model)
                if not runs_b or not runs_a:
                    miss = [r for r, runs in ((better, runs_b), (base, runs_a)) if not runs]
                    comp: dict[str, Any] = {"error": f"no {' or '.join(miss)} results"}
                else:
                    comp = paired_bootstrap(runs_b, runs_a, protocol, resamples=resamples)
                out[protocol].append({"better": better, "base": base, "model": model, **comp})
    stats.add_holm([c for comps in out.values() for c in comps])
    what = {(better, base): w for better, base, w in COMPARISONS}
    for comps in out.values():
        for c in comps:
            c["sentence"] = verdict_sentence(
                c, c["better"], c["base"], c["model"], what[c["better"], c["base"]]
            )
    return out
