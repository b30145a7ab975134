"""Files evaluate, encode and detect write for the user, keyed by sequence id so they join back."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqmask.atomic import atomic_path
from seqmask.data import Sequences
from seqmask.errors import RunError

# The files evaluate, encode and detect write: tables (the suffix picks the format), and for
# encode also a .npy array of every vector at once.
PARQUET = ".parquet"
TABLE_SUFFIXES = (".csv", PARQUET)
LATENT_SUFFIXES = (*TABLE_SUFFIXES, ".npy")

if TYPE_CHECKING:  # detect and model.scoring import TensorFlow; these writers do not need it
    from seqmask.analysis.detect import Detection
    from seqmask.model.scoring import Scores


def error_columns(seqs: Sequences, scores: Scores, tokens: bool = False) -> dict[str, list[Any]]:
    """id, length, scored_steps, error (and, for tokens, accuracy): one row per sequence,
    in input order. For tokens the error is the sequence's mean cross-entropy."""
    columns: dict[str, list[Any]] = {
        "id": [str(i) for i in seqs.ids],
        "length": [int(n) for n in seqs.lengths],
        "scored_steps": [int(c) for c in scores.counts],
        "error": [float(e) for e in scores.per_sequence],  # NaN: nothing scored
    }
    if tokens:
        columns["accuracy"] = [float(a) for a in scores.per_sequence_accuracy]
    return columns


def write_errors(path: str | Path, seqs: Sequences, scores: Scores, tokens: bool = False) -> None:
    """`evaluate --output`: `error_columns` as .csv or .parquet (by the suffix), atomically."""
    with atomic_path(path) as tmp:
        write_table(tmp, error_columns(seqs, scores, tokens), parquet=Path(path).suffix == PARQUET)


def latent_columns(ids: np.ndarray, lengths: np.ndarray, latent: np.ndarray) -> dict[str, Any]:
    """id, length, z0 .. z{d-1}: one float column per latent dimension, the same in CSV
    and Parquet. Plain columns rather than one list column: pandas reads them as a float
    matrix (`df.filter(regex="^z")`), DuckDB and Spark as ordinary numbers, no unnesting."""
    columns: dict[str, Any] = {"id": [str(i) for i in ids], "length": [int(n) for n in lengths]}
    for k in range(latent.shape[1]):
        columns[f"z{k}"] = latent[:, k]
    return columns


def write_latent(path: str | Path, ids: np.ndarray, lengths: np.ndarray, latent: np.ndarray) -> None:
    """`.csv` or `.parquet`: `latent_columns` (Parquet keeps float32). `.npy`: a structured
    array (id, length, latent), loadable with allow_pickle=False. Written atomically."""
    path = Path(path)
    if path.suffix in TABLE_SUFFIXES:
        with atomic_path(path) as tmp:
            write_table(tmp, latent_columns(ids, lengths, latent), parquet=path.suffix == PARQUET)
        return
    width = max(1, max((len(str(i)) for i in ids), default=1))
    records = np.zeros(len(ids), dtype=[("id", f"U{width}"), ("length", "i8"), ("latent", "f4", (latent.shape[1],))])
    records["id"], records["length"], records["latent"] = ids, lengths, latent
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, records, allow_pickle=False)


class TableParts:
    """One table written part by part to `path` (a temporary file: callers make it atomic):
    CSV rows, or a Parquet row group, per `write(columns)`, so memory holds one part. The
    Parquet schema is the first part's (column types are fixed: `_arrow`)."""

    def __init__(self, path: Path, parquet: bool, stack: ExitStack) -> None:
        self._path, self._parquet, self._stack = path, parquet, stack
        self._writer: Any = None
        self.rows = 0

    def write(self, columns: dict[str, Any]) -> None:
        if self._parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({name: _arrow(name, values) for name, values in columns.items()})
            if self._writer is None:
                self._writer = self._stack.enter_context(pq.ParquetWriter(self._path, table.schema))
            self._writer.write_table(table)
        else:
            if self._writer is None:
                f = self._stack.enter_context(open(self._path, "w", newline="", encoding="utf-8"))
                self._writer = csv.writer(f, lineterminator="\n")
                self._writer.writerow(list(columns))
            table_rows = zip(*(_plain(v) for v in columns.values()), strict=True)
            self._writer.writerows([_cell(v) for v in row] for row in table_rows)
        self.rows += len(next(iter(columns.values()), []))


def _streamed_suffix(path: Path) -> bool:
    if path.suffix not in TABLE_SUFFIXES:
        raise RunError(f"{path}: streamed output is .csv or .parquet (a .npy file needs every vector at once)")
    return path.suffix == PARQUET


