"""Data larger than memory, part 1: the index of a set of shard files.

A shard is a data file of many sequences (``.npz``, ``.parquet``, ``.jsonl``,
``.jsonl.gz``); a dataset too large for memory is a directory, or a glob pattern,
of such shards. Training will stream batches from them, and for that it needs,
before the first batch, what today's in-memory path learns by reading everything:
every sequence's length and where it lives, and the statistics of the normalizer.
:func:`build_index` reads each shard once to get them and keeps nothing else, so
memory holds the values of at most ``2 * threads`` shards at a time, and 9 bytes a
sequence: its length, a 32-bit check of its id, whether it is held out. Where it lives
is implied by the order (shard by shard, row by row) and each shard's first position;
ids are not kept (what that saves: BENCHMARKS.md, "Streaming"): a read gets them from
the shard, checked against the index's check.

The :class:`ShardIndex` is saved with the run (one ``.npz``, no pickles). It also
records each shard's size and modification time: a run resumed on shards that have
changed since would silently train on other data, so :meth:`ShardIndex.check_unchanged`
refuses them.

The normalization statistics are merged shard by shard with Chan et al.'s parallel
update of (count, mean, M2), each shard's own in float64 by two passes, so that the
result matches :meth:`Normalizer.fit <seqmask.data.Normalizer.fit>` of all the data
at once to float32 rounding, with no sum of squares that cancels catastrophically
when values sit far from 0.

:func:`split_positions` splits by a seeded hash of each id (:func:`id_hashes`,
vectorized), so the validation set depends only on the ids: the same data cut into any
number of shards, in any order, splits the same way.

Modules (private; the names below are the package's face)
---------------------------------------------------------
``_discovery``
    :func:`find_shards` and :data:`SHARD_FORMATS`: which files of a directory or glob are shards.
``_shard``
    One shard file: the :data:`Reader` type, the checked read and stat of a shard, the
    LRU of decoded shards.
``_memory``
    :func:`unpin_freed_shards`: glibc's mmap threshold, so a dropped shard's memory goes back.
``_ids``
    :func:`id_hashes`: the 64-bit hash of an id.
``_holdout``
    The holdout rule (:class:`Holdout`, :func:`holdout`) and :func:`split_positions`.
``_stats``
    The per-shard moments and their merge (``_Stats``).
``_index``
    :class:`ShardIndex`: positions, normalizer, the unchanged check, reads by position.
``_saved``
    The index's ``.npz`` file: its version, writing it, and the checks on loading it.
``_unique``
    The duplicate check: no id in two places across the shards.
``_build``
    :func:`build_index` and :func:`read_all`: every shard read once.

May import numpy, the readers (through their face), the rest of `seqmask.data`,
`seqmask.config` and `seqmask.errors`; never TensorFlow or Keras.
"""

from seqmask.data.shards._build import build_index, read_all
from seqmask.data.shards._discovery import SHARD_FORMATS, find_shards
from seqmask.data.shards._holdout import Holdout, holdout, split_positions
from seqmask.data.shards._ids import id_hashes
from seqmask.data.shards._index import ShardIndex
from seqmask.data.shards._memory import unpin_freed_shards
from seqmask.data.shards._shard import Reader
from seqmask.data.shards._stats import _Stats as _Stats  # for tests/data/test_shards.py

__all__ = [
    "SHARD_FORMATS",
    "Holdout",
    "Reader",
    "ShardIndex",
    "build_index",
    "find_shards",
    "holdout",
    "id_hashes",
    "read_all",
    "unpin_freed_shards",
    "split_positions",
]
