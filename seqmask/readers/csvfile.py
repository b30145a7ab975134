"""CSV: long format (one row per step, an id column naming the sequence), and the
one-file-per-sequence form that :mod:`seqmask.readers.files` reads.

Parsed by ``pyarrow.csv`` (C++, multi-threaded); when it fails, a second,
line-by-line pass finds the first bad line for the message. Line numbers in
messages are physical lines (line 1 is the header), with ``\\n``, ``\\r\\n`` and
``\\r`` all ending a line and blank lines counted but skipped. They are exact as
long as no quoted field spans several lines (not supported: ids and numbers never
need it).
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import operator
import re
from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError
from seqmask.readers._arrays import F32_MAX
from seqmask.readers._common import Options, gunzip_if_gzip, read_bytes, reason, show
from seqmask.readers._long import group_rows, long_columns, numeric_columns

# What pyarrow's float parser accepts (checked against pyarrow 15+): optional
# blanks, sign, decimal or exponent notation, inf/infinity/nan(any case), nan(...).
_NUMBER = re.compile(
    r"[ \t]*[+-]?(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<word>inf(?:inity)?|nan(?:\([0-9a-z_]*\))?))[ \t]*",
    re.IGNORECASE | re.ASCII,
)
_NUM = r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*"
# A row whose numeric cells all match this needs no closer look.
_PLAIN_NUMBERS = re.compile(rf"{_NUM}(?:,{_NUM})*", re.ASCII)
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")
_LINE_END = re.compile(rb"[\r\n]")
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


def read_csv(p: Path, shown: str, opts: Options) -> Sequences:
    """Long format: sequences gathered by id, in order of each id's first row."""
    raw = gunzip_if_gzip(read_bytes(p, shown), shown)
    header, has_data = _csv_header(raw, shown)
    id_col, step_col, features = _csv_columns(header, opts, shown, id_required=True)
    if not has_data:
        raise DataError(f"{shown}: no sequences (the file has a header row but no data rows)")
    assert id_col is not None
    table = _parse(raw, shown, header, id_col, step_col, features)
    x, steps = _numbers(table, raw, header, id_col, step_col, features, shown)
    lines = _LazyLines(raw)
    return group_rows(
        x,
        table.column(id_col).combine_chunks(),
        steps,
        shown,
        id_col,
        lines.where,
        lambda row: lines.cell(row, header.index(step_col), float(steps[row])),
    )


def read_csv_sequence(p: Path, shown: str, opts: Options) -> tuple[np.ndarray, list[str]]:
    """One file = one sequence: ``(steps, features)`` float32 rows and the feature
    names. Rows keep file order, or are sorted by ``step_column`` when given. A
    column named ``id_column`` is ignored (the file name is the id)."""
    raw = gunzip_if_gzip(read_bytes(p, shown), shown)
    header, has_data = _csv_header(raw, shown)
    _, step_col, features = _csv_columns(header, opts, shown, id_required=False)
    if not has_data:
        raise DataError(
            f"{shown}: no steps (the file has a header row but no data rows); "
            "every sequence needs at least one step"
        )
    table = _parse(raw, shown, header, None, step_col, features)
    x, steps = _numbers(table, raw, header, None, step_col, features, shown)
    if steps is not None:
        order = np.argsort(steps, kind="stable")
        s = steps[order]
        dup = np.flatnonzero(s[1:] == s[:-1])
        if dup.size:
            earlier, later = order[:-1][dup], order[1:][dup]
            j = int(np.argmin(later))
            a, b = int(earlier[j]), int(later[j])
            lines = _LazyLines(raw)
            text = lines.cell(b, header.index(step_col), float(steps[b]))
            raise DataError(f"{shown}, {lines.where(b)}: step {text} appears twice (also on {lines.where(a)})")
        x = x[order]
    return x, features


