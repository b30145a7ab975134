"""seqmask.analysis.metrics: AUROC, average precision and precision/recall/F1 against hand
counts (scikit-learn is not a test dependency)."""

import itertools
import math

import numpy as np
import pytest

from seqmask.analysis.metrics import auroc, average_precision, label_metrics


def auroc_by_pairs(labels: np.ndarray, scores: np.ndarray) -> float:
    """Every (anomaly, normal) pair: 1 if the anomaly scores higher, 1/2 for a tie; NaN lowest."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    pairs = [(p, n) for p, n in itertools.product(s[labels == 1], s[labels == 0])]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_auroc_by_hand() -> None:
    # Anomalies 0.35 and 0.8 against normals 0.1 and 0.4: 3 of 4 pairs are ordered right.
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    # A tie counts one half: 0.5 v 0.5 (½), 0.5 v 0.2, 0.9 v both: 3.5 / 4.
    assert auroc(np.array([1, 0, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])) == 0.875
    assert auroc(np.array([1, 1, 0, 0]), np.array([3.0, 3.0, 3.0, 3.0])) == 0.5  # all tied
    assert auroc(np.array([0, 1]), np.array([2.0, 1.0])) == 0.0


def test_auroc_ranks_nan_scores_lowest() -> None:
    assert auroc(np.array([1, 0]), np.array([np.nan, 0.1])) == 0.0
    assert auroc(np.array([0, 1]), np.array([np.nan, -5.0])) == 1.0
    assert auroc(np.array([0, 1]), np.array([np.nan, np.nan])) == 0.5


def test_auroc_needs_both_classes() -> None:
    assert math.isnan(auroc(np.array([1, 1]), np.array([0.1, 0.2])))
    assert math.isnan(auroc(np.array([0, 0]), np.array([0.1, 0.2])))


def test_auroc_matches_counting_pairs_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 30))
        labels = rng.integers(0, 2, n)
        if labels.min() == labels.max():
            continue
        scores = rng.integers(0, 5, n).astype(float)
        scores[rng.random(n) < 0.1] = np.nan
        assert math.isclose(auroc(labels, scores), auroc_by_pairs(labels, scores), rel_tol=1e-12)


# --------------------------------------------------------------------------- average_precision


def ap_by_thresholds(labels: np.ndarray, scores: np.ndarray) -> float:
    """Σ (R_k - R_{k-1}) P_k over the distinct thresholds, from the highest down (NaN lowest)."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    total, previous_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        flagged = s >= t
        tp = int((flagged & (labels == 1)).sum())
        precision, recall = tp / int(flagged.sum()), tp / int((labels == 1).sum())
        total += (recall - previous_recall) * precision
        previous_recall = recall
    return total


def test_average_precision_by_hand() -> None:
    # 0.9 (+): P 1, R ½; 0.8 (-): R stays; 0.7 (+): P ⅔, R 1: ½·1 + ½·⅔.
    assert math.isclose(average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6])), 5 / 6)
    # Tied 0.5s are one threshold: P ½, R ½; then 0.1: P ⅔, R 1: ¼ + ⅓.
    assert math.isclose(average_precision(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.1])), 7 / 12)
    assert average_precision(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1])) == 1.0
    # NaN ranks lowest: the anomaly with no score is found last.
    assert math.isclose(average_precision(np.array([1, 0, 1]), np.array([np.nan, 0.2, 0.9])), 0.5 + 0.5 * 2 / 3)
    assert math.isnan(average_precision(np.array([0, 0]), np.array([0.1, 0.2])))


def test_average_precision_matches_the_threshold_sum() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        labels = rng.integers(0, 2, n)
        if not labels.any():
            continue
        scores = rng.integers(0, 6, n).astype(float)
        scores[rng.random(n) < 0.1] = np.nan
        assert math.isclose(average_precision(labels, scores), ap_by_thresholds(labels, scores), rel_tol=1e-12)


def test_auroc_and_average_precision_equal_scikit_learns() -> None:
    """bench/detect.py reports these two; scikit-learn (a bench extra) is the reference."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        labels = rng.integers(0, 2, n)
        if labels.min() == labels.max():
            continue
        scores = rng.integers(0, 8, n).astype(float)  # many ties
        assert math.isclose(auroc(labels, scores), sklearn_metrics.roc_auc_score(labels, scores), rel_tol=1e-12)
        assert math.isclose(
            average_precision(labels, scores), sklearn_metrics.average_precision_score(labels, scores), rel_tol=1e-12
        )


# --------------------------------------------------------------------------- label_metrics


def test_label_metrics_by_hand() -> None:
    labels = np.array([1, 1, 0, 0, 1, 0])
    flags = np.array([True, False, True, False, True, False])
    scores = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.3])
    m = label_metrics(labels, scores, flags)
    assert (m["true_positives"], m["false_positives"], m["false_negatives"]) == (2, 1, 1)
    assert (m["anomalies"], m["normal"]) == (3, 3)
    assert math.isclose(m["precision"], 2 / 3) and math.isclose(m["recall"], 2 / 3) and math.isclose(m["f1"], 2 / 3)
    assert m["auroc"] == auroc(labels, scores) and m["average_precision"] == average_precision(labels, scores)


def test_label_metrics_with_nothing_flagged_or_nothing_to_find() -> None:
    m = label_metrics(np.array([1, 0, 0]), np.array([0.1, 0.2, 0.3]), np.zeros(3, bool))
    assert math.isnan(m["precision"]) and m["recall"] == 0.0 and m["f1"] == 0.0
    m = label_metrics(np.array([0, 0]), np.array([0.1, 0.2]), np.array([True, False]))
    assert m["precision"] == 0.0 and math.isnan(m["recall"]) and m["f1"] == 0.0 and math.isnan(m["auroc"])
    m = label_metrics(np.array([0, 0]), np.array([0.1, 0.2]), np.zeros(2, bool))
    assert math.isnan(m["precision"]) and math.isnan(m["recall"]) and math.isnan(m["f1"])
