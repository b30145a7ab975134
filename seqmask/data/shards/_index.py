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
ids are not kept (10^7 ids as fixed-width strings take ~0.5 GB): a read gets them from
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
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.npyio import NpzFile

from seqmask.atomic import atomic_path
from seqmask.data import Normalizer, Sequences
from seqmask.data.readers import detect_format
from seqmask.data.readers._common import reason, show
from seqmask.data.readers.files import is_pattern, list_files
from seqmask.errors import DataError

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

# What build_index and ShardIndex.read call to decode one shard: read_sequences with the
# config's format and keys, bound with functools.partial.
Reader = Callable[[Path], Sequences]

# Formats of many sequences per file (keys of the readers' table): these can be shards.
SHARD_FORMATS: tuple[str, ...] = ("npz", "parquet", "jsonl")
# One sequence per file: a directory of these is today's csv_dir / npy_dir, not shards.
_PER_SEQUENCE_SUFFIXES: tuple[str, ...] = (".csv.gz", ".csv", ".npy")

# Rows per chunk when a shard's statistics are computed: bounds the float64 temporaries
# to ~chunk * features * 8 bytes, whatever the size of the shard.
_CHUNK_ROWS = 1 << 16

_INDEX_VERSION = 2


# glibc's malloc serves a large block by mmap only while it is above a threshold that it
# raises to the size of each large block freed, up to 32 MiB: after the first shard's
# arrays are freed, the next shards' come from the heap, where the small arrays kept of
# each one (a read's rows, an index part) pin them, and the heap never shrinks. Reading
# 10^4 scattered sequences from 10^3 shards of 30 MB held 1.4 GB that way (BENCHMARKS.md,
# "Streaming"). A fixed threshold of 1 MiB maps and unmaps every array of a shard.
_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
_MMAP_THRESHOLD = 1 << 20
_unpinned = False


def unpin_freed_shards() -> None:
    """Fix glibc's mmap threshold at 1 MiB, once per process (nothing elsewhere), so the
    memory of a shard read and dropped goes back to the system."""
    global _unpinned
    if _unpinned:
        return
    _unpinned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(_MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS): their malloc does not do this
        pass


# -- finding the shards ------------------------------------------------------------------


_ONE_PER_FILE = " (one sequence per file)"


def _format_of(f: Path) -> str | None:
    """The reader format of one file by its name, for a message: ``".npy (one sequence
    per file)"`` for the files of csv_dir / npy_dir, None for an unknown extension."""
    name = f.name.lower()
    for suffix in _PER_SEQUENCE_SUFFIXES:
        if name.endswith(suffix):
            return suffix + _ONE_PER_FILE
    try:
        return detect_format(f)
    except DataError:
        return None


def find_shards(path: str | Path) -> list[Path] | None:
    """The shard files of a directory or glob pattern, sorted by path (by name, within
    one directory); None where ``path`` is not a set of shards: a single file (or a path
    that does not exist, for the reader to report), or a directory / pattern of .csv or
    .npy files, one per sequence (formats ``csv_dir`` and ``npy_dir``, read as before).

    Hidden files and sub-directories are left out, as for ``csv_dir``. ``DataError`` for
    an empty directory or pattern, for shards of different formats (naming a file of
    each), and for a file among the shards that is not one.
    """
    p = Path(path)
    shown = str(path)
    if not (p.is_dir() or (is_pattern(shown) and not _exists(p))):
        return None
    files = list_files(p, shown)  # DataError for a pattern that matches nothing
    what = "directory" if p.is_dir() else "pattern"
    if not files:
        raise DataError(f"{shown}: the {what} holds no files; give shard files (.npz, .parquet, .jsonl) or a data file")
    formats = {f: _format_of(f) for f in files}
    shards = [f for f, fmt in formats.items() if fmt in SHARD_FORMATS]
    if not shards:
        if all(fmt is not None and fmt.endswith(_ONE_PER_FILE) for fmt in formats.values()):
            return None  # one file per sequence: today's csv_dir / npy_dir
        raise DataError(
            f"{shown}: the {what} holds no shard files (.npz, .parquet, .jsonl, .jsonl.gz) and is not "
            f"one .csv or .npy file per sequence (it holds e.g. {files[0].name!r})"
        )
    first = shards[0]
    for f, fmt in formats.items():
        if fmt is None:
            raise DataError(f"{shown}: {f} is not a shard file (expected .npz, .parquet, .jsonl or .jsonl.gz files)")
        if fmt != formats[first]:
            raise DataError(
                f"{shown}: shards must all have one format, but {first} is {formats[first]} and {f} is {fmt}"
            )
    return shards


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