class _LazyLines:
    """Row -> physical line, computed only when a message needs it."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._numbers: list[int] | None = None

    @property
    def numbers(self) -> list[int]:
        if self._numbers is None:
            self._numbers = _data_line_numbers(self._raw)
        return self._numbers

    def where(self, row: int) -> str:
        return _where_row(self.numbers, row)

    def cell(self, row: int, col: int, fallback: float) -> str:
        text = _cell_text(self._raw, self.numbers[row], col) if row < len(self.numbers) else None
        return text.strip(" \t") if text else repr(fallback)


def _parse(raw: bytes, shown: str, header: list[str], id_col: str | None, step_col: str | None, features: list[str]):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    used = ([id_col] if id_col is not None else []) + ([step_col] if step_col is not None else []) + features
    types = {c: pa.float64() for c in used}
    if id_col is not None:
        types[id_col] = pa.string()
    try:
        return pacsv.read_csv(
            pa.BufferReader(raw),
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=True),
            parse_options=pacsv.ParseOptions(
                delimiter=",",
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=True,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=used,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                check_utf8=True,
            ),
        )
    except (pa.ArrowException, ValueError, OSError, MemoryError) as e:
        problem = _scan_csv(raw, header, id_col, step_col, features)
        if problem is not None:
            raise DataError(f"{shown}, {problem}") from None
        raise DataError(
            f"{shown}: cannot parse as CSV ({reason(e)}); note that quoted fields "
            "spanning several lines are not supported"
        ) from None


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
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{shown}, line 1: not valid UTF-8 text (byte {first[e.start]:#04x})") from None
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


def _csv_columns(
    header: list[str], opts: Options, shown: str, id_required: bool
) -> tuple[str | None, str | None, list[str]]:
    """``(id column, step column, feature columns)``. With ``id_required=False`` (one
    file per sequence) the id column is None, and a column of that name is skipped."""
    id_col, step_col, features = long_columns(
        header,
        opts,
        shown,
        where=" in the header",
        id_hint="set id_column to the column that names each sequence" if id_required else None,
    )
    return (id_col if id_required else None), step_col, features


def _data_line_numbers(raw: bytes) -> list[int]:
    """1-based line numbers of the non-blank lines after the header: row r is on line [r]."""
    lines = raw.splitlines()
    return [k + 1 for k in range(1, len(lines)) if lines[k]]


def _where_row(line_numbers: list[int], row: int) -> str:
    """``"line N"`` for data row ``row`` (0-based), or a fallback when lines and rows
    disagree (a quoted field spanning lines: unsupported, but never a traceback)."""
    if 0 <= row < len(line_numbers):
        return f"line {line_numbers[row]}"
    return f"data row {row + 1}"


def _cell_text(raw: bytes, line_no: int, col: int) -> str | None:
    try:
        line = raw.splitlines()[line_no - 1].decode("utf-8", "surrogateescape")
        return next(csv.reader([line]))[col]
    except Exception:  # noqa: BLE001 - only decorates a message
        return None


def _fits_float32(v: float) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(v)))


def _number_problem(cell: str, float32: bool) -> str | None:
    """Why a numeric cell is unusable, or None. Mirrors pyarrow's float parser."""
    if cell == "":
        return "is empty (missing value)"
    m = _NUMBER.fullmatch(cell)
    if m is None:
        return f"has non-numeric value {show(cell)}"
    shown = show(cell.strip(" \t"))
    if m.group("word") is not None:
        return f"is NaN/Inf ({shown})"
    v = float(m.group("num"))
    if not math.isfinite(v):
        return f"value {shown} is out of range (overflows to Inf)"
    if float32 and abs(v) > F32_MAX and not _fits_float32(v):
        return f"value {shown} is too large for float32"
    return None


def _scan_csv(
    raw: bytes, header: list[str], id_col: str | None, step_col: str | None, features: list[str]
) -> str | None:
    """The first bad line, as ``"line N: ..."``, found by a plain line-by-line pass.

    Runs only after pyarrow failed, so a loop per line is fine here; it is kept
    cheap (one regex over a row's numeric cells) and checks each cell only in the
    rare rows that the fast test does not pass.
    """
    id_pos = header.index(id_col) if id_col is not None else None
    num_positions = [
        (k, c) for k, c in enumerate(header) if c == step_col or (c in features and c != id_col)
    ]
    n_cols = len(header)
    pick_numbers = operator.itemgetter(*[k for k, _ in num_positions])
    single = len(num_positions) == 1
    reader = csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"), newline=""))
    try:
        next(reader)  # the header, already checked
        for cells in reader:
            if not cells:
                continue  # a blank line: pyarrow skips it too
            line_no = reader.line_num
            if len(cells) != n_cols:
                return (
                    f"line {line_no}: expected {n_cols} cells ({', '.join(header)}), "
                    f"found {len(cells)}"
                )
            id_cell = cells[id_pos] if id_pos is not None else "-"
            numbers = pick_numbers(cells)
            joined = numbers if single else ",".join(numbers)
            # Overflowing values (1e400) pass this fast test; pyarrow does not fail on
            # them (they become Inf), so they are reported by the vectorized checks.
            if (
                id_cell == ""
                or (not id_cell.isascii() and _SURROGATE.search(id_cell))
                or not _PLAIN_NUMBERS.fullmatch(joined)
                or joined.count(",") != len(num_positions) - 1  # a cell held a comma
            ):
                problem = _row_problem(cells, id_pos, id_col, num_positions, step_col)
                if problem is not None:
                    return f"line {line_no}: {problem}"
    except csv.Error as e:
        return f"line {reader.line_num}: cannot be parsed as CSV ({e})"
    return None


