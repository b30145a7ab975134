"""The index of a set of shards: :class:`ShardIndex`, what it holds and what it does.

It holds, in global order (shard by shard, row by row), every sequence's length, a 32-bit
check of its id and whether it is held out, plus each shard's first position, size and
modification time, and the training split's normalization statistics. It gives the
normalizer, checks that the shards have not changed since (:meth:`ShardIndex.check_unchanged`),
and reads sequences back by position (:meth:`ShardIndex.read`). Its file format is
:mod:`._saved`; building one is :mod:`._build`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seqmask.data import Normalizer, Sequences
from seqmask.data.readers import show
from seqmask.data.shards._ids import id_hashes
from seqmask.data.shards._memory import unpin_freed_shards
from seqmask.data.shards._saved import load_fields, write_index
from seqmask.data.shards._shard import Reader, _ShardCache, _stat
from seqmask.errors import DataError

__all__ = ["ShardIndex"]


@dataclass(frozen=True, eq=False)
class ShardIndex:
    """Where every sequence of a set of shards lives, which are held out for validation,
    and the statistics of the training sequences' steps.

    The per-sequence arrays are in global order: shard by shard, then row order within
    the shard, so shard ``s`` holds positions ``offsets[s]`` to ``offsets[s + 1]`` and
    position ``i`` is row ``i - offsets[s]`` of it. They are kept small, because n can be
    10^7 and they stay in memory while training: 9 bytes a sequence (a 4-byte length, a
    4-byte check of the id, the split), not the ids themselves; a read gets the ids
    from the shard. ``sizes`` and ``mtimes`` are each shard's size in bytes and
    ``st_mtime_ns`` when it was indexed (before it was read, so a change during the read
    shows up as a change). ``feature_names`` are the first shard's (every shard's must
    be the same), ``()`` when the files have none.
    """

    shards: tuple[str, ...]  # absolute paths
    sizes: np.ndarray  # (shards,) int64
    mtimes: np.ndarray  # (shards,) int64, st_mtime_ns
    offsets: np.ndarray  # (shards + 1,) int64: shard s holds positions offsets[s] .. offsets[s + 1]
    lengths: np.ndarray  # (n,) int32
    checks: np.ndarray  # (n,) uint32: the low 32 bits of id_hashes(ids), to check a read
    num_features: int
    count: int  # real steps over all shards
    mean: np.ndarray  # (features,) float64
    m2: np.ndarray  # (features,) float64: Σ (x - mean)² over every real step
    minimum: np.ndarray  # (features,) float64
    maximum: np.ndarray  # (features,) float64
    feature_names: tuple[str, ...] = ()
    # (n,) bool: the sequences held out for validation (see `holdout`); the statistics
    # above are over the other sequences' steps, the training split's. Empty: none held out.
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # The shards read() decoded last; state, not data (not saved).
    _cache: _ShardCache = field(default_factory=lambda: _ShardCache(), init=False, repr=False)

    @property
    def num_sequences(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum(dtype=np.int64))

    def shard_of(self, positions: np.ndarray) -> np.ndarray:
        """(m,) int64: the shard of each global position."""
        return np.searchsorted(self.offsets, positions, side="right").astype(np.int64) - 1

    def rows_of(self, shard: int) -> tuple[int, int]:
        """The global positions [start, stop) of shard ``shard``'s rows."""
        return int(self.offsets[shard]), int(self.offsets[shard + 1])

    @property
    def held_out(self) -> np.ndarray:
        """(n,) bool: True for the sequences held out for validation."""
        return self.validation if self.validation.shape[0] else np.zeros(self.num_sequences, dtype=bool)

    def __repr__(self) -> str:
        return (
            f"ShardIndex(shards={len(self.shards)}, n={self.num_sequences}, steps={self.num_steps}, "
            f"features={self.num_features})"
        )

    # -- normalization -----------------------------------------------------------------

    def normalizer(self) -> Normalizer:
        """The standardization of all the steps, by the rule of :meth:`Normalizer.fit`:
        population std = sqrt(M2 / count); std 1 for a feature that is constant
        (max == min) or whose std is not finite or not > 0; mean 0 where not finite.
        ``ValueError`` for an index of no steps, as ``fit`` of no data."""
        if self.count == 0:
            raise ValueError("cannot fit a normalizer on no data")
        with np.errstate(invalid="ignore"):
            std = np.sqrt(self.m2 / self.count)  # (features,)
            constant = (self.maximum == self.minimum) | ~np.isfinite(std) | ~(std > 0)
        std = np.where(constant, 1.0, std)
        mean = np.where(np.isfinite(self.mean), self.mean, 0.0)
        return Normalizer(mean, std)

    # -- saving --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """One ``.npz`` of plain arrays (strings as fixed-width unicode, scalars as 0-d
        arrays), written atomically: a kill leaves the old index or the new one."""
        write_index(self, path)

    @classmethod
    def load(cls, path: Path) -> ShardIndex:
        """Inverse of :meth:`save`. ``DataError`` naming ``path`` for a file that is not
        a shard index (missing, corrupt, or with inconsistent arrays)."""
        return cls(**load_fields(path))

    # -- the shards on disk ----------------------------------------------------------------

    def check_unchanged(self) -> None:
        """``DataError`` for the first shard that is missing, or whose size or
        modification time differs from the recorded ones: the run's index, statistics
        and split describe the old data."""
        fix = "the run trained on the old data: restore it, or start a new run"
        for k, shard in enumerate(self.shards):
            st = _stat(Path(shard), f"missing since the run's index was built; {fix}")
            size, mtime = int(self.sizes[k]), int(self.mtimes[k])
            if st.st_size != size:
                change = f"size {size} -> {st.st_size} bytes"
            elif st.st_mtime_ns != mtime:
                change = f"modified {_when(st.st_mtime_ns)}, indexed as of {_when(mtime)}"
            else:
                continue
            raise DataError(f"{shard}: changed since the run's index was built ({change}); {fix}")

    # -- reading -------------------------------------------------------------------------

    def read(self, positions: np.ndarray, read: Reader, *, max_cached_shards: int = 2) -> Sequences:
        """The sequences at global ``positions`` ``(m,)``, in that order (repeats allowed).

        Each shard needed is decoded once per call (by ``read``, the reader the index was
        built with), or taken from a small LRU of the ``max_cached_shards`` shards
        decoded last (0: none), kept while the same ``read`` is passed. The values are
        copies of the shards' own, so bit-identical to slicing all the shards read into
        memory and concatenated. ``DataError`` if a shard no longer holds the sequences
        the index says it does.
        """
        unpin_freed_shards()
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)  # (m,)
        n = self.num_sequences
        if pos.size and (int(pos.min()) < 0 or int(pos.max()) >= n):
            raise IndexError(f"position out of range for {n} sequences")
        shard_of = self.shard_of(pos)  # (m,)
        if pos.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            values = np.zeros((0, self.num_features), np.float32)
            return Sequences(values, empty, empty.astype(str), self._source(set()), self.feature_names)
        order = np.argsort(shard_of, kind="stable")  # (m,): the output slots grouped by shard
        bounds = np.flatnonzero(np.diff(shard_of[order])) + 1
        pieces: list[Sequences] = []
        for slots in np.split(order, bounds):  # a loop per shard
            s = int(shard_of[slots[0]])
            seqs = self._decoded(s, read, max_cached_shards)
            try:
                rows = self._rows_in(s, seqs, pos[slots] - int(self.offsets[s]), pos[slots])
            except DataError:
                self._cache.drop(s)  # read it again next time: it may be restored
                raise
            pieces.append(seqs.subset(rows))
        grouped = Sequences(
            np.concatenate([p.values for p in pieces]),  # (steps, features), in `order`
            np.concatenate([p.lengths for p in pieces]),
            np.concatenate([p.ids for p in pieces]),
            self._source({int(s) for s in shard_of}),
            pieces[0].feature_names,
        )
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)  # output slot j is grouped[inverse[j]]
        return grouped.subset(inverse)

    def _rows_in(self, s: int, seqs: Sequences, rows: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """``rows`` (k,) of shard ``s`` (decoded as ``seqs``), the global positions ``pos``,
        once checked that they hold the lengths and ids (by their check) the index recorded."""
        stop = " it changed since the index was built: restore it, or start a new run"
        held = self.offsets[s + 1] - self.offsets[s]
        if len(seqs) != held:
            raise DataError(f"{self.shards[s]}: holds {len(seqs)} sequences, but the index has {held};{stop}")
        ids = seqs.ids[rows]  # (k,)
        other_id = id_hashes(ids).astype(np.uint32) != self.checks[pos]
        bad = np.flatnonzero(other_id | (seqs.lengths[rows] != self.lengths[pos]))
        if bad.size:
            j = int(bad[0])
            was = "another id" if other_id[j] else "that id"
            raise DataError(
                f"{self.shards[s]}: row {int(rows[j])} is sequence {show(str(ids[j]))} of "
                f"{int(seqs.lengths[rows[j]])} steps, but the index has a sequence of {int(self.lengths[pos[j]])} "
                f"steps with {was} there;{stop}"
            )
        return rows

    def _decoded(self, s: int, read: Reader, max_cached: int) -> Sequences:
        """Shard ``s`` decoded, from the LRU when it holds it, else by ``read``."""
        hit = self._cache.get(s, read)
        if hit is not None:
            return hit
        seqs = read(Path(self.shards[s]))
        self._cache.put(s, read, seqs, max_cached)
        return seqs

    def _source(self, used: set[int]) -> str:
        """The ``source`` of a read: the one shard, or the directory all the shards share."""
        if len(used) == 1:
            return self.shards[next(iter(used))]
        return os.path.commonpath(self.shards) if self.shards else ""


def _when(ns: int) -> str:
    """A ``st_mtime_ns`` for a message: UTC to the nanosecond."""
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{rest:09d} UTC"
