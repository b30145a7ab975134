"""Sequences -> batches of indices, and batches of indices -> padded arrays.

`bucket` (the default) sorts sequences by length and cuts the sorted order into batches, so
each batch is padded only to its own longest sequence: with widely varying lengths this
removes most of the padded work that `pad_to_max` (every batch padded to the longest
sequence of the dataset) spends. Batch order is shuffled every epoch.

A batch is padded to exactly its longest sequence. The training and scoring steps are
traced once for any batch shape (their input signatures leave batch and time open), so
varied shapes cost nothing; rounding lengths up would only add padded work.

Everything random here is a pure function of (seed, epoch): an interrupted run that resumes
at epoch e, batch k gets exactly the batches it would have got.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Literal, overload

import numpy as np

from seqmask.config import Batching, Padding, check_choice
from seqmask.data import Sequences, pad
from seqmask.data.streaming import ShardedSequences, rows_in

# train.batch_size: auto. The bounds: below 4 the per-batch overhead dominates and the
# gradient is noisy; above 32 the updates per epoch shrink with no gain on the benchmarks.
AUTO_MIN_BATCH, AUTO_MAX_BATCH = 4, 32
AUTO_UPDATES_PER_EPOCH = 8
# The batch evaluate, encode and validation use under "auto": any batching gives the same
# numbers (to float rounding), so it is chosen for speed alone.
AUTO_INFERENCE_BATCH = 32


def batch_size_for(batch_size: int | Literal["auto"], num_sequences: int) -> int:
    """train.batch_size as a number for a training split of `num_sequences`.

    "auto": the largest power of two <= num_sequences / 8 (so an epoch is at least about
    8 updates), clamped to 4 .. 32. A pure function of the split's size, so a resumed run
    gets the batches it would have got.
    """
    if batch_size != "auto":
        return int(batch_size)
    target = max(num_sequences // AUTO_UPDATES_PER_EPOCH, 1)
    power = 1 << (target.bit_length() - 1)  # largest power of two <= target
    return min(max(power, AUTO_MIN_BATCH), AUTO_MAX_BATCH)


def inference_batch_size(batch_size: int | Literal["auto"]) -> int:
    """The batch for scoring and encoding: the configured one, or 32 under "auto"."""
    return AUTO_INFERENCE_BATCH if batch_size == "auto" else int(batch_size)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The random generator of one epoch; independent of every other epoch's."""
    return np.random.default_rng([seed, epoch])


def training_batches(
    lengths: np.ndarray, batch_size: int, batching: Batching, seed: int, epoch: int
) -> list[np.ndarray]:
    """One epoch's batches: a list of index arrays covering every sequence once."""
    check_choice("batching", batching, Batching)
    return _bucketed(np.arange(len(lengths)), lengths, batch_size, batching, epoch_rng(seed, epoch))


