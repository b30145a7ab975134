"""Reading every shard once: :func:`build_index` (keeping only the index) and
:func:`read_all` (keeping everything, as one in-memory :class:`Sequences`).

:func:`build_index` summarizes the shards in worker threads (:func:`_summarize`: lengths,
id hashes, the holdout, statistics; never the values or the ids), combines the summaries
in shard order (:class:`_Combined`), then checks the ids across all the shards and gathers
the per-shard arrays into the :class:`ShardIndex`. Both check the shards alike: the first
shard's features (:func:`_check_like_first`) and no id twice (:mod:`._unique`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqmask.data import Sequences
from seqmask.data.shards._holdout import Holdout
from seqmask.data.shards._ids import id_hashes
from seqmask.data.shards._index import ShardIndex
from seqmask.data.shards._memory import unpin_freed_shards
from seqmask.data.shards._shard import Reader, _read_numeric, _stat
from seqmask.data.shards._stats import _Stats
from seqmask.data.shards._unique import _check_unique_across
from seqmask.errors import DataError

__all__ = ["build_index", "read_all"]


@dataclass(frozen=True, eq=False)
class _Summary:
    """What the index keeps of one shard: never its values or its ids."""

    path: Path
    size: int
    mtime: int  # st_mtime_ns
    hashes: np.ndarray  # (rows,) uint64: id_hashes of the ids
    lengths: np.ndarray  # (rows,) int32
    num_features: int
    feature_names: tuple[str, ...]
    held: np.ndarray  # (rows,) bool: held out for validation
    stats: _Stats  # over the steps of the rows not held out


def _summarize(path: Path, read: Reader, holdout: Holdout | None = None) -> _Summary:
    """Read one shard and keep its lengths, id hashes and statistics (runs in a worker
    thread; the values and ids are dropped when it returns). The shard is stat-ed before
    it is read."""
    st = _stat(path, "file not found")
    seqs = _read_numeric(path, read)
    hashes = id_hashes(seqs.ids)  # (rows,)
    held = holdout.of_hashes(hashes) if holdout is not None else np.zeros(len(seqs), dtype=bool)  # (rows,)
    kept = seqs.values if not held.any() else seqs.values[np.repeat(~held, seqs.lengths)]  # (steps, features)
    return _Summary(
        path,
        int(st.st_size),
        int(st.st_mtime_ns),
        hashes,
        seqs.lengths.astype(np.int32),
        seqs.num_features,
        seqs.feature_names,
        held,
        _Stats.of(kept),
    )


def read_all(shards: Sequence[Path], read: Reader) -> Sequences:
    """Every sequence of ``shards``, in shard order, each shard read once: a set of shards
    used as one in-memory file (``--data DIR`` of a run that is not sharded, say). Checked as
    :func:`build_index` checks them (the same features, no id twice); ``source`` is the
    shards' common directory."""
    unpin_freed_shards()
    paths = [Path(p) for p in shards]
    if not paths:
        raise DataError("no shard files to read")
    parts = [_read_numeric(p, read) for p in paths]
    for path, part in zip(paths[1:], parts[1:], strict=True):
        _check_like_first(
            _Shape(path, part.num_features, part.feature_names),
            _Shape(paths[0], parts[0].num_features, parts[0].feature_names),
        )
    counts = np.asarray([len(p) for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ids = np.concatenate([p.ids for p in parts])  # (n,)
    _check_unique_across([id_hashes(p.ids) for p in parts], offsets, paths, read)
    source = str(paths[0]) if len(paths) == 1 else os.path.commonpath([os.path.abspath(p) for p in paths])
    return Sequences(
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.lengths for p in parts]),
        ids,
        source,
        parts[0].feature_names,
    )


@dataclass(frozen=True)
class _Shape:
    """What every shard must share with the first: its features."""

    path: Path
    num_features: int
    feature_names: tuple[str, ...]


def build_index(
    shards: Sequence[Path],
    read: Reader,
    *,
    threads: int = 2,
    on_shard: Callable[[int, int], None] | None = None,
    holdout: Holdout | None = None,
) -> ShardIndex:
    """Read every shard once, with ``threads`` worker threads, and index them.

    Readers spend most of their time in numpy and pyarrow, which release the GIL, so
    threads overlap the reads. Results are combined in shard order, so the index (and
    which error is raised, when several shards are bad) does not depend on which read
    finishes first; at most ``2 * threads`` reads are queued, so after an error little
    more is read. ``on_shard(done, total)`` is called after each shard is combined.
    ``holdout`` (see :func:`holdout`) marks the validation sequences as each shard is
    read, so the statistics are the training split's and one pass is enough.

    Memory: the values of at most ``2 * threads`` shards, and 13 bytes a sequence
    at the end (8-byte id hashes, for the duplicate check, become the 4-byte checks).

    ``DataError`` (naming the shard) for: no shards; a shard's own reader error
    (unchanged); tokens (streaming supports numbers only for now); a feature count or
    feature names other than the first shard's; an id in two shards (both named).
    """
    unpin_freed_shards()
    paths = [Path(s) for s in shards]
    if not paths:
        raise DataError("no shard files to index")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return _index_of(_read_in_order(paths, read, threads, holdout, on_shard), paths, read)


