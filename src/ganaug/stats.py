"""Statistics of the report: is regime b's test accuracy above baseline a's, and how sure?

The data are 0/1 correctness arrays `correct[s, i]` of shape (n_seeds, n_test), one per regime,
rows paired by seed (seed s of both regimes shares its seed: classifier initialisation and, with
`experiment.generator_per_seed`, its own GAN draw) and columns paired by test image. Their
difference D = correct_b - correct_a is a crossed seeds x images array:

    D[s, i] = mu + a_s + b_i + e_si

with a seed effect a_s (variance sigma_a^2), an image effect b_i (how much easier image i is for
b than for a, variance sigma_b^2) and a seed x image interaction e_si (variance sigma_e^2: which
images a given seed happens to get right). The estimate is the mean of D, whose variance over
new seeds and a new test sample from the same population is

    V = sigma_a^2 / S + sigma_b^2 / N + sigma_e^2 / (S N)        (S seeds, N test images).

`hierarchical_bootstrap` resamples seeds, then test images, in a way whose variance is an
unbiased estimate of V, widened for the few seeds it rests on. Not covered by any of it:
variation of the data split itself, other datasets, or a test population different from the
one the test split samples. The paper reports single runs and no interval; all of this is ours.

Pure numpy and scipy.stats (t quantiles); nothing here knows about runs or files."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

LEVEL = 0.95  # two-sided confidence level of every interval here
T_INTERVAL_MIN_SEEDS = 5  # the report adds a paired t-interval over seeds from this many seeds
CHUNK_ELEMENTS = 1 << 22  # bootstrap indices drawn per chunk (about 32 MB of int64)
CI_METHOD = (
    "paired hierarchical bootstrap (seeds, then test images), 95 % percentile, "
    "each level widened by t/z for its degrees of freedom"
)


# ---------------------------------------------------------------------------------------------
# the crossed seeds x images model


def two_way_split(diff: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """D = m + r_s + c_i + e_si: grand mean, (S,) seed and (N,) image deviations, (S, N) rest."""
    grand = float(diff.mean())
    rows = diff.mean(axis=1) - grand
    cols = diff.mean(axis=0) - grand
    return grand, rows, cols, diff - grand - rows[:, None] - cols[None, :]


def two_way_mean_squares(diff: np.ndarray) -> dict[str, float]:
    """Two-way ANOVA of a (S, N) array without replication.

    With the split D = m + r_s + c_i + e_si of `two_way_split`:
        MS_seeds = N sum_s r_s^2 / (S - 1)                E = N sigma_a^2 + sigma_e^2
        MS_images = S sum_i c_i^2 / (N - 1)               E = S sigma_b^2 + sigma_e^2
        MS_resid = sum_si e_si^2 / ((S - 1)(N - 1))       E = sigma_e^2
    A mean square whose degrees of freedom are zero is NaN.
    """
    n_seeds, n_test = diff.shape
    _, rows, cols, resid = two_way_split(diff)
    df_s, df_i = n_seeds - 1, n_test - 1
    nan = float("nan")
    return {
        "seeds": float(n_test * (rows**2).sum() / df_s) if df_s else nan,
        "images": float(n_seeds * (cols**2).sum() / df_i) if df_i else nan,
        "resid": float((resid**2).sum() / (df_s * df_i)) if df_s and df_i else nan,
    }


def variance_of_mean(ms: dict[str, float], n_seeds: int, n_test: int) -> tuple[float, float]:
    """(V_seeds, V_images): the two parts of Var(mean D), by the method of moments.

        V_seeds = MS_seeds / (S N) = var_s(r_s) / S       estimates sigma_a^2/S + sigma_e^2/(S N)
        V_images = max(0, MS_images - MS_resid) / (S N)   estimates sigma_b^2 / N

    so V_seeds + V_images estimates V with the interaction counted once, inside the seed part:
    each seed's accuracy difference carries its own test-image noise. With one seed sigma_a and
    sigma_e cannot be told apart: V_seeds = 0 and V_images = MS_images / N, the test-image
    variance of that one seed's difference.
    """
    if n_test == 1:
        return (ms["seeds"] if n_seeds > 1 else 0.0) / n_seeds, 0.0
    if n_seeds == 1:
        return 0.0, ms["images"] / n_test
    scale = n_seeds * n_test
    return ms["seeds"] / scale, max(ms["images"] - ms["resid"], 0.0) / scale


def t_stretch(df: int) -> float:
    """t_{0.975, df} / z_{0.975}: how much wider a 95 % interval is when its variance rests on
    df degrees of freedom than when it is known (12.7 / 1.96 = 6.5 for df = 1, 1.42 for 4)."""
    tail = 1 - (1 - LEVEL) / 2
    return float(sps.t.ppf(tail, df) / sps.norm.ppf(tail))


# ---------------------------------------------------------------------------------------------
# intervals and p-values


def hierarchical_bootstrap(
    correct_b: np.ndarray, correct_a: np.ndarray, *, resamples: int, seed: int
) -> dict[str, Any]:
    """Paired two-stage bootstrap of the accuracy difference b - a, in points.

    Each resample draws S seeds with replacement (counts w_s), then N test images with
    replacement (counts v_i; the same images for both regimes: paired), and forms

        T* = m + k_s sum_s w_s r_s / S + k_i sum_i v_i c_i / N + k_e sum_si w_s v_i e_si / (S N)

    from the two-way split D = m + r_s + c_i + e_si of D = b - a (grand mean, per-seed and
    per-image deviations, interaction). The scales (`_resample_scales`) give each part the
    variance of `variance_of_mean`, widened by t/z for the degrees of freedom it rests on:
    with 5 seeds a z-width interval from 4 df covers about 88 %, not 95 % (Student). Widening
    each part by its own t, rather than the sum by a Satterthwaite df, stays calibrated at
    2-3 seeds, where an estimated df is unreliable.

    Why not the plain mean of D over the drawn seeds and images: its variance is about
    sigma_a^2/S + sigma_b^2/N + 3 sigma_e^2/(S N), the interaction counted in the seed means,
    the image means and the drawn cells (McCullagh 2000; Owen 2007), and it has no small-S
    correction. Simulated as in tests/test_stats.py (400 images), it covered 99 % with no seed
    spread and 87 % when seeds dominate (82 % with 3 seeds); this one 93-98 % in every case.

    The interval is the 2.5 / 97.5 percentiles of T*, clipped to [-100, 100] points; the
    two-sided p-value of "no difference" is
        p = min(1, 2 (1 + min(#{T* <= 0}, #{T* >= 0})) / (1 + resamples))
    (Davison & Hinkley 1997, 4.4), so never below 2 / (1 + resamples).
    Returns diff_points (100 m), ci_points, p_value, n_seeds and n_test.
    """
    diff = _paired_difference(correct_b, correct_a)
    n_seeds, n_test = diff.shape
    grand, rows, cols, resid = two_way_split(diff)  # (), (S,), (N,), (S, N)
    k_seeds, k_images, k_resid = _resample_scales(diff)
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    chunk = max(1, CHUNK_ELEMENTS // (n_seeds + n_test))
    for start in range(0, resamples, chunk):  # chunks bound memory on large test sets
        size = min(chunk, resamples - start)
        seeds = rng.integers(0, n_seeds, size=(size, n_seeds))  # seeds first ...
        images = rng.integers(0, n_test, size=(size, n_test))  # ... then paired test images
        part = grand + k_seeds * rows[seeds].mean(axis=1) + k_images * cols[images].mean(axis=1)
        if k_resid:  # sum_si w_s v_i e_si from the draw counts w (size, S) and v (size, N)
            w, v = _counts(seeds, n_seeds), _counts(images, n_test)
            part += k_resid * ((w @ resid) * v).sum(axis=1) / (n_seeds * n_test)
        boot[start : start + size] = part
    tail = 100 * (1 - LEVEL) / 2
    # an accuracy difference lies in [-1, 1]; the widened seed part can reach past it
    low, high = np.clip(np.percentile(boot, [tail, 100 - tail]), -1.0, 1.0)
    # (1 + count) / (1 + resamples): a p-value is never 0, so Holm can scale it
    p = min(1.0, 2 * (1 + min(np.sum(boot <= 0), np.sum(boot >= 0))) / (1 + resamples))
    return {
        "diff_points": 100 * grand,
        "ci_points": [100 * float(low), 100 * float(high)],
        "p_value": float(p),
        "n_seeds": n_seeds,
        "n_test": n_test,
    }


def _resample_scales(diff: np.ndarray) -> tuple[float, float, float]:
    """(k_s, k_i, k_e) of `hierarchical_bootstrap` for a (S, N) difference array.

    The resampled terms have plug-in variances sum r_s^2 / S^2, sum c_i^2 / N^2 and
    sum e_si^2 / (S N)^2; the scales bring them to
        seeds:  f_s^2 V_seeds,   k_s = f_s sqrt(S / (S - 1))
        images: f_i^2 V_images,  k_i = f_i sqrt(V_images N^2 / sum_i c_i^2)
        interaction: max(0, f_e^2 MS_resid - f_s^2 MS_seeds) / (S N), a floor
    with f_s = t_stretch(S - 1), f_i = t_stretch(N - 1), f_e = t_stretch((S - 1)(N - 1)).
    The floor is zero unless the seeds agree more closely than the seed x image interaction
    alone allows (E[MS_seeds] = N sigma_a^2 + sigma_e^2 >= sigma_e^2, which MS_resid estimates
    on many df): two seeds that gain the same 2 of 40 images, but different ones, then still
    get an interval as wide as that interaction implies, not a point.
    """
    n_seeds, n_test = diff.shape
    ms = two_way_mean_squares(diff)
    _, v_images = variance_of_mean(ms, n_seeds, n_test)
    _, _, cols, resid = two_way_split(diff)
    f_seeds = t_stretch(n_seeds - 1) if n_seeds > 1 else 0.0
    k_seeds = f_seeds * math.sqrt(n_seeds / (n_seeds - 1)) if n_seeds > 1 else 0.0
    plug_in = float((cols**2).sum()) / n_test**2
    k_images = t_stretch(max(n_test - 1, 1)) * math.sqrt(v_images / plug_in) if plug_in else 0.0
    if n_seeds == 1 or n_test == 1:
        return k_seeds, k_images, 0.0
    f_resid = t_stretch((n_seeds - 1) * (n_test - 1))
    floor = max(0.0, f_resid**2 * ms["resid"] - f_seeds**2 * ms["seeds"]) / (n_seeds * n_test)
    plug_in = float((resid**2).sum()) / (n_seeds * n_test) ** 2
    return k_seeds, k_images, math.sqrt(floor / plug_in) if floor > 0 else 0.0


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """(R, n) how often each of n items was drawn in each row of the (R, k) index array."""
    offsets = draws + n * np.arange(len(draws))[:, None]
    return np.bincount(offsets.ravel(), minlength=n * len(draws)).reshape(len(draws), n)


def _paired_difference(correct_b: np.ndarray, correct_a: np.ndarray) -> np.ndarray:
    """D = b - a as floats, (S, N); both (S, N) arrays of 0/1 with S, N >= 1."""
    b, a = np.asarray(correct_b, dtype=float), np.asarray(correct_a, dtype=float)
    if b.ndim != 2 or b.shape != a.shape or 0 in b.shape:
        raise ValueError(f"need two equal (n_seeds, n_test) arrays, got {b.shape} and {a.shape}")
    return b - a


def paired_t_interval(diffs_per_seed: np.ndarray | list[float]) -> dict[str, Any]:
    """Paired t-interval over per-seed accuracy differences (any unit; the report uses points).

        mean d +- t_{0.975, n-1} sd(d) / sqrt(n),   p = 2 P(t_{n-1} > |mean d| / (sd(d)/sqrt(n)))

    It treats each seed's difference as one observation, so it covers seed-to-seed variance and
    each seed's own test-image noise but not which test images were drawn (the image effect
    sigma_b^2 / N shared by all seeds). Needs n >= 2; with zero spread it is [d, d].
    """
    d = np.asarray(diffs_per_seed, dtype=float)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"a paired t-interval needs >= 2 per-seed differences, got {d.shape}")
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
        return {"diff": mean, "ci": [mean, mean], "p_value": p, "n_seeds": len(d)}
    half = float(sps.t.ppf(1 - (1 - LEVEL) / 2, len(d) - 1)) * se
    p = float(2 * sps.t.sf(abs(mean) / se, len(d) - 1))
    return {"diff": mean, "ci": [mean - half, mean + half], "p_value": p, "n_seeds": len(d)}


def holm_adjust(p_values: list[float] | np.ndarray) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    With p_(1) <= ... <= p_(m) sorted: p~_(k) = max_{j <= k} min(1, (m - j + 1) p_(j)).
    Rejecting where p~ < alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)  # monotone in the sorted order
    return adjusted.tolist()


def images_only_bootstrap(
    correct_b: np.ndarray, correct_a: np.ndarray, *, resamples: int, seed: int
) -> dict[str, Any]:
    """The method the report used before: average D over the seeds, then resample test images.

    Its variance is about (sigma_b^2 + sigma_e^2 / S) / N: the seed effects sigma_a^2 / S never
    enter, so with seed-to-seed spread the interval is too narrow and claims effects that a new
    set of seeds would not reproduce. Kept only for the regression test that shows it.
    """
    per_image = _paired_difference(correct_b, correct_a).mean(axis=0)  # (N,)
    rng = np.random.default_rng(seed)
    n = len(per_image)
    idx = rng.integers(0, n, size=(resamples, n))
    low, high = np.percentile(per_image[idx].mean(axis=1) * 100, [2.5, 97.5])
    return {"diff_points": float(per_image.mean() * 100), "ci_points": [float(low), float(high)]}


# ---------------------------------------------------------------------------------------------
# what the report asks of them: one comparison, its verdict, Holm over all, the words


def paired_comparison(
    correct_b: np.ndarray, correct_a: np.ndarray, *, resamples: int, seed: int
) -> dict[str, Any]:
    """`hierarchical_bootstrap` of b - a with its method named (`ci_method`), its `verdict`,
    and from T_INTERVAL_MIN_SEEDS seeds a `t_interval` over the per-seed differences (points)."""
    comp: dict[str, Any] = {"ci_method": CI_METHOD}
    comp |= hierarchical_bootstrap(correct_b, correct_a, resamples=resamples, seed=seed)
    comp["verdict"] = verdict(comp["ci_points"])
    if comp["n_seeds"] >= T_INTERVAL_MIN_SEEDS:
        per_seed = 100 * (np.mean(correct_b, axis=1) - np.mean(correct_a, axis=1))
        t = paired_t_interval(per_seed)
        comp["t_interval"] = {"ci_points": t["ci"], "p_value": t["p_value"]}
    return comp


def verdict(ci_points: list[float]) -> str:
    """The verdict of an interval: "helped" above zero, "hurt" below it, else "no evidence"."""
    low, high = ci_points
    return "helped" if low > 0 else "hurt" if high < 0 else "no evidence"


def add_holm(comparisons: list[dict[str, Any]]) -> None:
    """Sets "p_holm" on every comparison dict with a "p_value": Holm over all of them."""
    tested = [c for c in comparisons if "p_value" in c]
    for comp, p in zip(tested, holm_adjust([c["p_value"] for c in tested]), strict=True):
        comp["p_holm"] = p


def mean_std(values: list[Any]) -> dict[str, Any]:
    """Mean and std (ddof=1; None for one value) of the finite values, with n."""
    arr = np.array([_as_float(v) for v in values])
    arr = arr[np.isfinite(arr)]
    if not len(arr):
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = float(arr.std(ddof=1)) if len(arr) >= 2 else None
    return {"mean": float(arr.mean()), "std": std, "n": len(arr), "values": arr.tolist()}


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def format_p(p: float) -> str:
    """A p-value in two significant digits; below 0.001 as "< 0.001"."""
    return f"{p:.2g}" if p >= 0.001 else "< 0.001"


def method_text(resamples: int, generator_per_seed: bool) -> str:
    """The report's plain words on what `paired_comparison` computes, what its interval covers
    and what it does not."""
    gan = (
        "each seed's own GAN draw (experiment.generator_per_seed)"
        if generator_per_seed
        else "not GAN-to-GAN variance: every seed shares one GAN and one synthetic set"
    )
    return (
        "Difference of mean test accuracy in points (b minus a), seeds paired by number and "
        f"test images paired; 95 % interval by {CI_METHOD} ({resamples} resamples). It covers "
        f"seed-to-seed variance (classifier initialisation and data order; {gan}) and the "
        "sampling of the test images. It does not cover variation of the data split itself, "
        "other datasets, or a test population different from the one the test split samples. "
        f"With {T_INTERVAL_MIN_SEEDS} seeds or more a paired t-interval over the per-seed "
        "differences is added as a cross-check; the verdict reads the bootstrap interval only."
    )


def multiplicity_text(n_comparisons: int) -> str:
    """One plain sentence on how many comparisons share the report and what Holm does."""
    n = n_comparisons
    if n <= 1:
        return f"This report makes {n} paired comparison(s): no multiplicity to adjust for."
    return (
        f"This report makes {n} paired comparisons; at 95 % each, about one in twenty "
        "intervals excludes zero by chance alone, so each also gives its Holm-adjusted "
        f"p-value (over all {n}), below 0.05 only where the claim survives the multiplicity."
    )
