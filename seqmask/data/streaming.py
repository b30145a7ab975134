"""Sharded data as a training split: sequences read from their shards when a batch needs them.

`ShardedSequences` is one split (training or validation) of a `ShardIndex`: its positions
and lengths are in memory (8 bytes a sequence), its ids and values are not. `take(rows)`
reads the rows' shards (the index keeps the last few decoded) and applies the run's
normalization, which is elementwise, so a batch gets bit for bit the values an in-memory
split would give it. With `data.streaming: off` the same object holds every sequence,
read once (`resident`): the batches, and so the numbers, are the same either way.

`Prefetcher` pads the batches of an epoch ahead of the training step in a background
thread (numpy and the readers release the GIL), so the step waits on disk only when
reading is slower than training; `waited` says how long it did.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from seqmask.data import Normalizer, Sequences
from seqmask.data.shards import Reader, ShardIndex

# streaming: auto streams when the float32 values would take more than this share of the
# machine's memory: reading them all in peaks at several times their size (the shards'
# arrays, their concatenation, float64 normalization; the measured peak is in BENCHMARKS.md,
# "Streaming", "Memory, in-memory path"), so a tenth keeps that near half the memory.
AUTO_MEMORY_SHARE = 0.1


@dataclass(eq=False)
class ShardedSequences:
    """One split of sharded data: `positions` (ascending) of `index`, normalized by `transform`."""

    index: ShardIndex
    positions: np.ndarray  # (n,) int32 (int64 past 2^31): global positions in the index, ascending
    read: Reader
    transform: Normalizer
    source: str
    cache_shards: int = 2  # decoded shards kept (a window's worth while training)
    resident: Sequences | None = None  # data.streaming: off: every sequence, transformed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    sequences_read: int = field(default=0, init=False)  # by take() from the shards, so far
    # Gathered once: every batch looks up its lengths, and n can be 10^7.
    lengths: np.ndarray = field(init=False, repr=False)  # (n,) int32
    # (shards + 1,): the split's rows of shard s are bounds[s] .. bounds[s + 1], as the
    # positions ascend; batches are drawn shard by shard with no per-sequence shard array.
    bounds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lengths = self.index.lengths[self.positions]
        self.bounds = np.searchsorted(self.positions, self.index.offsets).astype(np.int64)

    def id_at(self, row: int) -> str:
        """The id of split row `row` (read from its shard: the index keeps no ids)."""
        return str(self.take(np.asarray([row])).ids[0])

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum(dtype=np.int64))

    @property
    def num_features(self) -> int:
        return self.index.num_features

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.index.feature_names

    is_tokens = False

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def take(self, rows: np.ndarray) -> Sequences:
        """The transformed sequences of split rows `rows`, in that order."""
        if self.resident is not None:
            return self.resident.subset(rows)
        with self._lock:  # the index's shard cache is shared by the prefetcher and scoring
            raw = self.index.read(self.positions[rows], self.read, max_cached_shards=self.cache_shards)
            self.sequences_read += len(raw)
        return self.transform.apply(raw)

    def load_all(self) -> ShardedSequences:
        """The same split with every sequence read now and kept in memory."""
        every = np.arange(len(self))
        return ShardedSequences(
            self.index, self.positions, self.read, self.transform, self.source, self.cache_shards, self.take(every)
        )

    def in_memory(self) -> Sequences | None:
        """Every sequence, if they are held in memory (data.streaming: off), else None."""
        return self.resident

    def scoring_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Deterministic batches for scoring: shard by shard (`cache_shards` at a time, so
        each shard is read once), by length within, as `inference_batches` does in memory.
        Made as they are used: a list of every batch would hold all their row arrays at once."""
        present = np.flatnonzero(np.diff(self.bounds))
        for w in range(0, len(present), self.cache_shards):
            members = rows_in(self.bounds, present[w : w + self.cache_shards])
            members = members[np.argsort(self.lengths[members], kind="stable")]
            for i in range(0, len(members), batch_size):
                yield members[i : i + batch_size]


def rows_in(bounds: np.ndarray, shards: np.ndarray) -> np.ndarray:
    """(k,) int64: the split rows of `shards` (ascending), given the split's `bounds`."""
    return np.concatenate([np.arange(bounds[s], bounds[s + 1]) for s in shards])


def should_stream(mode: str, index: ShardIndex, memory_bytes: int | None = None) -> bool:
    """`data.streaming`: on, off, or auto: stream when the values as float32 would take
    more than AUTO_MEMORY_SHARE (a tenth) of this machine's physical memory."""
    if mode != "auto":
        return mode == "on"
    if memory_bytes is None:
        memory_bytes = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return index.num_steps * index.num_features * 4 > AUTO_MEMORY_SHARE * memory_bytes


T = TypeVar("T")


class Prefetcher(Generic[T]):
    """Makes `make(k)` for k = start, start + 1, ... < stop in a background thread, at most
    `depth` ahead; `get(k)` returns them in order. An error in the thread is raised by get."""

    def __init__(self, make: Callable[[int], T], start: int, stop: int, depth: int = 4) -> None:
        self._queue: queue.Queue[tuple[int, T | None, BaseException | None]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.waited = 0.0  # seconds get() spent waiting for a batch
        self._thread = threading.Thread(
            target=self._run, args=(make, start, stop), name="seqmask-prefetch", daemon=True
        )
        self._thread.start()

    def _run(self, make: Callable[[int], T], start: int, stop: int) -> None:
        for k in range(start, stop):
            if self._stop.is_set():
                return
            try:
                item: tuple[int, T | None, BaseException | None] = (k, make(k), None)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                item = (k, None, e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def get(self, k: int) -> T:
        started = time.perf_counter()
        got, value, error = self._queue.get()
        self.waited += time.perf_counter() - started
        if error is not None:
            raise error
        assert got == k and value is not None, (got, k)
        return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
