"""`Run`: a run directory used from Python (encode, evaluate, reconstruct, detect, calibrate,
report, export), with its results as small dataclasses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqmask.config import Config
from seqmask.data.inputs import Data
from seqmask.errors import ConfigError
from seqmask.run.directory import CHECKPOINT_CHOICES, HISTORY_FIELDS, METRICS, Checkpoint, RunDir, claim

if TYPE_CHECKING:
    from seqmask.analysis import evaluate as evaluation
    from seqmask.analysis.detect import Detection, DetectionTotals, Detector
    from seqmask.run.loaded import LoadedRun
    from seqmask.serving.export import ExportInfo


from seqmask.api._checks import check_threshold_rule

# --------------------------------------------------------------------------- a run


@dataclass(frozen=True)
class Encoding:
    """`Run.encoding`'s result: one latent vector per sequence, in input order."""

    ids: np.ndarray  # (num_sequences,) str
    lengths: np.ndarray  # (num_sequences,) int64
    latent: np.ndarray  # (num_sequences, latent_dim) float32
    seconds: float

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum())


@dataclass(frozen=True)
class DetectionReport:
    """`Run.detect_to`'s result: what was written, in numbers (the rows are in the files)."""

    totals: DetectionTotals  # sequences, flagged, thresholds applied, flagged steps
    detector: Detector
    calibrated_now: bool  # the run had no detector for this checkpoint: it was fitted first
    metrics: dict[str, Any] | None  # with labels: AUROC, AP, precision, recall, F1


