"""NPZ: ``values`` plus ``lengths`` or ``offsets`` (and optionally ``ids``) arrays."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile

from seqmask.data import Sequences
from seqmask.data.readers._arrays import (
    check_unique_ids,
    first_cell,
    float32_values,
    load_array,
    locate_step,
    numeric_steps,
)
from seqmask.data.readers._common import Options, cols, read_nonempty, reason, reject_column_options, show
from seqmask.errors import DataError


def read_npz(p: Path, shown: str, opts: Options) -> Sequences:
    """``values`` with ``lengths`` or ``offsets`` (and optionally ``ids``)."""
    reject_column_options(opts, shown, "an .npz file has 'values', 'lengths' (or 'offsets') and 'ids' arrays")
    with _open(read_nonempty(p, shown), shown) as archive:
        by = _layout(list(archive.files), shown)
        values = _member(archive, "values", shown)
        bounds = _member(archive, by, shown)
        ids = _member(archive, "ids", shown) if "ids" in archive.files else None
    values = numeric_steps(values, shown, "values")  # (total_steps, features)
    if by == "lengths":
        lengths = bounds
    else:
        lengths = _offsets_to_lengths(bounds, values.shape[0], shown)
    return _to_sequences(values, lengths, ids, shown, by)


def _open(raw: bytes, shown: str) -> NpzFile:
    """The archive in ``raw``; a lone .npy array, or anything but a zip of arrays, is
    a ``DataError``."""
    single = f"{shown}: holds a single .npy array, not an .npz archive of 'values' and 'lengths'"
    if raw.startswith(b"\x93NUMPY"):
        raise DataError(single)
    if not raw.startswith(b"PK"):
        raise DataError(f"{shown}: not an .npz archive (expected a zip file of arrays, as numpy.savez writes)")
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
    except zipfile.BadZipFile:
        raise DataError(f"{shown}: not a valid .npz archive (corrupt or truncated zip file)") from None
    except Exception as e:  # noqa: BLE001 - any failure to open is the file's fault
        raise DataError(f"{shown}: not a valid .npz archive ({reason(e)})") from None
    if not isinstance(archive, NpzFile):
        raise DataError(single)
    return archive


def _layout(keys: list[str], shown: str) -> str:
    """``"lengths"`` or ``"offsets"``: which array cuts ``values`` into sequences."""
    if "values" not in keys:
        raise DataError(f"{shown}: missing array 'values' (arrays in the file: {cols(keys) or 'none'})")
    if "lengths" in keys and "offsets" in keys:
        raise DataError(
            f"{shown}: has both 'lengths' and 'offsets' arrays; give one of them "
            "(lengths [N], or offsets [N+1] from 0 to the number of rows of 'values')"
        )
    if "lengths" not in keys and "offsets" not in keys:
        raise DataError(f"{shown}: missing array 'lengths' (or 'offsets') (arrays in the file: {cols(keys) or 'none'})")
    return "lengths" if "lengths" in keys else "offsets"


def _member(archive: NpzFile, key: str, shown: str) -> np.ndarray:
    return load_array(
        lambda: np.asarray(archive[key]),
        f"{shown}: array '{key}' holds Python objects (it would need pickle to load); "
        "save plain numeric or string arrays",
        f"{shown}: array '{key}' cannot be read",
    )


def _integral(a: np.ndarray, shown: str, name: str) -> None:
    if a.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))
        if not ok:
            raise DataError(f"{shown}: array '{name}' must hold integers, got non-integer values")
    elif a.dtype.kind not in "iu":
        raise DataError(f"{shown}: array '{name}' must hold integers, got dtype {a.dtype}")


def _offsets_to_lengths(offsets: np.ndarray, n_rows: int, shown: str) -> np.ndarray:
    """Check ``offsets`` ([N+1], 0 .. n_rows, never decreasing) and return the lengths."""
    if offsets.ndim != 1:
        raise DataError(f"{shown}: array 'offsets' must be 1-D [num_sequences + 1], got shape {offsets.shape}")
    _integral(offsets, shown, "offsets")
    if offsets.shape[0] == 0:
        raise DataError(
            f"{shown}: array 'offsets' is empty; it needs num_sequences + 1 entries, "
            "from 0 to the number of rows of 'values'"
        )
    if offsets[0] != 0:
        raise DataError(f"{shown}: array 'offsets' must start at 0, got {offsets[0]}")
    if offsets.shape[0] == 1:
        raise DataError(f"{shown}: no sequences (array 'offsets' holds only the starting 0)")
    down = np.flatnonzero(offsets[1:] < offsets[:-1])
    if down.size:
        i = int(down[0]) + 1
        raise DataError(
            f"{shown}: array 'offsets' must never decrease, but offsets[{i}] = {offsets[i]} "
            f"is less than offsets[{i - 1}] = {offsets[i - 1]}"
        )
    if offsets[-1] != n_rows:
        raise DataError(
            f"{shown}: array 'offsets' ends at {offsets[-1]} but 'values' has {n_rows} rows; "
            "the last offset must be the number of rows"
        )
    # Now 0 <= offsets <= n_rows: safe to convert whatever the dtype.
    return np.diff(offsets.astype(np.int64))


def _to_sequences(values: np.ndarray, lengths: np.ndarray, ids: np.ndarray | None, shown: str, by: str) -> Sequences:
    """``values`` ``(total_steps, features)`` cut by ``lengths`` ``(N,)`` into
    sequences; ``by`` names the array the lengths came from, for the messages."""
    if lengths.ndim != 1:
        raise DataError(f"{shown}: array 'lengths' must be 1-D [num_sequences], got shape {lengths.shape}")
    _integral(lengths, shown, "lengths")
    n = lengths.shape[0]
    if n == 0:
        raise DataError(f"{shown}: no sequences (array '{by}' is empty)")
    id_arr = np.arange(n).astype(str) if ids is None else _ids(ids, n, shown, by)
    lengths = _checked_lengths(lengths, values.shape[0], id_arr, shown, by)
    return Sequences(_float32(values, lengths, id_arr, shown), lengths, id_arr, shown)


def _checked_lengths(lengths: np.ndarray, n_rows: int, ids: np.ndarray, shown: str, by: str) -> np.ndarray:
    """``lengths`` as int64, each at least 1 and adding up to ``n_rows``."""
    bad = np.flatnonzero(lengths <= 0)
    if bad.size:
        i = int(bad[0])
        if by == "offsets":
            raise DataError(
                f"{shown}: sequence {show(str(ids[i]))} (index {i}) is empty "
                f"(offsets[{i}] and offsets[{i + 1}] are both {int(lengths[:i].sum())})"
            )
        what = "is empty (length 0" if lengths[i] == 0 else f"has a negative length ({lengths[i]}"
        raise DataError(f"{shown}: sequence {show(str(ids[i]))} (index {i}) {what} in array 'lengths')")
    # One length beyond the rows settles it; summing only otherwise keeps huge
    # lengths (uint64) from overflowing int64.
    if np.any(lengths > n_rows):
        total: int | str = "more than"
    else:
        lengths = lengths.astype(np.int64)
        total = int(lengths.sum())
    if total != n_rows:
        raise DataError(f"{shown}: array 'lengths' adds up to {total} steps but 'values' has {n_rows} rows")
    return lengths


def _float32(values: np.ndarray, lengths: np.ndarray, ids: np.ndarray, shown: str) -> np.ndarray:
    """``values`` ``(total_steps, features)`` as float32, or ``DataError`` naming the
    sequence, step and feature of the first NaN/Inf or too large value."""
    values32, bad = float32_values(values)
    if not bad.any():
        return values32
    row, feat = first_cell(bad)
    seq, step = locate_step(lengths, row)
    original = values[row, feat]
    what = f"value {float(original)!r}, too large for float32," if np.isfinite(original) else "a NaN/Inf value"
    raise DataError(
        f"{shown}: sequence {show(str(ids[seq]))} (index {seq}) has {what} at step {step} "
        f"(0-based), feature {feat} (row {row} of array 'values')"
    )


def _ids(ids: np.ndarray, n: int, shown: str, by: str) -> np.ndarray:
    if ids.ndim != 1:
        raise DataError(f"{shown}: array 'ids' must be 1-D [num_sequences], got shape {ids.shape}")
    if ids.shape[0] != n:
        count = "'lengths' has" if by == "lengths" else "'offsets' describes"
        raise DataError(f"{shown}: array 'ids' has {ids.shape[0]} entries but {count} {n} sequences")
    kind = ids.dtype.kind
    if kind == "U":
        out = ids
    elif kind == "S":
        try:
            out = np.char.decode(ids, "utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{shown}: array 'ids' holds bytes that are not UTF-8 text") from None
    elif kind in "iu":
        out = ids.astype(str)
    else:
        raise DataError(f"{shown}: array 'ids' must hold strings or integers, got dtype {ids.dtype}")
    out = np.asarray(out, dtype=str)
    check_unique_ids(out, shown, lambda i: f"index {i}", "in array 'ids'")
    return out
