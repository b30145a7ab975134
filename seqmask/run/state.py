"""The training position: what a checkpoint stores besides the weights and optimizer.

`TrainState` is saved as JSON inside each `last.keras` checkpoint (checkpoints.py), so a
run resumes at the exact batch with the same early-stopping counters and history. Its
field names are the file format: `from_dict` also reads the checkpoints of older seqmask
versions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Keys that older checkpoints spelled differently: old name -> current name.
_RENAMED_ROW_KEYS = {"real_steps": "train_real_steps"}


@dataclass(frozen=True)
class EpochRow:
    """One epoch of history: a row of history.csv, and what the reporter is shown."""

    epoch: int
    loss: float  # Σ w·e ÷ Σ w over every real step trained on in this epoch
    val_loss: float | None  # the same over the validation split; None without one
    seconds: float
    learning_rate: float
    train_real_steps: int  # real (unpadded) steps in the training split
    accuracy: float | None = None  # token runs only
    val_accuracy: float | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EpochRow:
        raw = {_RENAMED_ROW_KEYS.get(k, k): v for k, v in raw.items()}
        values: dict[str, Any] = {f.name: raw.get(f.name) for f in fields(cls)}
        return cls(**values)


@dataclass
class TrainState:
    """Where a run stands. Mutable: the loop advances it batch by batch."""

    epoch: int = 1  # the epoch to run next (1-based)
    batch: int = 0  # the next batch within it
    epoch_sum: float = 0.0  # Σ w·e of the batches of this epoch already run
    epoch_count: float = 0.0  # Σ w of those batches
    epoch_hits: float = 0.0  # Σ w·hit (tokens: correctly predicted steps)
    epoch_seconds: float = 0.0
    best_loss: float | None = None  # best monitored loss so far, and its epoch
    best_epoch: int | None = None
    bad_epochs: int = 0  # epochs since the best one (early-stopping patience)
    plateau: int = 0  # epochs since the best one or the last learning-rate cut
    history: list[EpochRow] = field(default_factory=list)
    finished: bool = False
    stop_reason: str | None = None

    @property
    def epoch_loss(self) -> float:
        """The exact mean over the real steps of this epoch's batches so far."""
        return self.epoch_sum / max(self.epoch_count, 1.0)

    @property
    def epoch_accuracy(self) -> float:
        return self.epoch_hits / max(self.epoch_count, 1.0)

    def add_batch(self, total: float, count: float, hits: float, seconds: float) -> None:
        self.epoch_sum += total
        self.epoch_count += count
        self.epoch_hits += hits
        self.batch += 1
        self.epoch_seconds = seconds

    def next_epoch(self) -> None:
        self.epoch += 1
        self.batch = 0
        self.epoch_sum = self.epoch_count = self.epoch_hits = self.epoch_seconds = 0.0

    def best_row(self) -> EpochRow:
        return next(row for row in self.history if row.epoch == self.best_epoch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["history"] = [EpochRow.from_dict(row) for row in raw.get("history", [])]
        return cls(**values)
