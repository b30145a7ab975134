"""The validation split of sharded data: the holdout rule and the split positions.

:class:`Holdout` decides for each id alone, by a seeded hash of it (:func:`id_hashes`,
vectorized), so the validation set depends only on the ids: the same data cut into any
number of shards, in any order, splits the same way. :func:`split_positions` turns an
index's held-out mask into the (train, validation) positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from seqmask.data.shards._ids import _FNV_OFFSET, _mix64, id_hashes
from seqmask.data.shards._stats import _CHUNK_ROWS

if TYPE_CHECKING:
    from seqmask.data.shards._index import ShardIndex

__all__ = ["Holdout", "holdout", "split_positions"]


@dataclass(frozen=True)
class Holdout:
    """The validation split as a rule for each id alone: held out when a seeded mix of the
    id's hash, as a fraction of 2^64, is below ``fraction``. So a shard can be split (and
    its training statistics computed) as it is read, and the split depends only on the
    ids and the seed, not on how many shards hold them or in which order. The number
    held out is about fraction · n (binomial), not exactly; a handful of sequences may
    hold out none, and training then watches the training loss."""

    fraction: float
    seed: int

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        """(n,) bool: which of ``ids`` are held out."""
        return self.of_hashes(id_hashes(ids))

    def of_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """(n,) bool, from the ids' ``id_hashes``."""
        if self.fraction == 0.0:
            return np.zeros(hashes.shape[0], dtype=bool)
        key = _mix64(np.asarray([int(self.seed) % 2**64], dtype=np.uint64) + _FNV_OFFSET)  # (1,)
        threshold = np.uint64(min(int(self.fraction * 2.0**64), 2**64 - 1))
        return _mix64(hashes ^ key) < threshold


def holdout(fraction: float, seed: int) -> Holdout:
    """The :class:`Holdout` of ``fraction`` in [0, 1) under ``seed``."""
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    return Holdout(fraction, int(seed))


def _nonzero(mask: np.ndarray) -> np.ndarray:
    """np.flatnonzero as int32 (int64 past 2^31 sequences), in chunks: half the memory of
    flatnonzero's int64, with no int64 copy on the way."""
    n = mask.shape[0]
    out = np.empty(int(np.count_nonzero(mask)), dtype=np.int32 if n < 2**31 else np.int64)
    at = 0
    for start in range(0, n, _CHUNK_ROWS):
        chunk = np.flatnonzero(mask[start : start + _CHUNK_ROWS])
        out[at : at + chunk.size] = chunk + start
        at += chunk.size
    return out


def split_positions(index: ShardIndex) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions of the index, both sorted ascending (int32 below 2^31
    sequences: the training split keeps its positions while it trains)."""
    held = index.held_out
    return _nonzero(~held), _nonzero(held)
