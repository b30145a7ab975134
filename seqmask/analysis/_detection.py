"""What detection produces: each sequence's score, threshold and flag, its steps' scores and
anomalous intervals (`Detection`, from `detect_outputs`), and what `detect` reports of data
detected whole or part by part (`DetectionTotals`, `summary`). numpy only; `detect`
re-exports every name, and runs the model that the outputs come from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from seqmask.analysis.detector import Detector
from seqmask.analysis.metrics import label_metrics
from seqmask.analysis.scores import Outputs, intervals
from seqmask.data import Sequences
from seqmask.data.labels import LabelFile


@dataclass(frozen=True)
class Detection:
    outputs: Outputs
    scores: np.ndarray  # (num_sequences,)
    thresholds: np.ndarray  # (num_sequences,)
    flags: np.ndarray  # (num_sequences,) bool: score > threshold
    step_scores: np.ndarray  # (num_steps,)
    step_threshold: float
    worst: np.ndarray  # (num_sequences, 2) int64: first and last step of the worst interval, -1 if none
    step_interval: np.ndarray  # (num_steps,) int64: interval number within its sequence (1, 2, ...), 0 if none
    how: str
    detector: Detector | None = None  # what scored them
    calibrated_now: bool = False  # the run had no detector for this checkpoint: it was fitted first
    metrics: dict[str, Any] | None = None  # with known labels: AUROC, AP, precision, recall, F1

    @property
    def seqs(self) -> Sequences:
        return self.outputs.seqs

    @property
    def ids(self) -> np.ndarray:
        """(num_sequences,) str, in input order."""
        return self.outputs.seqs.ids

    def with_context(self, detector: Detector, calibrated_now: bool, metrics: dict[str, Any] | None) -> Detection:
        return replace(self, detector=detector, calibrated_now=calibrated_now, metrics=metrics)


def detect_outputs(detector: Detector, out: Outputs, threshold: float | None = None) -> Detection:
    steps = detector.step_scores(out)
    scores = detector.sequence_scores(out, steps)
    if threshold is None:
        thresholds, how = detector.thresholds(out.seqs.lengths), detector.how
    else:
        thresholds, how = np.full(len(scores), float(threshold)), f"--threshold {threshold:g}"
    flags = np.nan_to_num(scores, nan=-np.inf) > thresholds
    worst, step_interval = intervals(steps, out.seqs.offsets, detector.step_threshold)
    return Detection(out, scores, thresholds, flags, steps, detector.step_threshold, worst, step_interval, how)


@dataclass
class DetectionTotals:
    """What `detect` reports of data detected whole or part by part. With a labels file,
    each part's labels are looked up by id and its scores and flags kept (10 bytes a
    sequence), for AUROC and average precision over all of them."""

    labels: LabelFile | None = None
    sequences: int = 0
    flagged: int = 0
    low: float = math.inf  # the lowest and highest threshold applied
    high: float = -math.inf
    flagged_steps: int = 0
    how: str = ""
    step_threshold: float = math.nan
    _scores: list[np.ndarray] = field(default_factory=list, repr=False)
    _flags: list[np.ndarray] = field(default_factory=list, repr=False)
    _known: list[np.ndarray] = field(default_factory=list, repr=False)

    def add(self, d: Detection) -> Detection:
        self.sequences += len(d.scores)
        self.flagged += int(d.flags.sum())
        if len(d.thresholds):
            self.low, self.high = min(self.low, float(d.thresholds.min())), max(self.high, float(d.thresholds.max()))
        self.flagged_steps += int((d.step_interval > 0).sum())
        self.how, self.step_threshold = d.how, d.step_threshold
        if self.labels is not None:
            known = self.labels.lookup(d.ids)
            self.labels.check_found(known, d.ids)
            self._known.append(known.astype(np.int8))
            self._scores.append(d.scores.astype(np.float64))
            self._flags.append(d.flags)
        return d

    def metrics(self, source: str) -> dict[str, Any] | None:
        """AUROC, AP, precision, recall, F1 against the labels file (None without one);
        DataError for an id of the file that was not among the data's."""
        if self.labels is None:
            return None
        self.labels.check_all_used(source)
        known, scores, flags = (np.concatenate(x) for x in (self._known, self._scores, self._flags))
        return label_metrics(known.astype(np.int64), scores, flags)


def summary(totals: DetectionTotals, detector: Detector, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the summary file next to `detect --output` holds."""
    return {
        "sequences": totals.sequences,
        "flagged": totals.flagged,
        "score": detector.score,
        "settings": asdict(detector.settings),
        "threshold": totals.how,
        "thresholds": {"min": totals.low, "max": totals.high} if totals.sequences else None,
        "step_threshold": totals.step_threshold,
        "flagged_steps": totals.flagged_steps,
        "labels": metrics,
    }
