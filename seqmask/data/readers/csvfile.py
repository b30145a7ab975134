"""CSV: long format (one row per step, an id column naming the sequence), and the
one-file-per-sequence form that :mod:`seqmask.data.readers.files` reads.

Parsed by ``pyarrow.csv`` (C++, multi-threaded); when it fails, a second,
line-by-line pass (:mod:`._csvrows`) finds the first bad line for the message.
Line numbers in messages are physical lines (line 1 is the header), with ``\\n``,
``\\r\\n`` and ``\\r`` all ending a line and blank lines counted but skipped. They
are exact as long as no quoted field spans several lines (not supported: ids and
numbers never need it).
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seqmask.data import Sequences
from seqmask.data.readers._arrays import first_repeat
from seqmask.data.readers._common import Options, gunzip_if_gzip, read_bytes, reason, utf8_text
from seqmask.data.readers._csvrows import Columns, Lines, cell_problem, scan_csv
from seqmask.data.readers._long import column_problems, group_rows, long_columns, null_mask, numeric_columns
from seqmask.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pacsv

_NOT_BLANK = re.compile(rb"[^ \t\r\n]")
_LINE_END = re.compile(rb"[\r\n]")


def read_csv(p: Path, shown: str, opts: Options) -> Sequences:
    """Long format: sequences gathered by id, in order of each id's first row."""
    t = _load(p, shown, opts, "no sequences (the file has a header row but no data rows)")
    id_col = t.columns.id_col
    assert id_col is not None  # id_required (the default): long_columns found it
    id_array = t.table.column(id_col).combine_chunks()
    return group_rows(t.x, t.columns.features, id_array, t.steps, shown, id_col, t.lines.where, t.step_text)


def read_csv_sequence(p: Path, shown: str, opts: Options) -> tuple[np.ndarray, list[str]]:
    """One file = one sequence: ``(steps, features)`` float32 rows and the feature
    names. Rows keep file order, or are sorted by ``step_column`` when given. A
    column named ``id_column`` is ignored (the file name is the id)."""
    no_rows = "no steps (the file has a header row but no data rows); every sequence needs at least one step"
    t = _load(p, shown, opts, no_rows, id_required=False)
    if t.steps is None:
        return t.x, t.columns.features
    order = np.argsort(t.steps, kind="stable")
    repeat = first_repeat(order, t.steps)
    if repeat is not None:
        a, b = repeat
        where = t.lines.where
        raise DataError(f"{shown}, {where(b)}: step {t.step_text(b)} appears twice (also on {where(a)})")
    return t.x[order], t.columns.features


@dataclass(frozen=True)
class _Loaded:
    """A parsed CSV file: its columns, the table, the features ``(rows, features)``
    float32 and the steps ``(rows,)`` float64 (or None), in file order."""

    columns: Columns
    table: pa.Table
    x: np.ndarray
    steps: np.ndarray | None
    lines: Lines

    def step_text(self, row: int) -> str:
        """Row ``row``'s step as written in the file, for a message."""
        assert self.steps is not None and self.columns.step_col is not None  # only with a step column
        return self.lines.cell(row, self.columns.header.index(self.columns.step_col), float(self.steps[row]))


def _load(p: Path, shown: str, opts: Options, no_rows: str, id_required: bool = True) -> _Loaded:
    """Read, parse and check ``p``; ``no_rows`` is the message for a header alone,
    and ``id_required=False`` reads one file per sequence (no id column)."""
    raw = gunzip_if_gzip(read_bytes(p, shown), shown)
    header, has_data = _csv_header(raw, shown)
    columns = _csv_columns(header, opts, shown, id_required)
    if not has_data:
        raise DataError(f"{shown}: {no_rows}")
    table = _parse(raw, shown, columns)
    lines = Lines(raw)
    x, steps = _numbers(table, columns, lines, shown)
    return _Loaded(columns, table, x, steps, lines)


