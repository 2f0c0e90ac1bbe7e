"""Fidelity metrics (KID, FID, PRDC) and memorisation distances: exact values on tiny inputs."""

import itertools

import numpy as np
import pytest
import scipy.linalg

from ganaug.metrics import (
    fidelity_report,
    fidelity_summary,
    frechet_distance,
    kernel_inception_distance,
    memorisation_summary,
    mmd2_unbiased,
    nearest_pixel_neighbours,
    pairwise_distances,
    polynomial_kernel,
    prdc,
)


def gaussian(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d))


def test_fid_is_zero_on_itself_and_exact_for_a_mean_shift():
    x = gaussian()
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    # same covariance, mean moved by 0.5 in each of 8 dims: FID = 8 * 0.25 exactly
    assert frechet_distance(x, x + 0.5) == pytest.approx(2.0, rel=1e-9)
    assert frechet_distance(x, x + 1.0) > frechet_distance(x, x + 0.5)


@pytest.mark.parametrize(("n", "d"), [(300, 8), (6, 3)])
def test_fid_matches_the_sqrtm_formula(n, d):
    x, y = gaussian(n, d, seed=1), 0.7 * gaussian(n, d, seed=2) + 0.3
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_x @ s_y).real
    want = ((mu_x - mu_y) ** 2).sum() + np.trace(s_x + s_y - 2 * covmean)
    assert frechet_distance(x, y) == pytest.approx(want, rel=1e-6)


