"""The 64-bit hash of a sequence id, vectorized over an array of ids.

:func:`id_hashes` is a pure function of each id's text, the same in any array or shard: the
index keeps its low 32 bits as a check of a read (``ShardIndex.checks``), the duplicate
check compares all 64, and the holdout rule (:mod:`._holdout`) mixes it with the seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["id_hashes"]

_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise on uint64 (wrapping): a bijection in which every
    input bit flips each output bit with probability about 1/2."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def id_hashes(ids: np.ndarray) -> np.ndarray:
    """``(n,)`` uint64: a 64-bit hash of each id (FNV-1a over its code points, then
    ``_mix64``); a pure function of the id's text, the same in any array or shard.

    Vectorized: one pass of numpy over the ids per character of the longest one, not a
    Python loop over the ids (the index pass it is part of: BENCHMARKS.md, "Streaming")."""
    text = np.ascontiguousarray(np.asarray(ids).astype(str, copy=False))  # (n,) fixed-width unicode
    n = text.shape[0]
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    width = text.dtype.itemsize // 4
    if n == 0 or width == 0:
        return _mix64(h)
    chars = text.view(np.uint32).reshape(n, width)  # (n, width): code points, 0 past the end
    size = np.char.str_len(text)  # (n,): NULs inside an id count, the padding after it does not
    for j in range(width):
        live = size > j
        h = np.where(live, (h ^ chars[:, j].astype(np.uint64)) * _FNV_PRIME, h)
    return _mix64(h)
