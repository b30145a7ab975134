"""How well anomaly scores find the known anomalies (labels read by :mod:`seqmask.data.labels`).

    AUROC   the probability that a random anomaly scores above a random normal sequence
            (ties count one half): the Mann-Whitney U statistic over n₁·n₀.
    AP      average precision, Σₖ (Rₖ - Rₖ₋₁) Pₖ over the distinct score thresholds from
            the highest down (scikit-learn's definition: no interpolation).
    precision, recall, F1 of the flags `detect` raised at its threshold.

A sequence with no score (NaN) ranks below every scored one.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUROC with average ranks for ties; NaN unless both classes occur."""
    s = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    if not positives or not negatives:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[labels == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Group boundaries of equal values; each group gets the mean of its positions.
    new_group = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + 1 + ends) / 2.0  # mean of starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = mean_rank[group]
    return ranks


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    s = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
    positives = int((labels == 1).sum())
    if not positives:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], labels[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]  # a threshold between distinct scores
    tp = np.cumsum(y == 1)[last_of_group]
    flagged = (np.arange(len(s)) + 1)[last_of_group]
    precision, recall = tp / flagged, tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def label_metrics(labels: np.ndarray, scores: np.ndarray, flags: np.ndarray) -> dict[str, Any]:
    tp = int((flags & (labels == 1)).sum())
    fp = int((flags & (labels == 0)).sum())
    fn = int((~flags & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "anomalies": int((labels == 1).sum()),
        "normal": int((labels == 0).sum()),
        "auroc": auroc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }
