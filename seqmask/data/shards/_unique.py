"""The duplicate check: no sequence id in two places across a set of shards.

Done on the ids' 64-bit hashes (:func:`id_hashes`), a bucket of them at a time, so it
needs no sorted copy of all of them; a repeated hash is confirmed on the ids themselves,
read again from the shards that hold it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqmask.data.readers import show
from seqmask.data.shards._shard import Reader
from seqmask.errors import DataError

# The duplicate check sorts the hashes whose top 4 bits are b, for each b in turn: 1/16 of
# them at a time, so it needs no sorted copy of all of them.
_BUCKET_BITS = 4


def _check_unique_across(hashes: list[np.ndarray | None], offsets: np.ndarray, paths: list[Path], read: Reader) -> None:
    """``DataError`` for the first id (by its second appearance, in global order) that two
    sequences share, naming the shards of both.

    ``hashes`` are each shard's ``id_hashes``: equal ids have equal hashes, so no repeated
    hash means no repeated id. A repeated hash is confirmed on the ids themselves, read
    again from the shards that hold it: two distinct ids that share a 64-bit hash (odds
    about n² / 2^65) are not an error."""
    parts = [h for h in hashes if h is not None]
    shift = np.uint64(64 - _BUCKET_BITS)
    found: tuple[int, int] | None = None
    for bucket in range(1 << _BUCKET_BITS):
        chunk = np.concatenate([p[(p >> shift) == np.uint64(bucket)] for p in parts])  # (~n / 16,)
        chunk.sort()
        for value in np.unique(chunk[1:][chunk[1:] == chunk[:-1]]):  # nearly always none
            pair = _first_repeat_of(value, parts, offsets, paths, read)
            if pair is not None and (found is None or pair[1] < found[1]):
                found = pair
    if found is None:
        return
    i, j = found
    sa, sb = (int(np.searchsorted(offsets, x, side="right")) - 1 for x in (i, j))
    a, b = paths[sa], paths[sb]
    text = str(read(b).ids[j - int(offsets[sb])])
    where = f"twice in shard {a}" if a == b else f"in shards {a} and {b}"
    raise DataError(f"{b}: sequence id {show(text)} appears {where}; ids must be unique across all shards")


def _first_repeat_of(
    value: np.uint64, parts: list[np.ndarray], offsets: np.ndarray, paths: list[Path], read: Reader
) -> tuple[int, int] | None:
    """(earlier, later) global positions of the first id, among those hashing to ``value``,
    seen twice (by the later one), or None when they are all distinct ids."""
    seen: dict[str, int] = {}
    for s, part in enumerate(parts):
        rows = np.flatnonzero(part == value)
        if not rows.size:
            continue
        ids = read(paths[s]).ids
        for row in rows:
            text = str(ids[int(row)])
            if text in seen:
                return seen[text], int(offsets[s]) + int(row)
            seen[text] = int(offsets[s]) + int(row)
    return None
