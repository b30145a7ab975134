"""NPZ: ``values`` plus ``lengths`` or ``offsets`` (and optionally ``ids``) arrays."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError
from seqmask.readers._common import (
    Options,
    check_unique_ids,
    cols,
    float32_values,
    read_nonempty,
    reason,
    reject_column_options,
    show,
)


def read_npz(p: Path, shown: str, opts: Options) -> Sequences:
    reject_column_options(opts, shown, "an .npz file has 'values', 'lengths' (or 'offsets') and 'ids' arrays")
    raw = read_nonempty(p, shown)
    if raw.startswith(b"\x93NUMPY"):
        raise DataError(
            f"{shown}: holds a single .npy array, not an .npz archive of 'values' and 'lengths'"
        )
    if not raw.startswith(b"PK"):
        raise DataError(
            f"{shown}: not an .npz archive (expected a zip file of arrays, as numpy.savez writes)"
        )
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
    except zipfile.BadZipFile:
        raise DataError(f"{shown}: not a valid .npz archive (corrupt or truncated zip file)") from None
    except Exception as e:  # noqa: BLE001 - any failure to open is the file's fault
        raise DataError(f"{shown}: not a valid .npz archive ({reason(e)})") from None
    if not hasattr(archive, "files"):
        raise DataError(
            f"{shown}: holds a single .npy array, not an .npz archive of 'values' and 'lengths'"
        )
    with archive:
        keys = list(archive.files)
        if "values" not in keys:
            raise DataError(f"{shown}: missing array 'values' (arrays in the file: {cols(keys) or 'none'})")
        if "lengths" in keys and "offsets" in keys:
            raise DataError(
                f"{shown}: has both 'lengths' and 'offsets' arrays; give one of them "
                "(lengths [N], or offsets [N+1] from 0 to the number of rows of 'values')"
            )
        if "lengths" not in keys and "offsets" not in keys:
            raise DataError(
                f"{shown}: missing array 'lengths' (or 'offsets') "
                f"(arrays in the file: {cols(keys) or 'none'})"
            )
        values = member(archive, "values", shown)
        by = "lengths" if "lengths" in keys else "offsets"
        bounds = member(archive, by, shown)
        ids = member(archive, "ids", shown) if "ids" in keys else None
    values = check_values_array(values, shown, "array 'values'")
    if by == "lengths":
        lengths = bounds
    else:
        lengths = _offsets_to_lengths(bounds, values.shape[0], shown)
    return _to_sequences(values, lengths, ids, shown, by)


def member(archive, key: str, shown: str) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise DataError(
                f"{shown}: array '{key}' holds Python objects (it would need pickle to load); "
                "save plain numeric or string arrays"
            ) from None
        raise DataError(f"{shown}: array '{key}' cannot be read ({reason(e)})") from None
    except Exception as e:  # noqa: BLE001 - corrupt members fail in many ways
        raise DataError(f"{shown}: array '{key}' cannot be read ({reason(e)})") from None


def check_values_array(values: np.ndarray, shown: str, what: str) -> np.ndarray:
    """A numeric ``(steps, features)`` array (1-D: one feature), or ``DataError``."""
    if values.dtype.kind not in "fiu":
        raise DataError(f"{shown}: {what} must hold numbers (float or int), got dtype {values.dtype}")
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2:
        raise DataError(
            f"{shown}: {what} must be 2-D [steps, features] (or 1-D for one feature), "
            f"got shape {values.shape}"
        )
    if values.shape[1] == 0:
        raise DataError(f"{shown}: {what} has no features (shape {values.shape})")
    return values


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


def _to_sequences(
    values: np.ndarray, lengths: np.ndarray, ids: np.ndarray | None, shown: str, by: str
) -> Sequences:
    n_rows = values.shape[0]

    if lengths.ndim != 1:
        raise DataError(f"{shown}: array 'lengths' must be 1-D [num_sequences], got shape {lengths.shape}")
    _integral(lengths, shown, "lengths")
    n = lengths.shape[0]
    if n == 0:
        raise DataError(f"{shown}: no sequences (array '{by}' is empty)")

    id_arr = np.arange(n).astype(str) if ids is None else _ids(ids, n, shown, by)

    bad = np.flatnonzero(lengths <= 0)
    if bad.size:
        i = int(bad[0])
        if by == "offsets":
            raise DataError(
                f"{shown}: sequence {show(str(id_arr[i]))} (index {i}) is empty "
                f"(offsets[{i}] and offsets[{i + 1}] are both {int(lengths[:i].sum())})"
            )
        what = "is empty (length 0" if lengths[i] == 0 else f"has a negative length ({lengths[i]}"
        raise DataError(f"{shown}: sequence {show(str(id_arr[i]))} (index {i}) {what} in array 'lengths')")
    if np.any(lengths > n_rows):
        total: int | str = "more than"
    else:
        lengths = lengths.astype(np.int64)
        total = int(lengths.sum())
    if total != n_rows:
        raise DataError(f"{shown}: array 'lengths' adds up to {total} steps but 'values' has {n_rows} rows")

    values32, bad_cells = float32_values(values)
    if bad_cells.any():
        row = int(np.flatnonzero(bad_cells.any(axis=1))[0])
        feat = int(np.flatnonzero(bad_cells[row])[0])
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        seq = int(np.searchsorted(offsets, row, side="right") - 1)
        step = row - int(offsets[seq])
        original = values[row, feat]
        what = (
            f"value {float(original)!r}, too large for float32,"
            if np.isfinite(original)
            else "a NaN/Inf value"
        )
        raise DataError(
            f"{shown}: sequence {show(str(id_arr[seq]))} (index {seq}) has {what} at step {step} "
            f"(0-based), feature {feat} (row {row} of array 'values')"
        )
    return Sequences(values32, lengths, id_arr, shown)


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
