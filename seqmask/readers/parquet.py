"""Parquet (``.parquet``), read with pyarrow, in one of two layouts chosen by the schema:

* one row per sequence: a list column named ``values_key`` (``list<list<number>>``,
  steps of features, or ``list<number>``, one feature) or ``tokens_key``
  (``list<string>`` or ``list<int>``), and the id in the column ``id_key``;
* otherwise long format, like the CSV: ``id_column``, an optional ``step_column``,
  and numeric feature columns (all the others, or ``feature_columns``).

Ids may be strings or integers (kept as their text). Row numbers in messages are
1-based and count data rows. Everything is vectorized with pyarrow/numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError
from seqmask.readers._arrays import bad_value_text, check_unique_ids, float32_values
from seqmask.readers._common import Options, check_tokens, cols, read_nonempty, reason, reject_column_options, show
from seqmask.readers._long import group_rows, long_columns, numeric_columns


def _row(r: int) -> str:
    return f"row {r + 1}"


def _is_list(t) -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_number(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _typ(t) -> str:
    """A pyarrow type for a message, on one line (field names may hold anything)."""
    return " ".join(str(t).split())


def _first(mask) -> int:
    return int(np.argmax(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)))


def read_parquet(p: Path, shown: str, opts: Options) -> Sequences:
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = read_nonempty(p, shown)
    if not raw.startswith(b"PAR1"):
        raise DataError(f"{shown}: not a Parquet file (it does not start with the 'PAR1' marker)")
    try:
        pf = pq.ParquetFile(pa.BufferReader(raw))
        schema = pf.schema_arrow
    except Exception as e:  # noqa: BLE001 - a corrupt file fails in many ways
        raise DataError(f"{shown}: not a valid Parquet file ({reason(e)})") from None
    names = list(schema.names)
    dup = [n for k, n in enumerate(names) if n in names[:k]]
    if dup:
        raise DataError(f"{shown}: column name {dup[0]!r} appears more than once")

    list_keys = [k for k in (opts.values_key, opts.tokens_key) if k in names and _is_list(schema.field(k).type)]
    if len(list_keys) == 2:
        raise DataError(
            f"{shown}: has both a {opts.values_key!r} and a {opts.tokens_key!r} list column; "
            "one file holds either numeric or token sequences"
        )
    if list_keys:
        key = list_keys[0]
        reject_column_options(opts, shown, f"this one has one row per sequence (list column {key!r})")
        if opts.id_key not in names:
            raise DataError(
                f"{shown}: no id column {opts.id_key!r} (columns: {cols(names)}); a file with one "
                "row per sequence names each sequence in the column id_key"
            )
        table = _read(pf, [opts.id_key, key], shown)
        return _rows(table, shown, opts, key)
    id_col, step_col, features = long_columns(
        names,
        opts,
        shown,
        where="",
        id_hint="give a long-format table (id_column, feature columns) or one row per sequence "
        f"with a list column {opts.values_key!r} or {opts.tokens_key!r}",
    )
    used = [id_col] + ([step_col] if step_col is not None else []) + features
    table = _read(pf, used, shown)
    return _long(table, shown, id_col, step_col, features)


def _read(pf, columns: list[str], shown: str):
    try:
        table = pf.read(columns=columns, use_threads=True)
        table.validate(full=True)
    except Exception as e:  # noqa: BLE001 - corrupt pages fail in many ways
        raise DataError(f"{shown}: cannot read the Parquet data ({reason(e)})") from None
    if table.num_rows == 0:
        raise DataError(f"{shown}: no sequences (the file has no rows)")
    return table


def _id_strings(chunked, shown: str, name: str):
    """The id column as a pyarrow string array, checked: no nulls, no empty ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = chunked.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_integer(arr.type) or pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    elif not pa.types.is_string(arr.type):
        raise DataError(f"{shown}: column {name!r} has type {_typ(arr.type)}; ids must be strings or integers")
    if arr.null_count:
        raise DataError(f"{shown}, {_row(_first(arr.is_null()))}: column {name!r} is null (every sequence needs an id)")
    empty = pc.equal(pc.utf8_length(arr), 0)
    if pc.any(empty).as_py():
        raise DataError(f"{shown}, {_row(_first(empty))}: column {name!r} is empty (every sequence needs an id)")
    return arr


# -- one row per sequence ------------------------------------------------------------