def _row_problem(
    cells: list[str],
    id_pos: int | None,
    id_col: str | None,
    num_positions: list[tuple[int, str]],
    step_col: str | None,
) -> str | None:
    checks = [*num_positions] if id_pos is None else [(id_pos, id_col), *num_positions]
    for pos, name in sorted(checks):
        cell = cells[pos]
        if _SURROGATE.search(cell):
            bad = cell.encode("utf-8", "surrogateescape")
            return f"column {name!r} is not valid UTF-8 text ({bad!r})"
        if pos == id_pos:
            if cell == "":
                return f"column {name!r} is empty (every row needs a sequence id)"
            continue
        problem = _number_problem(cell, float32=name != step_col)
        if problem is not None:
            return f"column {name!r} {problem}"
    return None




def _numbers(
    table, raw: bytes, header: list[str], id_col: str | None, step_col: str | None, features: list[str], shown: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The feature matrix (float32) and the steps (float64, or None) of a parsed
    table; ``DataError`` for the first bad cell, by (row, column position)."""
    import pyarrow.compute as pc

    n = table.num_rows
    if n == 0:
        what = "sequences" if id_col is not None else "steps"
        raise DataError(f"{shown}: no {what} (the file has a header row but no data rows)")

    problems: list[tuple[int, int, str, str]] = []  # (row, header pos, column, kind)

    def first_true(mask: np.ndarray) -> int | None:
        hit = np.flatnonzero(mask)
        return int(hit[0]) if hit.size else None

    def nulls(col) -> np.ndarray:
        return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)

    if id_col is not None:
        id_chunked = table.column(id_col)
        if id_chunked.null_count:
            problems.append((first_true(nulls(id_chunked)), header.index(id_col), id_col, "missing_id"))

    def numeric(name: str, float32: bool) -> np.ndarray:
        col = table.column(name)
        x = np.asarray(col.to_numpy(), dtype=np.float64)
        finite = np.isfinite(x)
        candidates = []
        if col.null_count:
            is_null = nulls(col)
            candidates.append((first_true(is_null), "missing"))
            r = first_true(~(finite | is_null))  # a null is reported as missing, not as NaN
        else:
            r = first_true(~finite)
        if r is not None:
            candidates.append((r, "nonfinite"))
        if float32:
            with np.errstate(over="ignore", invalid="ignore"):
                x = x.astype(np.float32)
            r = first_true(finite & ~np.isfinite(x))
            if r is not None:
                candidates.append((r, "float32"))
        for row, kind in candidates:
            problems.append((row, header.index(name), name, kind))
        return x

    x, steps = numeric_columns(numeric, n, step_col, features)
    if problems:
        row, pos, name, kind = min(problems)
        line_numbers = _data_line_numbers(raw)
        where = _where_row(line_numbers, row)
        cell = _cell_text(raw, line_numbers[row], pos) if row < len(line_numbers) else None
        if kind == "missing_id":
            msg = f"column {name!r} is empty (every row needs a sequence id)"
        elif kind == "missing":
            msg = "is empty (missing value)"
        else:
            msg = None
            if cell is not None:
                msg = _number_problem(cell, float32=kind == "float32")
            if msg is None or msg.startswith(("is empty", "has non-numeric")):
                msg = "is NaN/Inf" if kind == "nonfinite" else "is too large for float32"
        if kind != "missing_id":
            msg = f"column {name!r} {msg}"
        raise DataError(f"{shown}, {where}: {msg}")
    return x, steps
