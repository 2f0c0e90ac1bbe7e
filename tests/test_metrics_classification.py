"""Classification metrics: hand-computed toys and agreement with scikit-learn."""

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


def _random_case(seed: int, n: int = 60, k: int = 5):
    rng = np.random.default_rng(seed)
    y_true = np.r_[np.arange(k), rng.integers(0, k, n - k)]  # every class present
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y_true] * rng.random((n, 1))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, prob, prob.argmax(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed):
    y_true, prob, y_pred = _random_case(seed)
    k = prob.shape[1]
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert balanced_accuracy(y_true, y_pred, k) == pytest.approx(
        skm.balanced_accuracy_score(y_true, y_pred)
    )
    assert macro_f1(y_true, y_pred, k) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert quadratic_weighted_kappa(y_true, y_pred, k) == pytest.approx(
        skm.cohen_kappa_score(y_true, y_pred, weights="quadratic")
    )
    assert np.array_equal(
        confusion_matrix(y_true, y_pred, k), skm.confusion_matrix(y_true, y_pred, labels=range(k))
    )
    ovr = np.mean([skm.roc_auc_score(y_true == c, prob[:, c]) for c in range(k)])
    assert auc_medmnist(y_true, prob) == pytest.approx(ovr)
    assert auc_medmnist(y_true, prob) == pytest.approx(
        skm.roc_auc_score(y_true, prob, multi_class="ovr", average="macro")
    )


def test_auc_three_class_toy_by_hand():
    y_true = np.array([0, 1, 2, 0])
    prob = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    # class 0: positives {0.6, 0.3} vs negatives {0.5, 0.2}: 3 of 4 pairs ordered -> 0.75
    # class 1: positive 0.4 vs {0.3, 0.2, 0.4}: 2 wins + 1 tie (half) -> 2.5 / 3
    # class 2: positive 0.6 vs {0.1, 0.1, 0.3}: 3 of 3 -> 1.0
    assert auc_medmnist(y_true, prob) == pytest.approx((0.75 + 2.5 / 3 + 1.0) / 3)


def test_auc_binary_uses_positive_class_score_and_ties_count_half():
    y_true = np.array([0, 0, 1, 1])
    prob = np.array([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8]])
    # pairs (pos, neg): 0.4 vs 0.1 win, 0.4 vs 0.4 tie, 0.8 wins twice -> 3.5 / 4
    assert auc_medmnist(y_true, prob) == pytest.approx(0.875)


def test_auc_skips_classes_absent_from_truth():
    y_true = np.array([0, 0, 1, 1])
    prob = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    assert auc_medmnist(y_true, prob) == pytest.approx(1.0)  # class 2 has no positives


def test_qwk_toy_by_hand():
    y_true = np.array([0, 1, 2])
    y_pred = np.array([0, 2, 2])
    # O = [[1,0,0],[0,0,1],[0,0,1]], row sums (1,1,1), column sums (1,0,2), E = outer / 3.
    # sum W*O = (1-2)^2 = 1; sum W*E = (0 + 4*2 + 1*1 + 1*2 + 4*1 + 0) / 3 = 5 (weights (i-j)^2)
    assert quadratic_weighted_kappa(y_true, y_pred, 3) == pytest.approx(1 - 1 / 5)
    assert quadratic_weighted_kappa(y_true, y_true, 3) == pytest.approx(1.0)


def test_classification_metrics_block():
    y_true, prob, y_pred = _random_case(3, n=40)
    block = classification_metrics(y_true, prob)
    assert set(block) == {"accuracy", "auc", "balanced_accuracy", "macro_f1", "qwk", "confusion"}
    cm = np.array(block["confusion"])
    assert cm.shape == (5, 5) and cm.sum() == 40
    assert cm.sum(axis=1).tolist() == np.bincount(y_true, minlength=5).tolist()
    assert block["accuracy"] == pytest.approx(np.trace(cm) / 40)
    perfect = classification_metrics(y_true, np.eye(5)[y_true])
    assert perfect["accuracy"] == perfect["auc"] == perfect["qwk"] == perfect["macro_f1"] == 1.0
