"""One shard file: how it is decoded (:data:`Reader`), stat-ed, checked, and kept decoded.

A :data:`Reader` is ``read_sequences`` with the config's format and keys, bound with
``functools.partial``; :func:`_read_numeric` is a read for the index (numbers only,
lengths that fit int32); :class:`_ShardCache` is the LRU of decoded shards behind
:meth:`ShardIndex.read <seqmask.data.shards.ShardIndex.read>`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError

__all__ = ["Reader"]

# What build_index and ShardIndex.read call to decode one shard: read_sequences with the
# config's format and keys, bound with functools.partial.
Reader = Callable[[Path], Sequences]


def _stat(path: Path, missing: str) -> os.stat_result:
    """`os.stat(path)`, or a DataError naming the file: `missing` when it is not there."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot access the file ({e.strerror or e})") from None


def _read_numeric(path: Path, read: Reader) -> Sequences:
    """One shard, read: numbers only, lengths that fit int32."""
    seqs = read(path)  # its DataError names the file: it comes through unchanged
    if seqs.values.dtype != np.float32:
        form = "tokens" if seqs.is_tokens else "token ids"
        raise DataError(f"{path}: holds {form}; streaming from shards supports numeric values only for now")
    if len(seqs) and int(seqs.lengths.max()) >= 2**31:
        raise DataError(f"{path}: a sequence of {int(seqs.lengths.max())} steps; at most 2^31 - 1 are supported")
    return seqs


class _ShardCache:
    """An LRU of decoded shards by shard number, for :meth:`ShardIndex.read`.

    It holds the shards of one reader at a time: another ``read`` callable (other
    options, say) empties it, so a shard is never served as another reader decoded
    it. The lock guards the dictionary only; decoding runs outside it, so two threads
    may decode the same shard at once (the later one is kept)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reader: Reader | None = None
        self._shards: OrderedDict[int, Sequences] = OrderedDict()

    def get(self, s: int, read: Reader) -> Sequences | None:
        with self._lock:
            if self._reader is not read:
                self._shards.clear()
                self._reader = read
            hit = self._shards.get(s)
            if hit is not None:
                self._shards.move_to_end(s)
            return hit

    def drop(self, s: int) -> None:
        with self._lock:
            self._shards.pop(s, None)

    def put(self, s: int, read: Reader, seqs: Sequences, max_cached: int) -> None:
        with self._lock:
            if self._reader is read and max_cached > 0:
                self._shards[s] = seqs
                self._shards.move_to_end(s)
            while len(self._shards) > max(max_cached, 0):
                self._shards.popitem(last=False)