def direct_mmd2(x, y):
    """Unbiased MMD^2 as its three sums, kernel k(a, b) = (a . b / D + 1)^3, one pair at a time."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    pairs = [(i, j) for i, j in itertools.product(range(m), repeat=2) if i != j]
    xx = sum(k(x[i], x[j]) for i, j in pairs) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in pairs) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i, j in itertools.product(range(m), repeat=2)) / m**2
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_the_explicit_sums():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) + 1
    assert mmd2_unbiased(x, y) == pytest.approx(direct_mmd2(x, y), rel=1e-12)
    assert polynomial_kernel(x, y).shape == (5, 5)
    assert polynomial_kernel(x, y)[1, 2] == pytest.approx((x[1] @ y[2] / 3 + 1) ** 3)


def test_kid_on_whole_sets_is_the_direct_mmd2():
    # subsets as large as the sets are permutations of them, and MMD^2 ignores order: every
    # subset gives the direct value, so the mean is that value and the std is 0
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6, 4)), 0.5 * rng.normal(size=(6, 4)) + 0.3
    mean, std = kernel_inception_distance(x, y, subset_size=6, subsets=4, seed=0)
    assert mean == pytest.approx(direct_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_near_zero_on_itself_grows_with_shift_and_is_seeded():
    x = np.random.default_rng(0).normal(size=(200, 16))
    scale = 1.0  # a shift of one standard deviation
    same, _ = kernel_inception_distance(x, x, subset_size=50, subsets=20, seed=0)
    small, _ = kernel_inception_distance(x, x + scale, subset_size=50, subsets=20, seed=0)
    large, _ = kernel_inception_distance(x, x + 2 * scale, subset_size=50, subsets=20, seed=0)
    assert abs(same) < 0.05 * small
    assert large > small > 0
    again = kernel_inception_distance(x, x + scale, subset_size=50, subsets=20, seed=0)
    other = kernel_inception_distance(x, x + scale, subset_size=50, subsets=20, seed=1)
    assert again == (small, again[1]) and other[0] != small
    # the subset size is capped at the smaller set
    capped = kernel_inception_distance(x[:10], x, subset_size=50, subsets=3, seed=0)
    assert np.isfinite(capped[0])


def test_prdc_matches_hand_computed_values():
    # k = 1. Real radii: 1, 1, 1 and 6.403 (for (5, 5)); fake radii 0.224, 0.224, 16.69.
    real = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], dtype=float)
    fake = np.array([[0.2, 0.2], [0.3, 0.0], [12, 12]], dtype=float)
    got = prdc(real, fake, k=1)
    # precision: (12, 12) lies in no real ball; recall: only (0, 0) lies in no fake ball;
    # density: real balls hold 2 + 2 + 1 + 0 fakes, / (k * 3); coverage: (5, 5)'s ball is empty
    assert got == pytest.approx(
        {"precision": 2 / 3, "recall": 3 / 4, "density": 5 / 3, "coverage": 3 / 4}
    )
    assert prdc(real, real, k=1) == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
    )
    with pytest.raises(ValueError):
        prdc(real, fake[:1], k=1)


def brute_force_prdc(real, fake, k):
    """PRDC by loops over integer points, on squared distances (exact, so ties stay ties)."""

    def sq(a, b):
        return int(((a - b) ** 2).sum())

    def radius(points, i):  # squared distance to the k-th nearest other point
        return sorted(sq(points[i], q) for j, q in enumerate(points) if j != i)[k - 1]

    real_r = [radius(real, i) for i in range(len(real))]
    fake_r = [radius(fake, j) for j in range(len(fake))]
    in_real = [[sq(r, f) < real_r[i] for i, r in enumerate(real)] for f in fake]  # [fake][real]
    return {
        "precision": np.mean([any(row) for row in in_real]),
        "recall": np.mean([any(sq(r, f) < fake_r[j] for j, f in enumerate(fake)) for r in real]),
        "density": sum(map(sum, in_real)) / (k * len(fake)),
        "coverage": np.mean([any(row[i] for row in in_real) for i in range(len(real))]),
    }


@pytest.mark.parametrize(("seed", "k"), [(0, 1), (1, 2), (2, 3), (3, 2)])
def test_prdc_matches_a_brute_force_loop(seed, k):
    # small integer grid: many equal distances, duplicate points, points on a ball's edge
    rng = np.random.default_rng(seed)
    real, fake = rng.integers(0, 4, (8, 2)), rng.integers(0, 4, (7, 2))
    got = prdc(real.astype(float), fake.astype(float), k=k)
    assert got == pytest.approx(brute_force_prdc(real, fake, k), abs=1e-12)


def test_fidelity_summary_caps_k_and_reports_none_for_tiny_sets():
    x = gaussian(n=40, d=4)
    kw = {"kid_subset_size": 10, "kid_subsets": 3, "prdc_k": 5, "seed": 0}
    full = fidelity_summary(x, x + 0.1, **kw)
    assert full["n"] == 40 and full["prdc_k"] == 5 and full["fid"] > 0
    small = fidelity_summary(x, x[:3], **kw)
    assert small["prdc_k"] == 2 and small["precision"] is not None
    tiny = fidelity_summary(x, x[:1], **kw)
    assert tiny["n"] == 1 and tiny["fid"] is None and tiny["kid_mean"] is None
    labels = np.arange(40) % 2
    report = fidelity_report(x, labels, x, labels, ("a", "b"), **kw)
    assert set(report["per_class"]) == {"a", "b"}
    assert report["per_class"]["a"]["n"] == 20
    assert report["overall"]["fid"] == pytest.approx(0.0, abs=1e-8)


def test_pairwise_distances():
    a, b = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0]])
    assert pairwise_distances(a, b)[:, 0] == pytest.approx([0.0, 5.0])


def test_nearest_pixel_neighbours_finds_exact_copies_and_rms_difference():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (7, 6, 6, 3), dtype=np.uint8)
    fake = np.stack([real[4], rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)])
    dist, index = nearest_pixel_neighbours(fake, real, batch_size=1)
    assert dist[0] == 0.0 and index[0] == 4
    diff = real.astype(float) / 255 - fake[1].astype(float) / 255
    want = np.sqrt((diff**2).reshape(7, -1).mean(1))
    assert dist[1] == pytest.approx(want.min(), abs=1e-6) and index[1] == want.argmin()


def test_memorisation_summary_counts_within_threshold():
    got = memorisation_summary(np.array([0.0, 0.01, 0.5, 0.2]), 0.02)
    assert got["n"] == 4 and got["n_within"] == 2 and got["fraction_within"] == 0.5
    assert got["min_distance"] == 0.0 and got["median_distance"] == pytest.approx(0.105)
    assert memorisation_summary(np.array([]), 0.02)["fraction_within"] is None
