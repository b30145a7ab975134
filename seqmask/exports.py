"""Files evaluate, encode and detect write for the user, keyed by sequence id so they join back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqmask.atomic import atomic_path, write_csv
from seqmask.data import Sequences
from seqmask.scoring import Scores

if TYPE_CHECKING:  # detect imports TensorFlow; these writers do not need it
    from seqmask.detect import Detection


def write_errors_csv(path: str | Path, seqs: Sequences, scores: Scores, tokens: bool = False) -> None:
    """id, length, scored_steps, error (and, for tokens, accuracy): one row per sequence,
    in input order. For tokens the error is the sequence's mean cross-entropy."""
    header = ["id", "length", "scored_steps", "error"] + (["accuracy"] if tokens else [])
    rows = zip(seqs.ids, seqs.lengths, scores.counts, scores.per_sequence, scores.per_sequence_accuracy, strict=True)
    write_csv(
        path,
        header,
        (
            [str(sid), int(length), int(count), f"{error:.9g}"] + ([f"{accuracy:.9g}"] if tokens else [])
            for sid, length, count, error, accuracy in rows
        ),
    )


def write_latent(path: str | Path, seqs: Sequences, latent: np.ndarray) -> None:
    """`.csv`: id, length, z0..z{d-1}. `.npy`: a structured array (id, length, latent),
    loadable with allow_pickle=False."""
    path = str(path)
    if path.endswith(".csv"):
        header = ["id", "length"] + [f"z{i}" for i in range(latent.shape[1])]
        rows = (
            [str(sid), int(length)] + [f"{v:.9g}" for v in row]
            for sid, length, row in zip(seqs.ids, seqs.lengths, latent, strict=True)
        )
        write_csv(path, header, rows)
        return
    width = max(1, max((len(str(i)) for i in seqs.ids), default=1))
    records = np.zeros(len(seqs), dtype=[("id", f"U{width}"), ("length", "i8"), ("latent", "f4", (latent.shape[1],))])
    records["id"], records["length"], records["latent"] = seqs.ids, seqs.lengths, latent
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, records, allow_pickle=False)


# --------------------------------------------------------------------------- detect

DETECTION_COLUMNS = ("id", "length", "score", "threshold", "anomaly", "interval_start", "interval_end")


def _number(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def detection_columns(detection: Detection) -> dict[str, list[Any]]:
    """`detect --output`: one row per sequence, in input order. interval_start/end: the
    first and last step (0-based, inclusive) of the worst anomalous interval, or empty."""
    worst = detection.worst
    has = worst[:, 0] >= 0
    return {
        "id": [str(i) for i in detection.seqs.ids],
        "length": [int(n) for n in detection.seqs.lengths],
        "score": [_number(s) for s in detection.scores],
        "threshold": [_number(t) for t in detection.thresholds],
        "anomaly": [int(f) for f in detection.flags],
        "interval_start": [int(a) if h else None for a, h in zip(worst[:, 0], has, strict=True)],
        "interval_end": [int(b) if h else None for b, h in zip(worst[:, 1], has, strict=True)],
    }


def step_columns(detection: Detection) -> dict[str, list[Any]]:
    """`detect --steps`: one row per real step: id, step (0-based within the sequence),
    score, one error column per feature (error_<feature name>; token runs: error_token,
    the step's negative log-likelihood), interval (the step's anomalous interval, numbered
    1, 2, ... within its sequence; empty outside intervals)."""
    seqs, out = detection.seqs, detection.outputs
    steps = np.arange(seqs.num_steps) - np.repeat(seqs.offsets[:-1], seqs.lengths)
    columns: dict[str, list[Any]] = {
        "id": np.repeat(seqs.ids, seqs.lengths).tolist(),
        "step": steps.tolist(),
        "score": [_number(s) for s in detection.step_scores],
    }
    labels = seqs.feature_labels if out.feature_errors.shape[1] == seqs.num_features else ("token",)
    for k, name in enumerate(labels):
        columns[f"error_{name}"] = [_number(e) for e in out.feature_errors[:, k]]
    columns["interval"] = [int(i) if i else None for i in detection.step_interval]
    return columns


def write_table(path: str | Path, columns: dict[str, list[Any]]) -> None:
    """A `.csv` (empty cells for missing values) or `.parquet` file, written atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(columns)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return
    names = list(columns)
    rows = zip(*(columns[n] for n in names), strict=True)
    write_csv(path, names, ([_cell(v) for v in row] for row in rows))


def _cell(value: Any) -> Any:
    return f"{value:.9g}" if isinstance(value, float) else value