# -- statistics ----------------------------------------------------------------------------


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


# -- the index -------------------------------------------------------------------------------


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
        arrays: dict[str, Any] = {
            "version": np.asarray(_INDEX_VERSION, dtype=np.int64),
            "shards": np.asarray(self.shards, dtype=str).reshape(-1),
            "sizes": self.sizes,
            "mtimes": self.mtimes,
            "offsets": self.offsets,
            "lengths": self.lengths,
            "checks": self.checks,
            "num_features": np.asarray(self.num_features, dtype=np.int64),
            "count": np.asarray(self.count, dtype=np.int64),
            "mean": self.mean,
            "m2": self.m2,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "feature_names": np.asarray(self.feature_names, dtype=str).reshape(-1),
            "validation": self.held_out,
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            # A file object, not a name: np.savez would add ".npz" to the temporary name.
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path) -> ShardIndex:
        """Inverse of :meth:`save`. ``DataError`` naming ``path`` for a file that is not
        a shard index (missing, corrupt, or with inconsistent arrays)."""
        shown = str(path)
        try:
            archive = np.load(path, allow_pickle=False)
            if not isinstance(archive, NpzFile):
                raise DataError(f"{shown}: not a shard index (a single array, not an .npz archive of arrays)")
            with archive:
                arrays = {key: np.asarray(archive[key]) for key in archive.files}
        except FileNotFoundError:
            raise DataError(f"{shown}: shard index not found") from None
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt file fails in many ways
            raise DataError(f"{shown}: not a shard index ({reason(e)})") from None
        return _from_arrays(arrays, shown)

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


# -- loading an index ------------------------------------------------------------------------

_KEYS = (
    "version",
    "shards",
    "sizes",
    "mtimes",
    "offsets",
    "lengths",
    "checks",
    "num_features",
    "count",
    "mean",
    "m2",
    "minimum",
    "maximum",
    "feature_names",
    "validation",
)


def _from_arrays(a: dict[str, np.ndarray], shown: str) -> ShardIndex:
    """The index in the arrays of a saved file, checked for consistency."""

    def bad(why: str) -> DataError:
        return DataError(f"{shown}: not a valid shard index ({why})")

    missing = [k for k in _KEYS if k not in a]
    if missing:
        raise bad(f"missing array {missing[0]!r}")
    for key in ("version", "num_features", "count"):
        if a[key].shape != () or a[key].dtype.kind not in "iu":
            raise bad(f"{key!r} must be an integer scalar")
    if int(a["version"]) != _INDEX_VERSION:
        raise bad(f"version {int(a['version'])}, this seqmask reads version {_INDEX_VERSION}")
    num_features, count = int(a["num_features"]), int(a["count"])
    for key in ("shards", "feature_names"):
        if a[key].ndim != 1 or (a[key].size and a[key].dtype.kind != "U"):
            raise bad(f"{key!r} must be a 1-D array of strings")
    num_shards, n = a["shards"].shape[0], a["lengths"].shape[0]
    for key, size in (("sizes", num_shards), ("mtimes", num_shards), ("offsets", num_shards + 1), ("lengths", n)):
        if a[key].shape != (size,) or (size and a[key].dtype.kind not in "iu"):
            raise bad(f"{key!r} must be {size} integers")
    if a["checks"].shape != (n,) or a["checks"].dtype != np.uint32:
        raise bad(f"'checks' must be {n} uint32")
    for key in ("mean", "m2", "minimum", "maximum"):
        if a[key].shape != (num_features,) or a[key].dtype.kind != "f":
            raise bad(f"{key!r} must be {num_features} floats")
    offsets = a["offsets"].astype(np.int64)
    if int(offsets[0]) != 0 or int(offsets[-1]) != n or (num_shards and int(np.diff(offsets).min()) < 0):
        raise bad(f"'offsets' must rise from 0 to {n}")
    lengths = a["lengths"]
    if n and int(lengths.min()) < 1:
        raise bad("sequence lengths out of range")
    validation = a["validation"]
    if validation.shape != (n,) or validation.dtype != bool:
        raise bad(f"'validation' must be {n} booleans")
    trained = int(lengths.sum(dtype=np.int64)) - int(lengths[validation].sum(dtype=np.int64))
    if trained != count:
        raise bad(f"the training lengths add up to {trained} steps, but 'count' is {count}")
    names = tuple(str(x) for x in a["feature_names"])
    if names and len(names) != num_features:
        raise bad(f"{len(names)} feature names for {num_features} features")
    return ShardIndex(
        shards=tuple(str(x) for x in a["shards"]),
        sizes=a["sizes"].astype(np.int64),
        mtimes=a["mtimes"].astype(np.int64),
        offsets=offsets,
        lengths=lengths.astype(np.int32, copy=False),
        checks=a["checks"],
        num_features=num_features,
        count=count,
        mean=a["mean"].astype(np.float64),
        m2=a["m2"].astype(np.float64),
        minimum=a["minimum"].astype(np.float64),
        maximum=a["maximum"].astype(np.float64),
        feature_names=names,
        validation=validation,
    )


