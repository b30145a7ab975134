"""What training tells whoever watches it: the `Reporter` interface and what it receives.

training.py calls a reporter and never prints; cli.py's reporters draw the calls. This module
imports nothing heavy, so the CLI can subclass `Reporter` without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqmask.run.state import EpochRow


@dataclass(frozen=True)
class TrainStart:
    """What a training run is about to do, told once before the first batch."""

    run_dir: str
    resumed_at: tuple[int, int] | None  # (epoch, batch) a resumed run continues at
    already_finished: bool  # resumed a run that has nothing left to train
    stop_reason: str | None  # why it finished, if it has
    device: str
    lstm_kernel: str  # which LSTM implementation runs, in words
    train_sequences: int
    validation_sequences: int
    num_features: int
    batch_size: int  # train.batch_size, "auto" resolved
    parameters: int


@dataclass(frozen=True)
class Calibrated:
    """The end of training calibrated the run's anomaly detector, or could not."""

    score: str | None  # detect.score; None: not calibrated
    how: str  # how the thresholds were set, or why there is no detector


class Reporter:
    """Receives progress. The base class ignores everything: override what you draw."""

    def start(self, info: TrainStart) -> None:
        """Training is about to start (or resume)."""

    def building_kernel(self) -> None:
        """seqmask's CPU LSTM kernel is being compiled (once per TensorFlow and CPU)."""

    def indexing(self, done: int, total: int) -> None:
        """Sharded data: `done` of `total` shards indexed (read once, before training)."""

    def epoch_start(self, epoch: int, num_batches: int) -> None:
        """An epoch of `num_batches` batches begins (or resumes)."""

    def batch_end(self, epoch: int, batch: int, loss: float, real_steps_per_s: float) -> None:
        """Batch `batch` (1-based) is done; `loss` is the epoch's exact mean so far."""

    def epoch_end(self, row: EpochRow) -> None:
        """An epoch is done, validated and checkpointed."""

    def calibrated(self, info: Calibrated) -> None:
        """Training is over and the detector was calibrated (or why not)."""