def write_latent_parts(path: str | Path, parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> int:
    """`write_latent` for latents that come part by part (ids, lengths, latent), in order:
    CSV rows, or a Parquet row group, per part, so memory holds one part. The file is
    complete or absent (a failure in any part leaves nothing). Returns the rows written."""
    path = Path(path)
    parquet = _streamed_suffix(path)
    with atomic_path(path) as tmp, ExitStack() as stack:
        table = TableParts(tmp, parquet, stack)
        for ids, lengths, latent in parts:
            table.write(latent_columns(ids, lengths, latent))
        if not table.rows:
            raise RunError(f"{path}: no sequences to write")
    return table.rows


def write_errors_parts(path: str | Path, parts: Iterable[tuple[Sequences, Scores]], tokens: bool = False) -> int:
    """`write_errors` of data scored part by part (streamed shards), in order; complete or
    absent. Returns the rows written."""
    path = Path(path)
    parquet = _streamed_suffix(path)
    with atomic_path(path) as tmp, ExitStack() as stack:
        table = TableParts(tmp, parquet, stack)
        for seqs, scores in parts:
            table.write(error_columns(seqs, scores, tokens))
        if not table.rows:
            raise RunError(f"{path}: no sequences to write")
    return table.rows


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


# Parquet column types, fixed: pyarrow would guess "null" for a column with no value.
_TYPES = {"id": "string", "length": "int64", "anomaly": "int64", "step": "int64", "interval": "int64"}
_TYPES |= {"interval_start": "int64", "interval_end": "int64", "scored_steps": "int64"}


def write_detection(
    detection: Detection, output: Path, steps: Path | None, summary_path: Path, summary: dict[str, Any]
) -> None:
    """`detect`'s files: all written to temporary files first and renamed into place only
    once every one of them is complete, so a failure leaves none of them behind."""
    for path in (output, steps, summary_path):
        if path is not None and Path(path).is_dir():
            raise RunError(f"cannot write {path}: it is a directory")
    with ExitStack() as stack:
        targets = [(stack.enter_context(atomic_path(output)), detection_columns(detection))]
        if steps is not None:
            targets.append((stack.enter_context(atomic_path(steps)), step_columns(detection)))
        summary_tmp = stack.enter_context(atomic_path(summary_path))
        for (tmp, columns), final in zip(targets, [output, steps], strict=False):
            write_table(tmp, columns, parquet=Path(str(final)).suffix == PARQUET)
        summary_tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def write_detection_parts(
    parts: Iterable[Detection],
    output: Path,
    steps: Path | None,
    summary_path: Path,
    summary: Callable[[], dict[str, Any]],
) -> None:
    """`write_detection` of data detected part by part (streamed shards): per part, rows of
    `output` and of `steps` (a Parquet row group each), in input order; then `summary()`,
    once every part is in. All three files appear together or not at all."""
    for path in (output, steps, summary_path):
        if path is not None and Path(path).is_dir():
            raise RunError(f"cannot write {path}: it is a directory")
    parquet = _streamed_suffix(Path(output))
    step_parquet = _streamed_suffix(Path(steps)) if steps is not None else False
    with ExitStack() as stack:
        per_sequence = TableParts(stack.enter_context(atomic_path(output)), parquet, stack)
        per_step = TableParts(stack.enter_context(atomic_path(steps)), step_parquet, stack) if steps else None
        summary_tmp = stack.enter_context(atomic_path(summary_path))
        for detection in parts:
            per_sequence.write(detection_columns(detection))
            if per_step is not None:
                per_step.write(step_columns(detection))
        if not per_sequence.rows:
            raise RunError(f"{output}: no sequences to write")
        summary_tmp.write_text(json.dumps(summary(), indent=2, sort_keys=True) + "\n")


def summary_path(output: Path) -> Path:
    """Where `detect --output FILE` puts its summary: FILE's stem + ".summary.json"."""
    return output.with_name(output.stem + ".summary.json")


def json_safe(obj: Any) -> Any:
    """NaN and inf become null: JSON has no such numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_table(path: str | Path, columns: dict[str, list[Any]], parquet: bool | None = None) -> None:
    """`columns` as CSV (empty cells for missing values) or Parquet (by `path`'s suffix
    unless `parquet` says), written to `path` directly: callers make it atomic."""
    path = Path(path)
    if parquet if parquet is not None else path.suffix == PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {name: _arrow(name, values) for name, values in columns.items()}
        pq.write_table(pa.table(arrays), path)
        return
    names = list(columns)
    rows = zip(*(_plain(columns[n]) for n in names), strict=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_cell(v) for v in row] for row in rows)


def _arrow(name: str, values: Any) -> Any:
    """A Parquet column: a numpy array keeps its dtype (float32 latents stay float32)."""
    import pyarrow as pa

    if isinstance(values, np.ndarray):
        return pa.array(values)
    return pa.array(values, type=_TYPES.get(name, "float64"))


def _plain(values: Any) -> Any:
    # CSV cells from Python floats: a float32 printed with .9g round-trips exactly.
    return values.tolist() if isinstance(values, np.ndarray) else values


def _cell(value: Any) -> Any:
    return f"{value:.9g}" if isinstance(value, float) else value
