"""The shard index's file: one ``.npz`` of plain arrays (no pickles), its version, and
the checks that a loaded file is a consistent index.

:meth:`ShardIndex.save <seqmask.data.shards.ShardIndex.save>` and
:meth:`ShardIndex.load <seqmask.data.shards.ShardIndex.load>` are the entry points;
:func:`write_index` and :func:`load_fields` do the work (the fields, not the index, so that this
module needs no import of :class:`ShardIndex` at run time).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.npyio import NpzFile

from seqmask.atomic import atomic_path
from seqmask.data.readers import reason
from seqmask.errors import DataError

if TYPE_CHECKING:
    from seqmask.data.shards._index import ShardIndex

__all__ = ["load_fields", "write_index"]

_INDEX_VERSION = 2


def write_index(index: ShardIndex, path: Path) -> None:
    """``index`` to ``path`` (see :meth:`ShardIndex.save`)."""
    arrays: dict[str, Any] = {
        "version": np.asarray(_INDEX_VERSION, dtype=np.int64),
        "shards": np.asarray(index.shards, dtype=str).reshape(-1),
        "sizes": index.sizes,
        "mtimes": index.mtimes,
        "offsets": index.offsets,
        "lengths": index.lengths,
        "checks": index.checks,
        "num_features": np.asarray(index.num_features, dtype=np.int64),
        "count": np.asarray(index.count, dtype=np.int64),
        "mean": index.mean,
        "m2": index.m2,
        "minimum": index.minimum,
        "maximum": index.maximum,
        "feature_names": np.asarray(index.feature_names, dtype=str).reshape(-1),
        "validation": index.held_out,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # A file object, not a name: np.savez would add ".npz" to the temporary name.
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def load_fields(path: Path) -> dict[str, Any]:
    """The fields of the index saved at ``path`` (see :meth:`ShardIndex.load`)."""
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


def _from_arrays(a: dict[str, np.ndarray], shown: str) -> dict[str, Any]:
    """The index's fields in the arrays of a saved file, checked for consistency."""

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
    return dict(
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