def _rows(table, shown: str, opts: Options, key: str) -> Sequences:
    import pyarrow as pa
    import pyarrow.compute as pc

    id_arr = _id_strings(table.column(opts.id_key), shown, opts.id_key)
    nul = pc.match_substring(id_arr, "\x00")
    if pc.any(nul).as_py():
        raise DataError(f"{shown}, {_row(_first(nul))}: column {opts.id_key!r} contains a NUL character")
    ids = np.asarray(id_arr.to_numpy(zero_copy_only=False), dtype=str)
    check_unique_ids(ids, shown, _row, f"in column {opts.id_key!r}")

    col = table.column(key).combine_chunks()
    if col.null_count:
        r = _first(col.is_null())
        raise DataError(f"{shown}, {_row(r)}: sequence {show(str(ids[r]))} has a null {key!r}")
    lengths = np.asarray(pc.list_value_length(col).to_numpy(zero_copy_only=False), dtype=np.int64)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        r = int(empty[0])
        raise DataError(f"{shown}, {_row(r)}: sequence {show(str(ids[r]))} is empty; every sequence needs at least one step")
    starts = np.concatenate([[0], np.cumsum(lengths)])

    def at(step: int) -> str:
        """Global step index -> "row R: sequence 'x', step S"."""
        r = int(np.searchsorted(starts, step, side="right") - 1)
        return f"{shown}, {_row(r)}: sequence {show(str(ids[r]))}, step {step - int(starts[r])}"

    inner = col.flatten()
    if key == opts.tokens_key:
        return _token_rows(inner, lengths, ids, shown, key, at)

    if _is_list(inner.type):
        if inner.null_count:
            raise DataError(f"{at(_first(inner.is_null()))} is null (a step must be a list of numbers)")
        widths = np.asarray(pc.list_value_length(inner).to_numpy(zero_copy_only=False), dtype=np.int64)
        width = int(widths[0])
        ragged = np.flatnonzero(widths != width)
        if ragged.size:
            s = int(ragged[0])
            raise DataError(f"{at(s)} has {int(widths[s])} features but the first step of row 1 has {width}")
        if width == 0:
            raise DataError(f"{at(0)} has no features (an empty list)")
        leaf = inner.flatten()
    else:
        width, leaf = 1, inner
    if not _is_number(leaf.type):
        raise DataError(
            f"{shown}: column {key!r} holds {_typ(leaf.type)} values, not numbers "
            "(expected list<list<number>> or list<number>)"
        )
    if leaf.null_count:
        k = _first(leaf.is_null())
        raise DataError(f"{at(k // width)}, feature {k % width} is null (missing value)")
    try:
        x = np.asarray(pc.cast(leaf, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - e.g. a decimal beyond float64
        raise DataError(f"{shown}: column {key!r} cannot be read as numbers ({reason(e)})") from None
    x = x.reshape(-1, width)
    x32, bad = float32_values(x)
    if bad.any():
        s, f = (int(a[0]) for a in np.nonzero(bad))
        raise DataError(f"{at(s)}, feature {f} {bad_value_text(x[s, f])}")
    return Sequences(x32, lengths, ids, shown)


def _token_rows(inner, lengths, ids, shown: str, key: str, at) -> Sequences:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(inner.type):
        inner = inner.dictionary_decode()
    t = inner.type
    if pa.types.is_integer(t) or pa.types.is_large_string(t):
        inner = pc.cast(inner, pa.string())
    elif not pa.types.is_string(t):
        raise DataError(f"{shown}: column {key!r} holds {_typ(t)} values; tokens must be strings or integers")
    if inner.null_count:
        raise DataError(f"{at(_first(inner.is_null()))} is null (a token must be a string or an integer)")
    tokens = inner.to_numpy(zero_copy_only=False).tolist()
    check_tokens(tokens, lambda k: f"{at(k)}: token")
    return Sequences(np.asarray(tokens, dtype=str), lengths, ids, shown)


# -- long format -----------------------------------------------------------------------


def _long(table, shown: str, id_col: str, step_col: str | None, features: list[str]) -> Sequences:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    id_arr = _id_strings(table.column(id_col), shown, id_col)
    position = {name: k for k, name in enumerate(table.column_names)}
    problems: list[tuple[int, int, str]] = []  # (row, column position, message)

    def numeric(name: str, float32: bool) -> np.ndarray:
        col = table.column(name)
        if pa.types.is_dictionary(col.type) or not _is_number(col.type):
            raise DataError(f"{shown}: column {name!r} has type {_typ(col.type)}; it must hold numbers")
        try:
            x = np.asarray(pc.cast(col, pa.float64(), safe=False).to_numpy(), dtype=np.float64)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{shown}: column {name!r} cannot be read as numbers ({reason(e)})") from None
        pos = position[name]
        x32, bad = float32_values(x) if float32 else (x, ~np.isfinite(x))
        if col.null_count:
            is_null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            problems.append((int(np.argmax(is_null)), pos, f"column {name!r} is null (missing value)"))
            bad &= ~is_null  # a null is reported as missing, not as NaN
        if bad.any():
            r = int(np.argmax(bad))
            problems.append((r, pos, f"column {name!r} {bad_value_text(x[r])}"))
        return x32

    x, steps = numeric_columns(numeric, n, step_col, features)
    if problems:
        row, _, msg = min(problems)
        raise DataError(f"{shown}, {_row(row)}: {msg}")

    def step_text(r: int) -> str:
        v = float(steps[r])
        return str(int(v)) if v.is_integer() else repr(v)

    return group_rows(x, id_arr, steps, shown, id_col, _row, step_text)
