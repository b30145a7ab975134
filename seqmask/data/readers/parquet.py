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

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seqmask.data import Sequences
from seqmask.data.readers._arrays import bad_value_text, check_unique_ids, checked_float32, common_width, locate_step
from seqmask.data.readers._common import Options, check_tokens, cols, read_nonempty, reason, reject_column_options, show
from seqmask.data.readers._long import column_problems, group_rows, long_columns, null_mask, numeric_columns
from seqmask.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq


def _row(r: int) -> str:
    return f"row {r + 1}"


def _is_list(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _is_number(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _typ(t: pa.DataType) -> str:
    """A pyarrow type for a message, on one line (field names may hold anything)."""
    return " ".join(str(t).split())


def _first(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(np.argmax(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)))


def read_parquet(p: Path, shown: str, opts: Options) -> Sequences:
    """One row per sequence when the schema has a list column ``values_key`` or
    ``tokens_key``; otherwise long format."""
    pf = _open(read_nonempty(p, shown), shown)
    schema = pf.schema_arrow
    names = list(schema.names)
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
        return _rows(_read(pf, [opts.id_key, key], shown), shown, opts, key)
    id_col, step_col, features = long_columns(
        names,
        opts,
        shown,
        where="",
        id_hint="give a long-format table (id_column, feature columns) or one row per sequence "
        f"with a list column {opts.values_key!r} or {opts.tokens_key!r}",
    )
    used = [id_col] + ([step_col] if step_col is not None else []) + features
    return _long(_read(pf, used, shown), shown, id_col, step_col, features)


def _open(raw: bytes, shown: str) -> pq.ParquetFile:
    """The Parquet file in ``raw``, its schema read and its column names unique."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not raw.startswith(b"PAR1"):
        raise DataError(f"{shown}: not a Parquet file (it does not start with the 'PAR1' marker)")
    try:
        pf = pq.ParquetFile(pa.BufferReader(raw))
        names = list(pf.schema_arrow.names)
    except Exception as e:  # noqa: BLE001 - a corrupt file fails in many ways
        raise DataError(f"{shown}: not a valid Parquet file ({reason(e)})") from None
    dup = [n for k, n in enumerate(names) if n in names[:k]]
    if dup:
        raise DataError(f"{shown}: column name {dup[0]!r} appears more than once")
    return pf


def _read(pf: pq.ParquetFile, columns: list[str], shown: str) -> pa.Table:
    try:
        table = pf.read(columns=columns, use_threads=True)
        table.validate(full=True)
    except Exception as e:  # noqa: BLE001 - corrupt pages fail in many ways
        raise DataError(f"{shown}: cannot read the Parquet data ({reason(e)})") from None
    if table.num_rows == 0:
        raise DataError(f"{shown}: no sequences (the file has no rows)")
    return table


def _as_strings(arr: pa.Array) -> tuple[pa.Array, bool]:
    """``arr`` (dictionary-decoded) as a pyarrow string array, integers as their
    text; and whether it could be (False: it holds something else)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_integer(arr.type) or pa.types.is_large_string(arr.type):
        return pc.cast(arr, pa.string()), True
    return arr, bool(pa.types.is_string(arr.type))


def _id_strings(chunked: pa.ChunkedArray, shown: str, name: str) -> pa.Array:
    """The id column as a pyarrow string array, checked: no nulls, no empty ids."""
    import pyarrow.compute as pc

    arr, ok = _as_strings(chunked.combine_chunks())
    if not ok:
        raise DataError(f"{shown}: column {name!r} has type {_typ(arr.type)}; ids must be strings or integers")
    if arr.null_count:
        raise DataError(f"{shown}, {_row(_first(arr.is_null()))}: column {name!r} is null (every sequence needs an id)")
    empty = pc.equal(pc.utf8_length(arr), 0)
    if pc.any(empty).as_py():
        raise DataError(f"{shown}, {_row(_first(empty))}: column {name!r} is empty (every sequence needs an id)")
    return arr


# -- one row per sequence ------------------------------------------------------------


def _rows(table: pa.Table, shown: str, opts: Options, key: str) -> Sequences:
    """One row per sequence: ids in ``id_key``, the steps in the list column ``key``."""
    import pyarrow.compute as pc

    ids = _unique_ids(table, shown, opts.id_key)  # (sequences,)
    col = table.column(key).combine_chunks()
    if col.null_count:
        r = _first(col.is_null())
        raise DataError(f"{shown}, {_row(r)}: sequence {show(str(ids[r]))} has a null {key!r}")
    lengths = np.asarray(pc.list_value_length(col).to_numpy(zero_copy_only=False), dtype=np.int64)  # (sequences,)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        r = int(empty[0])
        raise DataError(
            f"{shown}, {_row(r)}: sequence {show(str(ids[r]))} is empty; every sequence needs at least one step"
        )

    def at(step: int) -> str:
        """Global step index -> "row R: sequence 'x', step S"."""
        r, s = locate_step(lengths, step)
        return f"{shown}, {_row(r)}: sequence {show(str(ids[r]))}, step {s}"

    inner = col.flatten()  # (total_steps,): one item per step
    if key == opts.tokens_key:
        tokens = _token_rows(inner, shown, key, at)
    else:
        tokens = _value_rows(inner, shown, key, at)
    return Sequences(tokens, lengths, ids, shown)


def _unique_ids(table: pa.Table, shown: str, id_key: str) -> np.ndarray:
    """The ids ``(sequences,)`` of a table with one row per sequence, each once."""
    import pyarrow.compute as pc

    id_arr = _id_strings(table.column(id_key), shown, id_key)
    nul = pc.match_substring(id_arr, "\x00")
    if pc.any(nul).as_py():
        raise DataError(f"{shown}, {_row(_first(nul))}: column {id_key!r} contains a NUL character")
    ids = np.asarray(id_arr.to_numpy(zero_copy_only=False), dtype=str)
    check_unique_ids(ids, shown, _row, f"in column {id_key!r}")
    return ids


def _value_rows(inner: pa.Array, shown: str, key: str, at: Callable[[int], str]) -> np.ndarray:
    """The steps of every sequence, ``(total_steps, features)`` float32: ``inner``
    holds one item per step, a list of numbers or (one feature) a number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    width, leaf = _step_width(inner, at)
    if not _is_number(leaf.type):
        raise DataError(
            f"{shown}: column {key!r} holds {_typ(leaf.type)} values, not numbers "
            "(expected list<list<number>> or list<number>)"
        )

    def place(step: int, feature: int) -> str:
        return f"{at(step)}, feature {feature}"

    if leaf.null_count:
        raise DataError(f"{place(*divmod(_first(leaf.is_null()), width))} is null (missing value)")
    try:
        x = np.asarray(pc.cast(leaf, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - e.g. a decimal beyond float64
        raise DataError(f"{shown}: column {key!r} cannot be read as numbers ({reason(e)})") from None
    return checked_float32(x.reshape(-1, width), place)  # (total_steps, features)


def _step_width(inner: pa.Array, at: Callable[[int], str]) -> tuple[int, pa.Array]:
    """The number of features per step, and the numbers of all steps end to end."""
    import pyarrow.compute as pc

    if not _is_list(inner.type):
        return 1, inner
    if inner.null_count:
        raise DataError(f"{at(_first(inner.is_null()))} is null (a step must be a list of numbers)")
    widths = np.asarray(pc.list_value_length(inner).to_numpy(zero_copy_only=False), dtype=np.int64)  # (total_steps,)
    width = common_width(widths, at, "the first step of row 1")
    if width == 0:
        raise DataError(f"{at(0)} has no features (an empty list)")
    return width, inner.flatten()


def _token_rows(inner: pa.Array, shown: str, key: str, at: Callable[[int], str]) -> np.ndarray:
    """The tokens of every sequence end to end, ``(total_tokens,)`` unicode."""
    strings, ok = _as_strings(inner)
    if not ok:
        raise DataError(
            f"{shown}: column {key!r} holds {_typ(strings.type)} values; tokens must be strings or integers"
        )
    if strings.null_count:
        raise DataError(f"{at(_first(strings.is_null()))} is null (a token must be a string or an integer)")
    tokens = strings.to_numpy(zero_copy_only=False).tolist()
    check_tokens(tokens, lambda k: f"{at(k)}: token")
    return np.asarray(tokens, dtype=str)


# -- long format -----------------------------------------------------------------------


def _long(table: pa.Table, shown: str, id_col: str, step_col: str | None, features: list[str]) -> Sequences:
    """Long format: one row per step, gathered into sequences by ``id_col``."""
    id_arr = _id_strings(table.column(id_col), shown, id_col)
    position = {name: k for k, name in enumerate(table.column_names)}
    problems: list[tuple[int, int, str]] = []  # (row, column position, message)

    def numeric(name: str, float32: bool) -> np.ndarray:
        col = table.column(name)
        x64 = _float64_column(col, shown, name)  # (rows,)
        x, found = column_problems(x64, null_mask(col), float32)
        for row, kind in found:
            what = "is null (missing value)" if kind == "missing" else bad_value_text(x64[row])
            problems.append((row, position[name], f"column {name!r} {what}"))
        return x

    x, steps = numeric_columns(numeric, table.num_rows, step_col, features)  # (rows, features), (rows,)
    if problems:
        row, _, msg = min(problems)
        raise DataError(f"{shown}, {_row(row)}: {msg}")

    def step_text(r: int) -> str:
        assert steps is not None  # only asked about with a step column
        v = float(steps[r])
        return str(int(v)) if v.is_integer() else repr(v)

    return group_rows(x, features, id_arr, steps, shown, id_col, _row, step_text)


def _float64_column(col: pa.ChunkedArray, shown: str, name: str) -> np.ndarray:
    """A numeric column ``(rows,)`` as float64, nulls as NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type) or not _is_number(col.type):
        raise DataError(f"{shown}: column {name!r} has type {_typ(col.type)}; it must hold numbers")
    try:
        return np.asarray(pc.cast(col, pa.float64(), safe=False).to_numpy(), dtype=np.float64)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{shown}: column {name!r} cannot be read as numbers ({reason(e)})") from None
