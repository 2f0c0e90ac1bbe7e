"""Classification metrics: values worked out by hand on small arrays, edge cases included, and
no warning from scikit-learn reaching the caller."""

import contextlib
import itertools
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from ganaug.metrics import (
    accuracy,
    auc_medmnist,
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    quadratic_weighted_kappa,
)


@contextlib.contextmanager
def no_warnings():
    """Default filters replaced by "always", so a warning shown once elsewhere still counts."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught] == []


def label_metrics(y_true, y_pred, k):
    """Every metric that takes predicted labels, in one dict, computed without warnings."""
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    with no_warnings():
        got = {
            "confusion": confusion_matrix(y_true, y_pred, k).tolist(),
            "accuracy": accuracy(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy(y_true, y_pred, k),
            "macro_f1": macro_f1(y_true, y_pred, k),
            "qwk": quadratic_weighted_kappa(y_true, y_pred, k),
        }
    assert all(type(v) is float for name, v in got.items() if name != "confusion")
    return got


# Each case: y_true, y_pred, K, then the values by hand. F1_c = 2 tp / (2 tp + fp + fn);
# kappa = 1 - sum(W * O) / sum(W * E) with W = (i - j)^2, E = outer(row sums, col sums) / N.
HAND_CASES = {
    "all classes present": (
        [0, 0, 1, 1, 2, 2],
        [0, 1, 1, 1, 2, 0],
        3,
        {
            "confusion": [[1, 1, 0], [0, 2, 0], [1, 0, 1]],
            "accuracy": 4 / 6,
            "balanced_accuracy": (1 / 2 + 1 + 1 / 2) / 3,
            "macro_f1": (2 / 4 + 4 / 5 + 2 / 3) / 3,
            # sum W*O = 1 + 4 = 5; E rows all (2/3, 1, 1/3): sum W*E = 7/3 + 1 + 11/3 = 7
            "qwk": 1 - 5 / 7,
        },
    ),
    # class 2 predicted but absent from y_true, class 1 never predicted: balanced accuracy
    # averages the recalls of classes 0 and 1 only; class 1 and 2 have F1 = 0
    "class absent from truth, class never predicted": (
        [0, 0, 0, 1],
        [0, 0, 2, 2],
        3,
        {
            "confusion": [[2, 0, 1], [0, 0, 1], [0, 0, 0]],
            "accuracy": 2 / 4,
            "balanced_accuracy": (2 / 3 + 0) / 2,
            "macro_f1": (4 / 5 + 0 + 0) / 3,
            # sum W*O = 4 + 1 = 5; E = [[1.5, 0, 1.5], [0.5, 0, 0.5], 0]: sum W*E = 6 + 1 = 7
            "qwk": 1 - 5 / 7,
        },
    ),
    # one true class: balanced accuracy is its recall; kappa is 0 (E = O off the true row)
    "single class in truth": (
        [1, 1, 1, 1],
        [1, 1, 0, 2],
        3,
        {
            "confusion": [[0, 0, 0], [1, 2, 1], [0, 0, 0]],
            "accuracy": 2 / 4,
            "balanced_accuracy": 2 / 4,
            "macro_f1": (0 + 4 / 6 + 0) / 3,
            "qwk": 0.0,
        },
    ),
    # one class on both sides: kappa is 0 / 0, reported as 0.0
    "single class everywhere": (
        [2, 2, 2],
        [2, 2, 2],
        3,
        {
            "confusion": [[0, 0, 0], [0, 0, 0], [0, 0, 3]],
            "accuracy": 1.0,
            "balanced_accuracy": 1.0,
            "macro_f1": 1.0,
            "qwk": 0.0,
        },
    ),
}


@pytest.mark.parametrize("case", HAND_CASES)
def test_label_metrics_match_hand_values(case):
    y_true, y_pred, k, want = HAND_CASES[case]
    got = label_metrics(y_true, y_pred, k)
    assert got.pop("confusion") == want["confusion"]
    assert got == pytest.approx({name: v for name, v in want.items() if name != "confusion"})


def test_qwk_weights_are_grade_distances_even_for_unused_grades():
    # grade 2 of 0..3 never occurs, so 0 -> 3 costs (0 - 3)^2 = 9 (not 2^2 as 3's rank in the
    # grades seen). O has ones at (0, 1), (1, 1), (3, 3); rows (1, 1, 0, 1), cols (0, 2, 0, 1),
    # E = outer / 3. sum W*O = 1; sum W*E = (1 * 2 + 9 * 1 + 4 * 1 + 4 * 2) / 3 = 23 / 3
    assert label_metrics([0, 1, 3], [1, 1, 3], 4)["qwk"] == pytest.approx(1 - 3 / 23)
    assert label_metrics([0, 1, 2], [0, 1, 2], 3)["qwk"] == pytest.approx(1.0)


def auc_of(y_true, prob):
    with no_warnings():
        got = auc_medmnist(np.array(y_true), np.array(prob))
    assert type(got) is float
    return got


def test_auc_three_class_toy_by_hand():
    y_true = [0, 1, 2, 0]
    prob = [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]
    # class 0: positives {0.6, 0.3} vs negatives {0.5, 0.2}: 3 of 4 pairs ordered -> 0.75
    # class 1: positive 0.4 vs {0.3, 0.2, 0.4}: 2 wins + 1 tie (half) -> 2.5 / 3
    # class 2: positive 0.6 vs {0.1, 0.1, 0.3}: 3 of 3 -> 1.0
    assert auc_of(y_true, prob) == pytest.approx((0.75 + 2.5 / 3 + 1.0) / 3)


def test_auc_binary_uses_positive_class_score_and_ties_count_half():
    y_true = [0, 0, 1, 1]
    prob = [[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8]]
    # pairs (pos, neg): 0.4 vs 0.1 win, 0.4 vs 0.4 tie, 0.8 wins twice -> 3.5 / 4
    assert auc_of(y_true, prob) == pytest.approx(0.875)
    # only column 1 counts: a column 0 that is not 1 - p1 changes nothing
    assert auc_of(y_true, [[0.0, 0.1], [0.0, 0.4], [0.9, 0.4], [0.0, 0.8]]) == pytest.approx(0.875)


def test_auc_skips_classes_absent_from_truth():
    y_true = [0, 0, 1, 1]
    # class 0: {0.8, 0.7} vs {0.2, 0.4} -> 1.0; class 1: {0.7, 0.5} vs {0.1, 0.6} -> 3 / 4;
    # class 2 has no positives and is left out of the mean, not counted as 0 or 0.5
    prob = [[0.8, 0.1, 0.1], [0.7, 0.6, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]]
    assert auc_of(y_true, prob) == pytest.approx((1.0 + 0.75) / 2)


def test_auc_is_nan_when_no_class_has_both_positives_and_negatives():
    assert np.isnan(auc_of([1, 1, 1], [[0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2]]))
    assert np.isnan(auc_of([0, 0], [[0.7, 0.3], [0.4, 0.6]]))


def pair_count_auc(is_positive, score):
    """Mann-Whitney by brute force: share of (positive, negative) pairs ranked right."""
    pos, neg = score[is_positive], score[~is_positive]
    wins = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
    return float(np.mean(wins))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cases_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k = 40, 4
    y_true = np.r_[np.arange(k), rng.integers(0, k, n - k)]  # every class present
    prob = rng.dirichlet(np.ones(k), n).round(2)  # rounding makes ties
    y_pred = prob.argmax(axis=1)
    got = label_metrics(y_true, y_pred, k)
    counts = np.zeros((k, k), int)
    for t, p in zip(y_true, y_pred, strict=True):
        counts[t, p] += 1
    assert got["confusion"] == counts.tolist()
    assert got["accuracy"] == pytest.approx(np.trace(counts) / n)
    assert got["balanced_accuracy"] == pytest.approx(np.mean(np.diag(counts) / counts.sum(1)))
    want_auc = np.mean([pair_count_auc(y_true == c, prob[:, c]) for c in range(k)])
    assert auc_of(y_true, prob) == pytest.approx(want_auc)
    # with every class present, MedMNIST's mean of one-vs-rest AUCs is sklearn's macro "ovr"
    prob = prob / prob.sum(axis=1, keepdims=True)
    ovr = skm.roc_auc_score(y_true, prob, multi_class="ovr", average="macro")
    assert auc_of(y_true, prob) == pytest.approx(ovr)


def test_classification_metrics_block():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    prob = np.array(
        [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
        + [[0.5, 0.1, 0.4]]
    )  # argmax = (0, 1, 1, 1, 2, 0): the "all classes present" case above
    with no_warnings():
        block = classification_metrics(y_true, prob)
    assert set(block) == {"accuracy", "auc", "balanced_accuracy", "macro_f1", "qwk", "confusion"}
    want = dict(HAND_CASES["all classes present"][3])
    assert block["confusion"] == want.pop("confusion")
    assert {k: v for k, v in block.items() if k in want} == pytest.approx(want)
    assert all(type(v) is int for row in block["confusion"] for v in row)  # JSON-ready
    # class 0: {0.7, 0.3} vs {0.1, 0.2, 0.1, 0.5} -> 7 / 8; class 1: {0.8, 0.5} vs
    # {0.2, 0.6, 0.1, 0.1} -> 7 / 8; class 2: {0.8, 0.4} vs {0.1, 0.1, 0.1, 0.3} -> 1
    assert block["auc"] == pytest.approx((7 / 8 + 7 / 8 + 1) / 3)
    perfect = classification_metrics(y_true, np.eye(3)[y_true])
    assert perfect["accuracy"] == perfect["auc"] == perfect["qwk"] == perfect["macro_f1"] == 1.0


def test_classification_metrics_on_a_degenerate_split_is_quiet():
    # a tiny split holding one class, the model predicting another: every value defined or NaN
    with no_warnings():
        block = classification_metrics(np.array([1, 1]), np.array([[0.6, 0.3, 0.1]] * 2))
    assert block["accuracy"] == block["balanced_accuracy"] == block["macro_f1"] == 0.0
    assert block["qwk"] == 0.0 and np.isnan(block["auc"])
    assert block["confusion"] == [[0, 0, 0], [2, 0, 0], [0, 0, 0]]
