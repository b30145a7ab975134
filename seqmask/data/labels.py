"""Known anomaly labels (a CSV `id,label`, 1 = anomaly) and how well scores find them.

    AUROC   the probability that a random anomaly scores above a random normal sequence
            (ties count one half): the Mann-Whitney U statistic over n₁·n₀.
    AP      average precision, Σₖ (Rₖ - Rₖ₋₁) Pₖ over the distinct score thresholds from
            the highest down (scikit-learn's definition: no interpolation).
    precision, recall, F1 of the flags `detect` raised at its threshold.

A sequence with no score (NaN) ranks below every scored one.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError


def read_labels(path: str | Path, seqs: Sequences) -> np.ndarray:
    """(num_sequences,) int64 0/1: the label of each sequence of `seqs`, in its order.

    Every sequence needs exactly one label, and every id in the file must be one of
    `seqs`' ids: anything else is a DataError naming the file and line.
    """
    book = LabelFile.read(path)
    labels = book.lookup(seqs.ids)
    book.check_all_used(seqs.source)
    book.check_found(labels, seqs.ids)
    return labels


def read_rows(path: Path) -> list[list[str]]:
    """The rows of a labels CSV, or a DataError naming the file."""
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" export starts with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))
    except OSError as e:
        raise DataError(f"cannot read labels file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e.reason})") from e


class LabelFile:
    """A labels file read once, for data that comes part by part (streamed shards): each
    part's labels are looked up by id, and at the end every id of the file must have been
    one of the data's."""

    def __init__(self, path: Path, rows: dict[str, tuple[int, int]]) -> None:
        self.path = path
        self._rows = rows  # id -> (label, line)
        self._used: set[str] = set()

    @classmethod
    def read(cls, path: str | Path) -> LabelFile:
        path = Path(path)
        rows = read_rows(path)
        header = [c.strip() for c in rows[0]] if rows else []
        if header != ["id", "label"]:
            raise DataError(
                f"{path}, line 1: a labels file starts with the header 'id,label', got {','.join(header)!r}"
            )
        found: dict[str, tuple[int, int]] = {}
        for line, row in enumerate(rows[1:], start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2:
                raise DataError(f"{path}, line {line}: expected 2 fields (id,label), got {len(row)}")
            sid, value = row[0], row[1].strip()
            if value not in ("0", "1"):
                raise DataError(f"{path}, line {line}: label must be 0 (normal) or 1 (anomaly), got {value!r}")
            if sid in found:
                raise DataError(f"{path}, line {line}: id {sid!r} is labelled twice")
            found[sid] = (int(value), line)
        return cls(path, found)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """(n,) int64: the label of each id, -1 where the file has none."""
        labels = np.full(len(ids), -1, np.int64)
        for i, sid in enumerate(ids):
            hit = self._rows.get(str(sid))
            if hit is not None:
                labels[i] = hit[0]
                self._used.add(str(sid))
        return labels

    def check_found(self, labels: np.ndarray, ids: np.ndarray) -> None:
        """DataError for the first of `ids` that `lookup` found no label for."""
        missing = np.flatnonzero(labels < 0)
        if len(missing):
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            first = str(ids[missing[0]])
            raise DataError(f"{self.path}: has no label for sequence {first!r}{more}; every sequence needs one")

    def check_all_used(self, source: str) -> None:
        """DataError for the first id of the file (by line) that no `lookup` asked for."""
        unknown = sorted((line, sid) for sid, (_, line) in self._rows.items() if sid not in self._used)
        if unknown:
            line, sid = unknown[0]
            more = f" (and {len(unknown) - 1} more unknown ids)" if len(unknown) > 1 else ""
            raise DataError(f"{self.path}, line {line}: id {sid!r} is not a sequence of {source or 'the data'}{more}")


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