class Run:
    """A trained run directory and one of its checkpoints.

    Args:
        path: the run directory.
        checkpoint: "best" (lowest validation loss) or "last".

    The model is loaded on first use and kept. Data arguments take every form of
    `seqmask.data.inputs` (a path, a list of arrays, a padded array with `lengths=`, a pandas
    DataFrame); `ids=` names in-memory sequences (default "0", "1", ...).
    """

    def __init__(self, path: str | Path, checkpoint: Checkpoint = "best") -> None:
        if checkpoint not in CHECKPOINT_CHOICES:
            choices = " or ".join(repr(c) for c in CHECKPOINT_CHOICES)
            raise ConfigError(f"checkpoint must be {choices}, got {checkpoint!r}")
        self.path = Path(path)
        self.checkpoint: Checkpoint = checkpoint
        self._loaded: LoadedRun | None = None
        self._trained_metrics: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, checkpoint={self.checkpoint!r})"

    @property
    def loaded(self) -> LoadedRun:
        """The config, transform and model, as evaluate / detect / report use them."""
        if self._loaded is None:
            from seqmask.run.loaded import load_run

            self._loaded = load_run(self.path, self.checkpoint)
        return self._loaded

    @property
    def config(self) -> Config:
        """The run's resolved config (every default filled in)."""
        return self.loaded.cfg if self._loaded is not None else RunDir(self.path).require().read_config()

    # -- what the run recorded ---------------------------------------------------------

    @property
    def history(self) -> list[dict[str, float | int | None]]:
        """One dict per finished epoch (`history.csv`), numbers as numbers, None where empty:
        `pandas.DataFrame(run.history)` is the table."""
        rows = RunDir(self.path).require().read_history()
        return [
            {k: _number(row.get(k, ""), k == "epoch" or k == "train_real_steps") for k in HISTORY_FIELDS}
            for row in rows
        ]

    @property
    def metrics(self) -> dict[str, Any]:
        """`metrics.json`: the best and final figures, stop reason, data sizes, the detector."""
        if self._trained_metrics is not None:
            return self._trained_metrics
        run = RunDir(self.path).require()
        if not run.file(METRICS).is_file():
            from seqmask.errors import RunError

            raise RunError(f"{self.path} has no {METRICS} yet: training has not finished an epoch")
        metrics: dict[str, Any] = run.read_json(METRICS)
        return metrics

    # -- using it on data --------------------------------------------------------------

    def encoding(self, data: Data, *, lengths: Any = None, ids: Any = None, batch_size: int | None = None) -> Encoding:
        """`encode` with the ids, lengths and the time it took."""
        from seqmask.analysis.evaluate import encode

        seqs, latent, seconds = encode(self.loaded, data, batch_size, lengths=lengths, ids=ids)
        return Encoding(seqs.ids, seqs.lengths, latent, seconds)

    def encode_to(self, data: str | Path, output: str | Path, *, batch_size: int | None = None) -> Encoding:
        """`encode` straight to a file (.csv, .parquet or .npy). A directory or glob of
        shards is encoded shard by shard and written part by part (.csv, .parquet), so
        memory does not grow with the data; the returned Encoding then holds no vectors
        (`latent` has no rows; its ids and lengths are those of every sequence)."""
        from seqmask.analysis.outputs import write_latent, write_latent_parts
        from seqmask.data.shards import find_shards

        shards = find_shards(data)
        if shards is None or Path(output).suffix == ".npy":
            encoding = self.encoding(data, batch_size=batch_size)
            write_latent(output, encoding.ids, encoding.lengths, encoding.latent)
            return encoding
        from seqmask.analysis.evaluate import encode_shards

        ids: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        seconds = [0.0]
        width = [0]

        def parts() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for part in encode_shards(self.loaded, shards, batch_size):
                ids.append(part.ids)
                lengths.append(part.lengths)
                seconds[0] += part.seconds
                width[0] = part.latent.shape[1]
                yield part.ids, part.lengths, part.latent

        write_latent_parts(output, parts())
        return Encoding(np.concatenate(ids), np.concatenate(lengths), np.zeros((0, width[0]), np.float32), seconds[0])

    def encode(self, data: Data, *, lengths: Any = None, ids: Any = None, batch_size: int | None = None) -> np.ndarray:
        """One latent vector per sequence: (num_sequences, latent_dim) float32, in input order.

        Padding, the amount of it and which sequences share a batch change nothing.
        """
        return self.encoding(data, lengths=lengths, ids=ids, batch_size=batch_size).latent

    def reconstruct(
        self, data: Data, *, lengths: Any = None, ids: Any = None, batch_size: int | None = None
    ) -> list[np.ndarray]:
        """The model's output for each sequence's real steps, in the input's units:
        (length_i, features) float32 (token runs: (length_i,) the most likely tokens).
        With `train.target: next_step`, row t predicts step t + 1."""
        from seqmask.analysis.evaluate import reconstruct

        return reconstruct(self.loaded, data, batch_size, lengths=lengths, ids=ids)[1]

    def evaluate(self, data: Data = None, *, lengths: Any = None, ids: Any = None) -> evaluation.Evaluation:
        """The exact masked loss on `data` (default: the run's validation data): `.loss`, the
        mean over all scored steps, and `.errors`, `.ids`, per sequence; as `seqmask evaluate`."""
        from seqmask.analysis.evaluate import evaluate

        return evaluate(self.loaded, data, lengths=lengths, ids=ids)

    def evaluate_to(self, data: Data, output: str | Path) -> evaluation.EvaluationTotals:
        """`evaluate` with the per-sequence errors written to `output` (.csv or .parquet), as
        `seqmask evaluate --output`. Sharded data (a directory or glob of shards, or a
        sharded run's validation split when `data` is None) is scored and written shard by
        shard, in input order, so memory does not grow with it; the totals are the same."""
        from seqmask.analysis.evaluate import EvaluationTotals, evaluate_parts, streamed_parts
        from seqmask.analysis.outputs import write_errors, write_errors_parts

        tokens = self.config.input.kind == "tokens"
        totals = EvaluationTotals()
        parts = streamed_parts(self.loaded, data)
        if parts is None:
            result = totals.add(self.evaluate(data))
            write_errors(output, result.data, result.scores, tokens=tokens)
            return totals
        scored = (totals.add(part) for part in evaluate_parts(self.loaded, parts))
        write_errors_parts(output, ((part.data, part.scores) for part in scored), tokens=tokens)
        return totals

    def detect_to(
        self,
        data: Data,
        output: str | Path,
        *,
        steps: str | Path | None = None,
        threshold: float | None = None,
        labels: str | Path | None = None,
    ) -> DetectionReport:
        """`detect` with its files written, as `seqmask detect`: one row per sequence in
        `output`, one per step in `steps`, and `<output stem>.summary.json` beside it.
        Sharded data is detected and written shard by shard, in input order."""
        from seqmask.analysis import detect as detection
        from seqmask.analysis.evaluate import streamed_parts
        from seqmask.analysis.outputs import json_safe, summary_path, write_detection, write_detection_parts
        from seqmask.data.labels import LabelFile

        if threshold is not None and not np.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number, got {threshold}")
        output = Path(output)
        steps = Path(steps) if steps is not None else None
        parts = streamed_parts(self.loaded, data)
        if parts is None:
            found = self.detect(data, threshold=threshold, labels=labels)
            assert found.detector is not None
            totals = detection.DetectionTotals()
            totals.add(found)
            summary = json_safe(detection.summary(totals, found.detector, found.metrics))
            write_detection(found, output, steps, summary_path(output), summary)
            return DetectionReport(totals, found.detector, found.calibrated_now, found.metrics)
        detector, new = detection.detector_for(self.loaded)
        totals = detection.DetectionTotals(labels=LabelFile.read(labels) if labels is not None else None)
        metrics: list[dict[str, Any] | None] = []

        def finish() -> dict[str, Any]:
            metrics.append(totals.metrics(str(data) if data is not None else "the validation split"))
            return json_safe(detection.summary(totals, detector, metrics[0]))

        detected = (totals.add(d) for d in detection.detect_parts(self.loaded, parts, detector, threshold))
        write_detection_parts(detected, output, steps, summary_path(output), finish)
        return DetectionReport(totals, detector, new, metrics[0])

    def detect(
        self,
        data: Data,
        *,
        lengths: Any = None,
        ids: Any = None,
        threshold: float | None = None,
        labels: str | Path | Sequence[int] | np.ndarray | None = None,
    ) -> Detection:
        """Anomaly scores, thresholds and flags per sequence, step scores and the worst
        interval, as `seqmask detect`. A run without a detector for this checkpoint is
        calibrated first with its config's settings (`.calibrated_now`).

        Args:
            threshold: flag scores above this instead of the calibrated thresholds.
            labels: known labels (1 = anomaly), a CSV `id,label` or one per sequence in
                input order: `.metrics` then holds AUROC, average precision, precision,
                recall and F1.
        """
        from seqmask.analysis.detect import detect

        if threshold is not None and not np.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number, got {threshold}")
        found, detector, new = detect(self.loaded, data, threshold, lengths=lengths, ids=ids)
        metrics = None
        if labels is not None:
            from seqmask.analysis.metrics import label_metrics

            metrics = label_metrics(_labels(labels, found.seqs), found.scores, found.flags)
        return found.with_context(detector, new, metrics)

    def calibrate(
        self,
        data: Data = None,
        *,
        quantile: float | None = None,
        contamination: float | None = None,
        fpr: float | None = None,
        labels: str | Path | None = None,
        score: str | None = None,
    ) -> Detector:
        """Fits the anomaly detector again on `data` (default: the validation data) and
        saves it in the run, as `seqmask calibrate`; at most one of `quantile`,
        `contamination`, `fpr` (which needs `labels` and `data`)."""
        from seqmask.analysis import detect as detection

        check_threshold_rule(quantile, contamination, fpr, labels, data, score)
        with claim(self.path, fresh=False):  # no training may write the run meanwhile
            rule = detection.Threshold(quantile, contamination, fpr)
            return detection.calibrate(self.loaded, data, threshold=rule, labels=labels, score=score)  # type: ignore[arg-type]

    def report(self, data: Data = None, labels: str | Path | None = None) -> str:
        """The run's HTML report (`seqmask report`) as one self-contained page."""
        from seqmask.analysis.report import report

        return report(self.loaded, data, labels)

    def export(self, output: str | Path, format: str = "savedmodel", overwrite: bool = False) -> ExportInfo:
        """A model for serving that needs neither seqmask nor its kernel (`seqmask export`)."""
        from seqmask.serving.export import export

        return export(self.loaded, Path(output), format, overwrite=overwrite)  # type: ignore[arg-type]


def _labels(labels: str | Path | Sequence[int] | np.ndarray, seqs: Any) -> np.ndarray:
    from seqmask.data.labels import read_labels
    from seqmask.errors import DataError

    if isinstance(labels, str | Path):
        return read_labels(labels, seqs)
    known = np.asarray(labels)
    if known.shape != (len(seqs),) or not np.isin(known, (0, 1)).all():
        raise DataError(f"labels must be one 0 or 1 per sequence ({len(seqs)}), in input order")
    return known.astype(np.int64)


def _number(text: str | None, whole: bool) -> float | int | None:
    if text is None or text == "":
        return None
    return int(float(text)) if whole else float(text)
