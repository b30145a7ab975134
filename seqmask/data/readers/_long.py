"""Long-format tables (CSV, Parquet; one row per step, an id column naming the
sequence): picking the columns, checking the numeric ones, and grouping the rows
into sequences. The readers parse; this module decides what the rows mean, so
that both formats apply the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from seqmask.data import Sequences
from seqmask.data.readers._arrays import first_repeat, float32_values
from seqmask.data.readers._common import Options, cols, show
from seqmask.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa


# -- columns ----------------------------------------------------------------------------


def long_columns(
    names: list[str], opts: Options, shown: str, *, where: str, id_hint: str | None
) -> tuple[str, str | None, list[str]]:
    """``(id column, step column, feature columns)`` of a long table whose columns are
    ``names``: the features are ``feature_columns``, or every column but the id and
    step columns.

    ``where`` places the columns in the messages (``" in the header"`` or ``""``);
    ``id_hint`` ends the message for a missing id column, and None makes the id
    column optional (one file per sequence: a column of that name is only skipped).
    """
    id_col, step_col = opts.id_column, opts.step_column
    if id_hint is not None and id_col not in names:
        raise DataError(f"{shown}: no id column {id_col!r}{where} (columns: {cols(names)}); {id_hint}")
    if step_col is not None:
        if step_col == id_col:
            raise DataError(f"{shown}: step_column and id_column are both {id_col!r}")
        if step_col not in names:
            raise DataError(f"{shown}: no step column {step_col!r}{where} (columns: {cols(names)})")
    reserved = {id_col} | ({step_col} if step_col is not None else set())
    if opts.feature_columns is None:
        features = [c for c in names if c not in reserved]
    else:
        features = list(opts.feature_columns)
        for c in features:
            if c not in names:
                raise DataError(f"{shown}: feature column {c!r} not found (available: {cols(names)})")
            if c in reserved:
                raise DataError(f"{shown}: column {c!r} cannot be both a feature and the id/step column")
        dup = [c for k, c in enumerate(features) if c in features[:k]]
        if dup:
            raise DataError(f"{shown}: feature column {dup[0]!r} is listed twice")
    if not features:
        raise DataError(f"{shown}: no feature columns (columns: {cols(names)})")
    return id_col, step_col, features


# -- numeric columns ----------------------------------------------------------------------


def null_mask(col: pa.ChunkedArray) -> np.ndarray | None:
    """Which rows of ``col`` are null ``(rows,)``, or None when none is."""
    if not col.null_count:
        return None
    return np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def column_problems(
    x64: np.ndarray, is_null: np.ndarray | None, float32: bool
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """A numeric column ``(rows,)`` float64, nulls as NaN, as float32 (a feature) or
    float64 (the step column), and its first problem of each kind, as ``(row, kind)``:
    ``"missing"`` (a null), ``"nonfinite"`` (NaN/Inf in the file) or ``"float32"``
    (finite, but too large for float32). Each reader words them in its own terms."""
    x, bad = float32_values(x64) if float32 else (x64, ~np.isfinite(x64))
    found: list[tuple[int, str]] = []
    if is_null is not None:
        found.append((int(np.argmax(is_null)), "missing"))
        bad &= ~is_null  # a null is reported as missing, not as NaN
    if bad.any():
        row = int(np.argmax(bad))
        found.append((row, "float32" if np.isfinite(x64[row]) else "nonfinite"))
    return x, found


def numeric_columns(
    numeric: Callable[..., np.ndarray], n: int, step_col: str | None, features: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(n, features)`` float32 matrix and the ``(n,)`` float64 steps (or None) of
    a long table, one column at a time: ``numeric(name, float32=...)`` reads a column
    (and notes its problems; the caller reports the first)."""
    steps = numeric(step_col, float32=False) if step_col is not None else None
    x = np.empty((n, len(features)), dtype=np.float32)  # (rows, features)
    for j, name in enumerate(features):
        x[:, j] = numeric(name, float32=True)
    return x, steps


# -- rows -> sequences ------------------------------------------------------------------


def group_rows(
    x: np.ndarray,
    features: list[str],
    id_array: pa.Array,
    steps: np.ndarray | None,
    shown: str,
    id_name: str,
    where: Callable[[int], str],
    step_text: Callable[[int], str],
) -> Sequences:
    """Rows of a long table -> :class:`Sequences`, vectorized.

    ``x`` is ``(rows, features)`` float32, its columns named ``features`` (the
    result's ``feature_names``), ``id_array`` a pyarrow string array of the rows'
    ids (no nulls), ``steps`` ``(rows,)`` float64 step indices or None (file
    order). Sequences come in order of each id's first row; a sequence's rows keep
    file order, or are sorted by step (stably) when there is a step column.
    ``where(row)`` and ``step_text(row)`` describe a row for messages.
    """
    codes, ids = _sequence_of_rows(id_array, shown, id_name, where)
    if steps is None:
        in_order = bool(np.all(codes[1:] >= codes[:-1]))
        perm = None if in_order else np.argsort(codes, kind="stable")
    else:
        perm = np.lexsort((steps, codes))  # stable: equal keys keep file order
        repeat = first_repeat(perm, codes, steps)
        if repeat is not None:
            a, b = repeat
            raise DataError(
                f"{shown}, {where(b)}: step {step_text(b)} of sequence "
                f"{show(str(ids[codes[b]]))} appears twice (also on {where(a)})"
            )
    lengths = np.bincount(codes, minlength=len(ids)).astype(np.int64)  # (sequences,)
    values = x if perm is None else x[perm]  # (rows, features), grouped by sequence
    return Sequences(values, lengths, ids, shown, tuple(features))


def _sequence_of_rows(
    id_array: pa.Array, shown: str, id_name: str, where: Callable[[int], str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's sequence number ``(rows,)`` int64, numbered in order of first
    appearance, and the ids ``(sequences,)``; ``DataError`` for an id with a NUL
    character (numpy would drop it from the end of a string)."""
    encoded = id_array.dictionary_encode()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    uniq_obj = encoded.dictionary.to_numpy(zero_copy_only=False)
    for k, s in enumerate(uniq_obj):  # a loop per sequence
        if "\x00" in s:
            raise DataError(
                f"{shown}, {where(int(np.argmax(codes == k)))}: column {id_name!r} contains a NUL character"
            )
    ids = np.asarray(uniq_obj, dtype=str) if len(uniq_obj) else np.zeros(0, dtype="<U1")
    return codes, ids