def _bucketed(
    members: np.ndarray, lengths: np.ndarray, batch_size: int, batching: Batching, rng: np.random.Generator
) -> list[np.ndarray]:
    """`members` (indices into `lengths`) cut into batches, in a random batch order."""
    order = members[rng.permutation(len(members))]
    if batching == "bucket":
        # Random tie-break among equal lengths (the permutation above), so equal-length
        # sequences meet new neighbours every epoch, then a stable sort by length.
        order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class WindowedEpoch(Sequence[np.ndarray]):
    """One epoch's batches over sharded data, made one window at a time.

    The shards in a random order, cut into windows of `window` shards; each window's
    sequences bucketed and shuffled as `training_batches` does. A window's batches need
    only its shards, so a streaming reader holds `window` shards at a time; within a
    window the padding is what bucketing over that many sequences gives.

    `bounds` (shards + 1,) gives each shard's rows of the split, `bounds[s]` to
    `bounds[s + 1]` (a split of sharded data keeps the index's order). Only the batches
    of the last two windows asked for are held: a list of every batch of 10^7 sequences
    would take ~100 MB, more than the index itself.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        bounds: np.ndarray,
        batch_size: int,
        batching: Batching,
        seed: int,
        epoch: int,
        window: int,
    ) -> None:
        check_choice("batching", batching, Batching)
        self._lengths, self._bounds = lengths, np.asarray(bounds, dtype=np.int64)
        self._batch_size, self._batching, self._seed, self._epoch = batch_size, batching, seed, epoch
        self._window_size = window
        counts = np.diff(self._bounds)  # (shards,): rows of the split in each shard
        present = np.flatnonzero(counts)
        order = present[epoch_rng(seed, epoch).permutation(len(present))]
        self._windows = [np.sort(order[w : w + window]) for w in range(0, len(order), window)]
        per_window = [-(-int(counts[shards].sum()) // batch_size) for shards in self._windows]
        self._first = np.concatenate([[0], np.cumsum(per_window, dtype=np.int64)])  # (windows + 1,)
        self._lock = threading.Lock()
        self._made: OrderedDict[int, list[np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return int(self._first[-1])

    @overload
    def __getitem__(self, k: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, k: slice) -> list[np.ndarray]: ...
    def __getitem__(self, k: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if not 0 <= k < len(self):
            raise IndexError(f"batch {k} of an epoch of {len(self)}")
        w = int(np.searchsorted(self._first, k, side="right")) - 1
        return self._batches_of(w)[k - int(self._first[w])]

    def _batches_of(self, w: int) -> list[np.ndarray]:
        with self._lock:  # the prefetcher and the training loop both ask
            if w not in self._made:
                members = rows_in(self._bounds, self._windows[w])
                rng = np.random.default_rng([self._seed, self._epoch, w * self._window_size])
                self._made[w] = _bucketed(members, self._lengths, self._batch_size, self._batching, rng)
                while len(self._made) > 2:
                    self._made.popitem(last=False)
            self._made.move_to_end(w)
            return self._made[w]


def windowed_batches(
    lengths: np.ndarray, bounds: np.ndarray, batch_size: int, batching: Batching, seed: int, epoch: int, window: int
) -> WindowedEpoch:
    """One epoch's batches over sharded data: see `WindowedEpoch`."""
    return WindowedEpoch(lengths, bounds, batch_size, batching, seed, epoch, window)


def epoch_batches(
    seqs: Sequences | ShardedSequences, batch_size: int, batching: Batching, seed: int, epoch: int, window: int
) -> Sequence[np.ndarray]:
    """One epoch's training batches: `windowed_batches` for sharded data (whether it is
    streamed or held in memory: the same batches either way), else `training_batches`."""
    if isinstance(seqs, ShardedSequences):
        return windowed_batches(seqs.lengths, seqs.bounds, batch_size, batching, seed, epoch, window)
    return training_batches(seqs.lengths, batch_size, batching, seed, epoch)


def inference_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Deterministic batches for evaluate / encode: by length, no shuffling."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def batch_time_len(lengths: np.ndarray, batching: Batching, max_len: int | None) -> int:
    """The time length a batch is padded to."""
    if batching == "pad_to_max":
        if max_len is None:
            raise ValueError("pad_to_max batching needs max_len, the length every batch is padded to")
        return int(max_len)
    return int(np.max(lengths))


def padded_batch(
    seqs: Sequences | ShardedSequences,
    indices: np.ndarray,
    batching: Batching,
    max_len: int | None,
    padding: Padding,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(values (batch, time, features) float32, lengths (batch,) int32) for `indices`.

    `rows`: of streamed data, read and pad only these rows of the batch (a worker's part
    of it); the others stay 0 and must not be used. The lengths are every row's (the
    index has them), so the time length is the whole batch's."""
    lengths = seqs.lengths[indices]
    time_len = batch_time_len(lengths, batching, max_len)
    if isinstance(seqs, ShardedSequences):  # read from the shards (or the resident copy)
        if rows is None or seqs.resident is not None:
            return pad(seqs.take(indices), np.arange(len(indices)), time_len, padding), lengths.astype(np.int32)
        values = np.zeros((len(indices), time_len, seqs.num_features), np.float32)  # (batch, time, features)
        if len(rows):
            values[rows] = pad(seqs.take(indices[rows]), np.arange(len(rows)), time_len, padding)
        return values, lengths.astype(np.int32)
    return pad(seqs, indices, time_len, padding), lengths.astype(np.int32)


def scoring_batches(seqs: Sequences | ShardedSequences, batch_size: int) -> Iterable[np.ndarray]:
    """Deterministic batches for scoring `seqs`: by length, or, for sharded data, by
    length within groups of shards (each shard read once)."""
    if isinstance(seqs, ShardedSequences):
        return seqs.scoring_batches(batch_size)
    return inference_batches(seqs.lengths, batch_size)