def _parse(raw: bytes, shown: str, columns: Columns) -> pa.Table:
    """The used columns of the file, as pyarrow parses them: the id as strings, the
    others as float64 (nulls where a cell is empty)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read, parse, convert = _arrow_options(columns)
    try:
        return pacsv.read_csv(pa.BufferReader(raw), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, ValueError, OSError, MemoryError) as e:
        problem = scan_csv(raw, columns)
        if problem is not None:
            raise DataError(f"{shown}, {problem}") from None
        raise DataError(
            f"{shown}: cannot parse as CSV ({reason(e)}); note that quoted fields "
            "spanning several lines are not supported"
        ) from None


def _arrow_options(columns: Columns) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    """pyarrow's options for the dialect read here: commas, double quotes, no escape
    character, no line breaks inside a field, blank lines skipped, UTF-8 checked."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {c: pa.float64() for c in columns.used}
    if columns.id_col is not None:
        types[columns.id_col] = pa.string()
    return (
        pacsv.ReadOptions(column_names=columns.header, skip_rows=1, use_threads=True),
        pacsv.ParseOptions(
            delimiter=",",
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=True,
        ),
        pacsv.ConvertOptions(
            column_types=types,
            include_columns=columns.used,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            check_utf8=True,
        ),
    )


def _csv_header(raw: bytes, shown: str) -> tuple[list[str], bool]:
    """The header row's column names, and whether anything but blanks follows it."""
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    if _NOT_BLANK.search(raw, start) is None:
        raise DataError(f"{shown}: no sequences (the file is empty: no header row, no data)")
    end = _LINE_END.search(raw, start)
    stop = end.start() if end else len(raw)
    first = raw[start:stop]
    if not first.strip(b" \t"):
        raise DataError(f"{shown}, line 1: empty; the first line must be the header row naming the columns")
    has_data = _NOT_BLANK.search(raw, stop) is not None
    text = utf8_text(first, lambda _: f"{shown}, line 1")
    try:
        header = next(csv.reader([text]))
    except (csv.Error, StopIteration) as e:
        raise DataError(f"{shown}, line 1: cannot parse the header row ({e})") from None
    seen: set[str] = set()
    for k, name in enumerate(header):
        if name == "":
            raise DataError(f"{shown}, line 1: column {k + 1} of the header has no name")
        if name in seen:
            raise DataError(f"{shown}, line 1: column name {name!r} appears more than once in the header")
        seen.add(name)
    return header, has_data


def _csv_columns(header: list[str], opts: Options, shown: str, id_required: bool) -> Columns:
    """The roles of the header's columns. With ``id_required=False`` (one file per
    sequence) the id column is None, and a column of that name is skipped."""
    id_col, step_col, features = long_columns(
        header,
        opts,
        shown,
        where=" in the header",
        id_hint="set id_column to the column that names each sequence" if id_required else None,
    )
    return Columns(header, id_col if id_required else None, step_col, features)


def _numbers(table: pa.Table, columns: Columns, lines: Lines, shown: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The features ``(rows, features)`` float32 and the steps ``(rows,)`` float64
    (or None) of a parsed table; ``DataError`` for the first bad cell, by (row,
    column position)."""
    if table.num_rows == 0:
        what = "sequences" if columns.id_col is not None else "steps"
        raise DataError(f"{shown}: no {what} (the file has a header row but no data rows)")
    position = columns.header.index
    problems: list[tuple[int, int, str, str]] = []  # (row, header position, column, kind)
    if columns.id_col is not None:
        id_nulls = null_mask(table.column(columns.id_col))
        if id_nulls is not None:
            problems.append((int(np.argmax(id_nulls)), position(columns.id_col), columns.id_col, "missing_id"))

    def numeric(name: str, float32: bool) -> np.ndarray:
        col = table.column(name)
        x, found = column_problems(np.asarray(col.to_numpy(), dtype=np.float64), null_mask(col), float32)
        problems.extend((row, position(name), name, kind) for row, kind in found)
        return x

    x, steps = numeric_columns(numeric, table.num_rows, columns.step_col, columns.features)
    if problems:
        row, pos, name, kind = min(problems)
        raise DataError(f"{shown}, {lines.where(row)}: {cell_problem(lines, row, pos, name, kind)}")
    return x, steps