# -- ids -------------------------------------------------------------------------------------

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

    Vectorized: one pass of numpy over the ids per character of the longest one, so
    hashing 10^7 ids costs about a second, where a Python loop costs tens."""
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


# -- building an index -----------------------------------------------------------------------


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


def _stat(path: Path, missing: str) -> os.stat_result:
    """`os.stat(path)`, or a DataError naming the file: `missing` when it is not there."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot access the file ({e.strerror or e})") from None


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


def _read_numeric(path: Path, read: Reader) -> Sequences:
    """One shard, read: numbers only, lengths that fit int32."""
    seqs = read(path)  # its DataError names the file: it comes through unchanged
    if seqs.values.dtype != np.float32:
        form = "tokens" if seqs.is_tokens else "token ids"
        raise DataError(f"{path}: holds {form}; streaming from shards supports numeric values only for now")
    if len(seqs) and int(seqs.lengths.max()) >= 2**31:
        raise DataError(f"{path}: a sequence of {int(seqs.lengths.max())} steps; at most 2^31 - 1 are supported")
    return seqs


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
    total = len(paths)
    first: _Summary | None = None
    stats: _Stats | None = None
    hashes: list[np.ndarray | None] = []
    lengths: list[np.ndarray | None] = []
    held: list[np.ndarray | None] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="seqmask-index") as pool:
        pending: deque[Future[_Summary]] = deque()
        queued = 0
        try:
            for done in range(1, total + 1):
                while queued < total and len(pending) < 2 * threads:
                    pending.append(pool.submit(_summarize, paths[queued], read, holdout))
                    queued += 1
                part = pending.popleft().result()  # re-raises the shard's error
                first = first or part
                _check_like_first(part, first)
                stats = part.stats if stats is None else stats.merge(part.stats)
                hashes.append(part.hashes)
                lengths.append(part.lengths)
                held.append(part.held)
                sizes.append(part.size)
                mtimes.append(part.mtime)
                if on_shard is not None:
                    on_shard(done, total)
                del part
        finally:
            for future in pending:
                future.cancel()
    assert first is not None and stats is not None
    counts = np.asarray([len(x) for x in lengths if x is not None], dtype=np.int64)  # (shards,)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # (shards + 1,)
    _check_unique_across(hashes, offsets, paths, read)
    checks = _gather(hashes, offsets, np.uint32)  # (n,): the low 32 bits of each hash
    return ShardIndex(
        shards=tuple(os.path.abspath(p) for p in paths),
        sizes=np.asarray(sizes, dtype=np.int64),
        mtimes=np.asarray(mtimes, dtype=np.int64),
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
        validation=_gather(held, offsets, np.bool_),
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


# -- splitting -------------------------------------------------------------------------------


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
