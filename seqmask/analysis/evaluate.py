"""Using a finished run: the masked loss of a checkpoint on any data, latent vectors and
reconstructions.

A run directory is all that is needed: its config says how to read and score data, its
saved transform (normalization statistics, or vocabulary) is applied to the new data, and
the checkpoint holds the model. Data is a file or any in-memory form `inputs.py` takes.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqmask.data import Sequences, length_mask_np
from seqmask.data.batching import inference_batch_size, inference_batches, padded_batch
from seqmask.data.inputs import Data
from seqmask.data.loading import check_targets, shard_reader
from seqmask.data.shards import find_shards, unpin_freed_shards
from seqmask.data.streaming import ShardedSequences
from seqmask.data.vocab import Vocabulary
from seqmask.errors import DataError, RunError
from seqmask.model.autoencoder import LATENT, encoder_from
from seqmask.model.scoring import Scores, batch_signature, make_eval_step, make_loss_fn, score
from seqmask.run.loaded import LoadedRun, run_data
from seqmask.run.splits import apply_transform, sharded_splits


@dataclass(frozen=True)
class Evaluation:
    data: Sequences  # the scored sequences (transformed)
    scores: Scores
    seconds: float

    @property
    def loss(self) -> float:
        """The mean error over every scored step of the data (what `seqmask evaluate` prints)."""
        return self.scores.loss

    @property
    def ids(self) -> np.ndarray:
        """(num_sequences,) str: the sequences' ids, in input order."""
        return self.data.ids

    @property
    def errors(self) -> np.ndarray:
        """(num_sequences,) float64: each sequence's mean error over its scored steps."""
        return self.scores.per_sequence

    @property
    def accuracy(self) -> float | None:
        """Token runs: the share of scored steps whose most likely token is right; else None."""
        return self.scores.accuracy if self.data.values.dtype == np.int32 else None


def evaluate(run: LoadedRun, data: Data = None, *, lengths: Any = None, ids: Any = None) -> Evaluation:
    seqs = run_data(run, data, lengths=lengths, ids=ids)
    check_targets(seqs, run.cfg.train)
    eval_step = make_eval_step(run.model, make_loss_fn(run.cfg))
    started = time.perf_counter()
    scores = score(eval_step, seqs, inference_batch_size(run.cfg.train.batch_size), run.cfg.data.padding)
    return Evaluation(seqs, scores, time.perf_counter() - started)


def encode(
    run: LoadedRun, data: Data, batch_size: int | None = None, *, lengths: Any = None, ids: Any = None
) -> tuple[Sequences, np.ndarray, float]:
    """(sequences, latent (num_sequences, latent_dim) float32, seconds), in input order."""
    seqs = run_data(run, data, lengths=lengths, ids=ids)
    encode_step = _traced(run.model, "encode")
    latent = np.zeros((len(seqs), run.model.get_layer(LATENT).output.shape[-1]), np.float32)
    started = time.perf_counter()
    for indices in inference_batches(seqs.lengths, batch_size or inference_batch_size(run.cfg.train.batch_size)):
        values, batch_lengths = padded_batch(seqs, indices, "bucket", None, run.cfg.data.padding)
        latent[indices] = encode_step(values, batch_lengths).numpy()  # (batch, latent_dim)
    return seqs, latent, time.perf_counter() - started


def shard_parts(run: LoadedRun, shards: list[Path]) -> Iterator[Sequences]:
    """The sequences of `shards`, one shard at a time in shard order, transformed as the
    run's data; the next shard is read in a background thread while this one is used."""
    from seqmask.data.streaming import Prefetcher

    unpin_freed_shards()
    read = shard_reader(run.cfg)
    expected = run.model.inputs[0].shape[-1]
    with Prefetcher(lambda k: read(shards[k]), 0, len(shards), depth=1) as ahead:
        for k in range(len(shards)):
            seqs = ahead.get(k)
            if not seqs.is_tokens and seqs.num_features != expected:
                raise DataError(f"{shards[k]}: has {seqs.num_features} features but the run's model takes {expected}")
            yield apply_transform(run.transform, seqs)


def split_parts(split: ShardedSequences) -> Iterator[Sequences]:
    """A split of sharded data (transformed), one shard's rows of it at a time, in order."""
    from seqmask.data.streaming import Prefetcher

    present = np.flatnonzero(np.diff(split.bounds))  # shards with rows in the split
    rows = [np.arange(split.bounds[s], split.bounds[s + 1]) for s in present]
    with Prefetcher(lambda k: split.take(rows[k]), 0, len(rows), depth=1) as ahead:
        for k in range(len(rows)):
            yield ahead.get(k)


def streamed_parts(run: LoadedRun, data: Data = None) -> Iterator[Sequences] | None:
    """`data` part by part when it is sharded, else None (it is read into memory).

    Sharded: a directory or glob of shards (shard by shard), or, with no data, a sharded
    run's validation split (its shards' rows, from the index the run saved, shard by
    shard; or data.validation's shards). The order is the input order."""
    if isinstance(data, str | Path):
        shards = find_shards(data)
        return shard_parts(run, shards) if shards is not None else None
    if data is not None:
        return None
    if run.cfg.data.validation:
        shards = find_shards(run.cfg.data.validation)
        return shard_parts(run, shards) if shards is not None else None
    splits = sharded_splits(run.cfg, run.run_dir)
    if splits is None:
        return None
    if not len(splits.validation):
        raise RunError(f"{run.run_dir} was trained without validation data; pass --data FILE")
    assert isinstance(splits.validation, ShardedSequences)
    return split_parts(splits.validation)


