"""The normalization statistics of a set of shards, merged shard by shard.

Each shard's (count, mean, M2, min, max) is computed in float64 by two passes, and the
shards' are merged with Chan et al.'s parallel update, so that the result matches
:meth:`Normalizer.fit <seqmask.data.Normalizer.fit>` of all the data at once to float32
rounding, with no sum of squares that cancels catastrophically when values sit far from 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows per chunk when a shard's statistics are computed: bounds the float64 temporaries
# to ~chunk * features * 8 bytes, whatever the size of the shard.
_CHUNK_ROWS = 1 << 16


@dataclass(frozen=True, eq=False)
class _Stats:
    """Streaming moments of every feature over ``count`` real steps."""

    count: int
    mean: np.ndarray  # (features,) float64
    m2: np.ndarray  # (features,) float64: Σ (x - mean)²
    minimum: np.ndarray  # (features,) float64; +inf when count == 0
    maximum: np.ndarray  # (features,) float64; -inf when count == 0

    @classmethod
    def empty(cls, num_features: int) -> _Stats:
        zeros = np.zeros(num_features, dtype=np.float64)
        return cls(0, zeros, zeros.copy(), np.full(num_features, np.inf), np.full(num_features, -np.inf))

    @classmethod
    def of(cls, values: np.ndarray) -> _Stats:
        """Two passes over ``values`` ``(steps, features)``, in float64 chunks of rows:
        mean = Σx / n, then M2 = Σ (x - mean)²; exact where a one-pass Σx² - n·mean²
        would cancel."""
        n, num_features = values.shape
        if n == 0:
            return cls.empty(num_features)
        total = np.zeros(num_features, dtype=np.float64)
        for start in range(0, n, _CHUNK_ROWS):
            total += values[start : start + _CHUNK_ROWS].sum(axis=0, dtype=np.float64)
        mean = total / n
        m2 = np.zeros(num_features, dtype=np.float64)
        for start in range(0, n, _CHUNK_ROWS):
            dev = values[start : start + _CHUNK_ROWS].astype(np.float64) - mean  # (chunk, features)
            m2 += np.einsum("ij,ij->j", dev, dev)
        return cls(
            n,
            mean,
            m2,
            values.min(axis=0).astype(np.float64),
            values.max(axis=0).astype(np.float64),
        )

    def merge(self, b: _Stats) -> _Stats:
        """Chan, Golub and LeVeque's parallel update of two sets of moments:

        n = n_a + n_b;  δ = mean_b − mean_a;  mean = mean_a + δ·n_b/n;
        M2 = M2_a + M2_b + δ²·n_a·n_b/n.
        """
        a = self
        if b.count == 0:
            return a
        if a.count == 0:
            return b
        n = a.count + b.count
        delta = b.mean - a.mean  # (features,)
        mean = a.mean + delta * (b.count / n)
        m2 = a.m2 + b.m2 + delta * delta * (a.count * b.count / n)
        return _Stats(n, mean, m2, np.minimum(a.minimum, b.minimum), np.maximum(a.maximum, b.maximum))
