"""The epoch loop: the rest of each epoch's batches (prefetched when streaming, checked
for divergence, checkpointed every `train.checkpoint_every_batches` and on a stop), then
the epoch's end: validation, the history row, early stopping, the schedule, the checkpoint."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from seqmask.config import TrainConfig
from seqmask.data.batching import epoch_batches, inference_batch_size, padded_batch
from seqmask.data.streaming import Prefetcher
from seqmask.errors import Interrupted, RunError
from seqmask.model.scoring import score
from seqmask.run.state import EpochRow, TrainState
from seqmask.training import distribute
from seqmask.training._session import _Session
from seqmask.training.progress import Reporter


class Diverged(RunError):
    """The loss became NaN or Inf."""


def _train_epochs(s: _Session, reporter: Reporter, should_stop: Callable[[], bool]) -> None:
    with s.cluster.peer_errors(s.home.path):
        while not s.state.finished:
            started = _run_epoch(s, reporter, should_stop)
            reporter.epoch_end(_end_epoch(s, started))


# --------------------------------------------------------------------------- one epoch


def _run_epoch(s: _Session, reporter: Reporter, should_stop: Callable[[], bool]) -> float:
    """Runs the rest of the current epoch's batches; returns when the epoch started
    (`time.perf_counter()` time, counting the part run before a resume)."""
    cfg, state, train_seqs = s.cfg, s.state, s.splits.train
    epoch = state.epoch
    batches = epoch_batches(train_seqs, s.batch_size, cfg.train.batching, cfg.train.seed, epoch, cfg.data.window_shards)
    reporter.epoch_start(epoch, len(batches))
    started = time.perf_counter() - state.epoch_seconds

    def make(k: int) -> tuple[np.ndarray, np.ndarray]:
        batch = batches[k]
        rows = None
        if s.own_replicas is not None:  # multi_worker: read this worker's part of the batch only
            rows = distribute.rows_of_replicas(len(batch), s.cluster.num_replicas, s.own_replicas)
        return padded_batch(train_seqs, batch, cfg.train.batching, s.splits.max_len, cfg.data.padding, rows=rows)

    # Streaming: the shards of upcoming batches are read while this one trains.
    ahead = Prefetcher(make, state.batch, len(batches)) if s.splits.streaming else None
    try:
        return _run_batches(s, reporter, should_stop, batches, started, make, ahead)
    finally:
        if ahead is not None:
            ahead.close()
            s.input_wait += ahead.waited
        # Before the end's calibration, which reads its samples through the same split.
        s.train_sequences_read = getattr(train_seqs, "sequences_read", 0)


def _run_batches(
    s: _Session,
    reporter: Reporter,
    should_stop: Callable[[], bool],
    batches: Sequence[np.ndarray],
    started: float,
    make: Callable[[int], tuple[np.ndarray, np.ndarray]],
    ahead: Prefetcher[tuple[np.ndarray, np.ndarray]] | None,
) -> float:
    cfg, state, train_seqs, epoch = s.cfg, s.state, s.splits.train, s.state.epoch
    real_steps_done = np.cumsum([train_seqs.lengths[b].sum() for b in batches])  # after batch k
    global_step = int(s.optimizer.iterations.numpy())
    every = cfg.train.checkpoint_every_batches
    while state.batch < len(batches):
        k = state.batch
        values, lengths = ahead.get(k) if ahead is not None else make(k)
        if s.cluster.distributed:
            # A stop asked of any worker comes back summed over all of them, so every worker
            # checkpoints after this same batch.
            total, count, hits, stops = s.train_step(values, lengths, np.float32(should_stop())).numpy().tolist()
        else:
            total, count, hits = s.train_step(values, lengths).numpy().tolist()
        if not math.isfinite(total):
            raise Diverged(
                f"the training loss became {total} at epoch {epoch}, batch {k + 1}; "
                "likely causes: a learning rate too high (train.learning_rate), unnormalized "
                "features (data.normalize: standard), or no gradient clipping (train.clip_norm). "
                f"The last good checkpoint is kept in {s.home.checkpoint('last')}"
            )
        state.add_batch(total, count, hits, seconds=time.perf_counter() - started)
        reporter.batch_end(epoch, k + 1, state.epoch_loss, real_steps_done[k] / max(state.epoch_seconds, 1e-9))
        global_step += 1
        interrupted = stops > 0 if s.cluster.distributed else should_stop()
        if interrupted or (every and global_step % every == 0):
            s.save_last()
        if interrupted:
            raise Interrupted(s.home.path, epoch, k + 1)
    return started


# --------------------------------------------------------------------------- end of an epoch


def _end_epoch(s: _Session, started: float) -> EpochRow:
    """Validation, the history row, early stopping and the schedule, then the checkpoint."""
    cfg, state = s.cfg, s.state
    tokens = cfg.input.kind == "tokens"
    validation = s.splits.validation
    val_batch = inference_batch_size(cfg.train.batch_size)
    val = score(s.eval_step, validation, val_batch, cfg.data.padding) if len(validation) else None
    row = EpochRow(
        epoch=state.epoch,
        loss=state.epoch_loss,
        val_loss=val.loss if val else None,
        accuracy=state.epoch_accuracy if tokens else None,
        val_accuracy=val.accuracy if val and tokens else None,
        seconds=time.perf_counter() - started,
        learning_rate=float(s.optimizer.learning_rate.numpy()),
        train_real_steps=int(s.splits.train.num_steps),
    )
    state.history.append(row)
    _log_scalars(s.writer, row)
    _track_best(s, row)
    state.next_epoch()
    state.stop_reason = _stop_reason(state, cfg.train, s.monitor)
    state.finished = state.stop_reason is not None
    s.run.write_history(state.history)
    s.save_last()
    return row


def _log_scalars(writer: Any, row: EpochRow) -> None:
    with writer.as_default():
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
            value = getattr(row, key)
            if value is not None:
                tf.summary.scalar(key, value, step=row.epoch)
    writer.flush()


def _track_best(s: _Session, row: EpochRow) -> None:
    """A new best is checkpointed; otherwise the patience counters advance, and after
    `lr_patience` epochs without a new best the learning rate is cut by `lr_factor`."""
    train_cfg, state, monitor = s.cfg.train, s.state, s.monitor
    current = getattr(row, monitor)
    if state.best_loss is None or current < state.best_loss - train_cfg.min_delta:
        state.best_loss, state.best_epoch, state.bad_epochs, state.plateau = current, row.epoch, 0, 0
        s.save("best", {"epoch": row.epoch, monitor: current})
        return
    state.bad_epochs += 1
    state.plateau += 1
    if train_cfg.lr_patience and state.plateau >= train_cfg.lr_patience:
        # The rate lives in the optimizer, so checkpoints carry the schedule too.
        lr = float(s.optimizer.learning_rate.numpy())
        s.optimizer.learning_rate.assign(max(lr * train_cfg.lr_factor, train_cfg.min_learning_rate))
        state.plateau = 0


def _stop_reason(state: TrainState, train_cfg: TrainConfig, monitor: str) -> str | None:
    """Why training stops after the epochs done so far (state.epoch - 1), or None."""
    if train_cfg.patience and state.bad_epochs >= train_cfg.patience:
        return f"early stopping: no improvement in {monitor} for {train_cfg.patience} epochs"
    if state.epoch > train_cfg.epochs:
        return "reached train.epochs"
    return None
