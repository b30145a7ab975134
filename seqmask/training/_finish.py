"""The end of training: the detector calibrated on the best checkpoint, and the figures of
`metrics.json` (losses, data and padding, throughput, device, versions)."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from seqmask._version import __version__
from seqmask.analysis.detect import DetectError, calibrate_on, calibration_sample, load_detector, reference_sample
from seqmask.config import Batching
from seqmask.data import Sequences
from seqmask.data.batching import batch_time_len, epoch_batches
from seqmask.data.streaming import ShardedSequences
from seqmask.errors import RunError
from seqmask.run.checkpoints import load_checkpoint
from seqmask.run.loaded import LoadedRun
from seqmask.training._session import _Session
from seqmask.training.progress import Calibrated


def _padding_fraction(
    seqs: Sequences | ShardedSequences, batch_size: int, batching: Batching, seed: int, max_len: int, window: int
) -> float:
    """Fraction of the steps of one epoch's training batches that are padding."""
    padded = 0
    for b in epoch_batches(seqs, batch_size, batching, seed, 1, window):
        padded += len(b) * batch_time_len(seqs.lengths[b], batching, max_len)
    return 1.0 - seqs.num_steps / padded


def _in_memory(seqs: Sequences | ShardedSequences) -> Sequences | None:
    return seqs.in_memory() if isinstance(seqs, ShardedSequences) else seqs


def _data_metrics(s: _Session) -> dict[str, Any]:
    """How the data was read: one file in memory, or shards (streamed or not)."""
    index = s.splits.index
    if index is None:
        return {"sharded": False}
    return {
        "sharded": True,
        "shards": len(index.shards),
        "streaming": s.splits.streaming,
        "input_wait_seconds": s.input_wait,  # this session's, not counting before a resume
        # Training sequences this process read from the shards in this session: under
        # multi_worker only its replicas' rows of each batch.
        "train_sequences_read": s.train_sequences_read,
    }


def _calibrate(s: _Session, keep: bool = False) -> Calibrated:
    """The detector of the best checkpoint, fitted on the validation split (detect.py). A
    run that cannot be calibrated (no validation data, a singular covariance) has still
    trained well: it is told why, and `seqmask calibrate` can fit one later. `keep`: a
    valid saved detector stays as it is."""
    if keep:
        try:
            saved = load_detector(s.run, "best")
        except RunError:
            saved = None
        if saved is not None:
            return Calibrated(saved.score, saved.how)
    if not len(s.splits.validation):
        return Calibrated(None, f"no validation data: fit one with 'seqmask calibrate {s.run} --data FILE'")
    model, _ = load_checkpoint(s.run.checkpoint("best"))
    run = LoadedRun(s.run, s.cfg, s.splits.transform, model, "best")
    validation, train = _in_memory(s.splits.validation), _in_memory(s.splits.train)
    where = "the validation split"
    if validation is None or train is None:  # streamed: samples, read from the shards
        assert isinstance(s.splits.train, ShardedSequences)
        train = reference_sample(s.splits.train, s.cfg.train.seed)
        validation, where = calibration_sample(s.splits.validation, s.cfg.train.seed)
    try:
        detector = calibrate_on(run, validation, train, where)
    except DetectError as e:
        return Calibrated(None, str(e))
    return Calibrated(detector.score, detector.how)


def _metrics(s: _Session) -> dict[str, Any]:
    cfg, state, splits = s.cfg, s.state, s.splits
    best, final = state.best_row(), state.history[-1]
    seconds = sum(row.seconds for row in state.history)
    tokens = cfg.input.kind == "tokens"
    return {
        "monitor": s.monitor,
        "best_epoch": state.best_epoch,
        "best_loss": best.loss,
        "best_val_loss": best.val_loss,
        "best_val_accuracy": best.val_accuracy,
        # Tokens: perplexity = exp(mean cross-entropy per scored token).
        "best_val_perplexity": math.exp(best.val_loss) if tokens and best.val_loss is not None else None,
        "final_epoch": final.epoch,
        "final_loss": final.loss,
        "final_val_loss": final.val_loss,
        "epochs_run": len(state.history),
        "stop_reason": state.stop_reason,
        "train_sequences": len(splits.train),
        "validation_sequences": len(splits.validation),
        "train_real_steps": int(splits.train.num_steps),
        "validation_real_steps": int(splits.validation.num_steps) if len(splits.validation) else 0,
        "max_len": splits.max_len,
        "batch_size": s.batch_size,
        "padding_fraction": _padding_fraction(
            splits.train, s.batch_size, cfg.train.batching, cfg.train.seed, splits.max_len, cfg.data.window_shards
        ),
        "data": _data_metrics(s),
        "train_seconds": seconds,
        "real_steps_per_second": sum(row.train_real_steps for row in state.history) / max(seconds, 1e-9),
        "device": s.device,
        "distribute": s.cluster.as_dict(),
        "lstm_kernel": s.lstm_kernel,
        "versions": {"seqmask": __version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }
