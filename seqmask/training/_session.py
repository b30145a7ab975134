"""The `_Session`: everything one training run works with, from start (or resume) to its
last epoch, and the figure its early stopping watches (`_monitor`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from seqmask.config import Config
from seqmask.data.batching import batch_size_for
from seqmask.run.checkpoints import save_checkpoint
from seqmask.run.directory import Checkpoint, RunDir
from seqmask.run.splits import Splits
from seqmask.run.state import TrainState
from seqmask.training.distribute import Cluster

StepFn = Callable[..., Any]


@dataclass
class _Session:
    """Everything one training run works with, from start (or resume) to its last epoch."""

    cfg: Config
    run: RunDir  # where this process writes: the run, or a worker's scratch directory
    home: RunDir  # the run directory itself (a multi-worker run's, on a shared filesystem)
    cluster: Cluster
    splits: Splits
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    state: TrainState
    device: str
    lstm_kernel: str
    resumed_from_checkpoint: bool
    train_step: StepFn
    eval_step: StepFn
    writer: Any  # tf.summary writer for RUN_DIR/tensorboard
    input_wait: float = 0.0  # streaming: seconds the training step waited for a batch
    # multi_worker streaming: the replica ids of this worker; it reads only their rows of
    # each batch (distribute.rows_of_replicas). None: every row is read.
    own_replicas: tuple[int, ...] | None = None
    train_sequences_read: int = 0  # streaming: by the training batches, this session

    @property
    def batch_size(self) -> int:
        """train.batch_size as a number ("auto" resolved for this training split)."""
        return batch_size_for(self.cfg.train.batch_size, len(self.splits.train))

    @property
    def monitor(self) -> str:
        """The figure early stopping and the schedule watch."""
        return _monitor(self.splits)

    def save_last(self) -> None:
        self.save("last", self.state.to_dict())

    def save(self, which: Checkpoint, state: dict[str, Any]) -> None:
        """A checkpoint in the run directory; a multi-worker run's other workers write theirs
        to a scratch directory and remove it, as TensorFlow's multi-worker guide asks."""
        path = self.run.checkpoint(which)
        save_checkpoint(self.model, path, state)
        if not self.cluster.is_chief:
            path.unlink()


def _monitor(splits: Splits) -> str:
    """The figure early stopping and the schedule watch: the validation loss if there is one."""
    return "val_loss" if len(splits.validation) else "loss"