def evaluate_parts(run: LoadedRun, parts: Iterator[Sequences]) -> Iterator[Evaluation]:
    """`evaluate` of each part: the per-sequence sums are those of the whole data, part by part."""
    eval_step = make_eval_step(run.model, make_loss_fn(run.cfg))
    size = inference_batch_size(run.cfg.train.batch_size)
    for seqs in parts:
        check_targets(seqs, run.cfg.train)
        started = time.perf_counter()
        scores = score(eval_step, seqs, size, run.cfg.data.padding)
        yield Evaluation(seqs, scores, time.perf_counter() - started)


@dataclass
class EvaluationTotals:
    """What `seqmask evaluate` reports of data scored whole or part by part: the loss is
    Σ w·e ÷ Σ w over every part, exactly the dataset mean. Per-sequence errors are kept as
    float32 (4 bytes a sequence) for their median."""

    sequences: int = 0
    real_steps: int = 0
    sums: float = 0.0
    counts: float = 0.0
    hits: float = 0.0
    seconds: float = 0.0
    _errors: list[np.ndarray] = field(default_factory=list, repr=False)

    def add(self, part: Evaluation) -> Evaluation:
        scores = part.scores
        self.sequences += len(part.data)
        self.real_steps += part.data.num_steps
        self.sums += float(scores.sums.sum())
        self.counts += float(scores.counts.sum())
        self.hits += float(scores.hits.sum())
        self.seconds += part.seconds
        self._errors.append(scores.per_sequence.astype(np.float32))
        return part

    @property
    def loss(self) -> float:
        return self.sums / self.counts if self.counts > 0 else float("nan")

    @property
    def accuracy(self) -> float:
        return self.hits / self.counts if self.counts > 0 else float("nan")

    @property
    def errors(self) -> np.ndarray:
        """(sequences,) float32: each sequence's mean error, in input order."""
        return np.concatenate(self._errors) if self._errors else np.zeros(0, np.float32)


def encode_shards(run: LoadedRun, shards: list[Path], batch_size: int | None = None) -> Iterator[EncodedPart]:
    """`encode` of a directory or glob of shards, one shard at a time, in input order
    (shard by shard, then row order): memory holds a shard or two, not the data. The next
    shard is read in a background thread while this one is encoded."""
    encode_step = _traced(run.model, "encode")
    size = batch_size or inference_batch_size(run.cfg.train.batch_size)
    for seqs in shard_parts(run, shards):
        latent = np.zeros((len(seqs), run.model.get_layer(LATENT).output.shape[-1]), np.float32)
        started = time.perf_counter()
        for indices in inference_batches(seqs.lengths, size):
            values, batch_lengths = padded_batch(seqs, indices, "bucket", None, run.cfg.data.padding)
            latent[indices] = encode_step(values, batch_lengths).numpy()  # (batch, latent_dim)
        yield EncodedPart(seqs.ids, seqs.lengths, latent, time.perf_counter() - started)


@dataclass(frozen=True)
class EncodedPart:
    """One shard's latent vectors (num_sequences, latent_dim), with its ids and lengths."""

    ids: np.ndarray
    lengths: np.ndarray
    latent: np.ndarray
    seconds: float  # encoding only, not reading


# One traced function per model and kind: tracing costs ~0.2 s, more than encoding a few
# sequences, and notebooks call encode / reconstruct again and again on the same run.
_TRACED: weakref.WeakKeyDictionary[keras.Model, dict[str, Callable[..., tf.Tensor]]] = weakref.WeakKeyDictionary()


def _traced(model: keras.Model, kind: str) -> Callable[..., tf.Tensor]:
    """values, lengths -> the latent vectors ("encode") or the model's output ("predict")."""
    functions = _TRACED.setdefault(model, {})
    if kind not in functions:
        net = encoder_from(model) if kind == "encode" else model
        spec = model.inputs[0]

        @tf.function(input_signature=batch_signature(spec.shape[-1], spec.dtype))
        def step(values: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
            return net([values, lengths], training=False)  # (batch, latent_dim) | (batch, time, features | vocab)

        functions[kind] = step
    return functions[kind]


def reconstruct(
    run: LoadedRun, data: Data, batch_size: int | None = None, *, lengths: Any = None, ids: Any = None
) -> tuple[Sequences, list[np.ndarray]]:
    """(sequences, outputs): the model's output at each sequence's real steps, in input
    order, in the units of the input: numbers (length_i, features) float32, de-normalized
    with the run's statistics; token runs (length_i,) the most likely token of each step.
    With `train.target: next_step` row t is the prediction of step t + 1."""
    seqs = run_data(run, data, lengths=lengths, ids=ids)
    padding = run.cfg.data.padding
    predict_step = _traced(run.model, "predict")
    outputs: list[np.ndarray] = [np.zeros(0)] * len(seqs)
    for indices in inference_batches(seqs.lengths, batch_size or inference_batch_size(run.cfg.train.batch_size)):
        values, batch_lengths = padded_batch(seqs, indices, "bucket", None, padding)
        predicted = predict_step(values, batch_lengths).numpy()  # (batch, time, features | vocab)
        real = length_mask_np(batch_lengths, values.shape[1], padding)  # (batch, time)
        for row, i in enumerate(indices):
            steps = predicted[row][real[row]]  # (length_i, features | vocab)
            if isinstance(run.transform, Vocabulary):
                outputs[i] = run.transform.decode(steps.argmax(axis=-1))  # (length_i,) tokens
            else:
                outputs[i] = (steps * run.transform.std + run.transform.mean).astype(np.float32)
    return seqs, outputs
