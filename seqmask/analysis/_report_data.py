"""What the run report draws, gathered once (`ReportData`, `gather`): the model's pass over
the reported data, the run's metrics and history, the detector's detection of the data,
optional labels per sequence (`read_categories`), and the few sequences the report draws
whole (`_chosen`, `_predictions`). No drawing: that is `_report_figures` and
`_report_sections`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqmask.analysis.detect import Detection, Outputs, detect_outputs, load_detector, model_outputs
from seqmask.data import Normalizer, Sequences, length_mask_np
from seqmask.data.batching import padded_batch
from seqmask.data.inputs import Data
from seqmask.data.labels import read_rows
from seqmask.errors import DataError, RunError
from seqmask.model.losses import step_weights, targets_and_mask
from seqmask.run.directory import METRICS
from seqmask.run.loaded import LoadedRun, run_data
from seqmask.run.splits import apply_transform, raw_splits


@dataclass(frozen=True)
class ReportData:
    run: LoadedRun
    source: str  # which data, in words
    outputs: Outputs  # the model's pass over it (evaluate's numbers)
    train_lengths: np.ndarray
    metrics: dict[str, Any] | None
    history: list[dict[str, str]]
    categories: np.ndarray | None  # --labels: one label per sequence
    detection: Detection | None
    detector_note: str
    score: str  # the detector's score ("" without one)

    @property
    def seqs(self) -> Sequences:
        return self.outputs.seqs

    @property
    def errors(self) -> np.ndarray:
        return self.outputs.scores.per_sequence


def gather(run: LoadedRun, data: Data = None, labels: str | Path | None = None) -> ReportData:
    """Everything the report draws, computed once."""
    train, validation = raw_splits(run.cfg, run.run_dir)
    if data is not None:
        seqs = run_data(run, data)
        source = seqs.source  # the file, or "the list of sequences" for in-memory data (inputs.py)
    elif len(validation):  # the splits just read, not read again
        seqs, source = apply_transform(run.transform, validation), "the run's validation data"
    else:  # nothing held out: the training data is all there is to look at
        seqs, source = apply_transform(run.transform, train), "the training data (the run has no validation data)"
    outputs = model_outputs(run, seqs)
    metrics = run.run_dir.read_json(METRICS) if run.run_dir.file(METRICS).is_file() else None
    history = run.run_dir.read_history()
    categories = read_categories(labels, seqs) if labels is not None else None
    detection, note = None, ""
    try:
        detector = load_detector(run.run_dir, run.checkpoint)
    except RunError as e:
        detector, note = None, str(e)
    if detector is not None:
        detection = detect_outputs(detector, outputs)
    elif not note:
        command = f"seqmask calibrate {run.run_dir}"
        if run.checkpoint != "best":
            command += f" --checkpoint {run.checkpoint}"
        if not len(validation):
            command += " --data FILE"
        note = f"the run has no anomaly detector for its {run.checkpoint} checkpoint yet: '{command}' fits one"
    score = detector.score if detector is not None else ""
    return ReportData(run, source, outputs, train.lengths, metrics, history, categories, detection, note, score)


def read_categories(path: str | Path, seqs: Sequences) -> np.ndarray:
    """A CSV whose first column is `id` and second any label (a class, a family, 0/1): one
    label per sequence of `seqs` ("" for a sequence the file does not name). The file may
    label more sequences than `seqs` holds (a labels file for a whole dataset, a report on
    its validation split), but it must label some of them."""
    path = Path(path)
    rows = read_rows(path)
    if not rows or len(rows[0]) < 2 or rows[0][0].strip() != "id":
        raise DataError(f"{path}, line 1: a labels file starts with a header 'id,<label column>'")
    position = {str(sid): i for i, sid in enumerate(seqs.ids)}
    out = np.full(len(seqs), "", dtype=object)
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            raise DataError(f"{path}, line {line}: expected id,label, got {len(row)} field(s)")
        if row[0] in position:
            out[position[row[0]]] = row[1].strip()
    if len(seqs) and not (out != "").any():
        raise DataError(
            f"{path}: labels none of the {len(seqs):,} sequences of {seqs.source or 'the data'} (no id matches)"
        )
    return out


def _predictions(d: ReportData, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, predictions, scored) of sequence i over its real steps, in input units."""
    run, seqs = d.run, d.seqs
    import tensorflow as tf

    values, lengths = padded_batch(seqs, np.array([i]), "bucket", None, run.cfg.data.padding)
    predictions = run.model([tf.constant(values), tf.constant(lengths)], training=False)
    labels, has_target = targets_and_mask(values, lengths, run.cfg.train.target, run.cfg.data.padding)
    weights = step_weights(has_target, run.cfg.train.loss)  # last_step: one scored step
    real = length_mask_np(lengths, values.shape[1], run.cfg.data.padding)[0]
    y = np.asarray(labels)[0][real]  # (length, features)
    p = np.asarray(predictions)[0][real]  # (length, features | vocab)
    scored = np.asarray(weights)[0][real] > 0  # (length,)
    if isinstance(run.transform, Normalizer):  # back to the data's own units
        y = y * run.transform.std + run.transform.mean
        p = p * run.transform.std + run.transform.mean
    return y, p, scored


def _chosen(errors: np.ndarray) -> list[tuple[str, int]]:
    ok = np.flatnonzero(np.isfinite(errors))
    if not len(ok):
        return []
    order = ok[np.argsort(errors[ok], kind="stable")]
    picks = [("best", int(order[0])), ("median", int(order[len(order) // 2])), ("worst", int(order[-1]))]
    return picks