@dataclass(eq=False)
class _Combined:
    """The shards' summaries combined in shard order, as :func:`build_index` reads them:
    the statistics merged, the per-shard arrays listed (for :func:`_gather`)."""

    first: _Summary | None = None
    stats: _Stats | None = None
    hashes: list[np.ndarray | None] = field(default_factory=list)
    lengths: list[np.ndarray | None] = field(default_factory=list)
    held: list[np.ndarray | None] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)

    def add(self, part: _Summary) -> None:
        """The next shard's summary: ``DataError`` unless it has the first one's features."""
        self.first = self.first or part
        _check_like_first(part, self.first)
        self.stats = part.stats if self.stats is None else self.stats.merge(part.stats)
        self.hashes.append(part.hashes)
        self.lengths.append(part.lengths)
        self.held.append(part.held)
        self.sizes.append(part.size)
        self.mtimes.append(part.mtime)


def _read_in_order(
    paths: list[Path],
    read: Reader,
    threads: int,
    holdout: Holdout | None,
    on_shard: Callable[[int, int], None] | None,
) -> _Combined:
    """Every shard summarized by ``threads`` workers, at most ``2 * threads`` queued, and
    combined in shard order; on an error the reads still queued are cancelled."""
    total = len(paths)
    combined = _Combined()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="seqmask-index") as pool:
        pending: deque[Future[_Summary]] = deque()
        queued = 0
        try:
            for done in range(1, total + 1):
                while queued < total and len(pending) < 2 * threads:
                    pending.append(pool.submit(_summarize, paths[queued], read, holdout))
                    queued += 1
                part = pending.popleft().result()  # re-raises the shard's error
                combined.add(part)
                if on_shard is not None:
                    on_shard(done, total)
                del part
        finally:
            for future in pending:
                future.cancel()
    return combined


def _index_of(combined: _Combined, paths: list[Path], read: Reader) -> ShardIndex:
    """The index of the combined summaries, once no id is in two places."""
    first, stats = combined.first, combined.stats
    assert first is not None and stats is not None
    lengths, hashes = combined.lengths, combined.hashes
    counts = np.asarray([len(x) for x in lengths if x is not None], dtype=np.int64)  # (shards,)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # (shards + 1,)
    _check_unique_across(hashes, offsets, paths, read)
    checks = _gather(hashes, offsets, np.uint32)  # (n,): the low 32 bits of each hash
    return ShardIndex(
        shards=tuple(os.path.abspath(p) for p in paths),
        sizes=np.asarray(combined.sizes, dtype=np.int64),
        mtimes=np.asarray(combined.mtimes, dtype=np.int64),
        offsets=offsets,
        lengths=_gather(lengths, offsets, np.int32),
        checks=checks,
        num_features=first.num_features,
        count=stats.count,
        mean=stats.mean,
        m2=stats.m2,
        minimum=stats.minimum,
        maximum=stats.maximum,
        feature_names=first.feature_names,
        validation=_gather(combined.held, offsets, np.bool_),
    )


def _check_like_first(part: _Summary | _Shape, first: _Summary | _Shape) -> None:
    """Every shard has the first one's features: their number, and names where the files name them."""
    if part.num_features != first.num_features:
        raise DataError(f"{part.path}: {part.num_features} features, but {first.path} has {first.num_features}")
    if part.feature_names != first.feature_names:
        mine = ", ".join(part.feature_names) or "none"
        theirs = ", ".join(first.feature_names) or "none"
        raise DataError(
            f"{part.path}: feature columns ({mine}) differ from those of {first.path} ({theirs}); "
            "every shard needs the same columns in the same order"
        )


def _gather(parts: list[np.ndarray | None], offsets: np.ndarray, dtype: Any) -> np.ndarray:
    """The per-shard ``parts`` in one array, each dropped from the list once copied: the
    peak is the result and one part, where ``np.concatenate`` holds every part as well."""
    out = np.empty(int(offsets[-1]), dtype=dtype)
    for s in range(len(parts)):
        out[int(offsets[s]) : int(offsets[s + 1])] = parts[s]
        parts[s] = None
    return out
