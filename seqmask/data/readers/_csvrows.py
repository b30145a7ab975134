"""The CSV reader's messages: which physical line a row is on, what a cell says
there, and, when pyarrow fails to parse a file, which line is the first bad one.

pyarrow reports neither a line nor a readable reason, so this side re-reads the
file (only on the way to an error) with the standard library's ``csv`` module.
What counts as a number is left to pyarrow itself (:func:`number_problem`), so a
message never disagrees with the reader that failed.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from seqmask.data.readers._arrays import F32_MAX
from seqmask.data.readers._common import show

if TYPE_CHECKING:
    from _csv import Reader

# A plain decimal number, blanks around it allowed: a strict subset of what pyarrow
# parses, so a row whose numeric cells all match needs no closer look. It only
# picks the rows to look at; pyarrow decides what is wrong with them.
_NUM = r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*"
_PLAIN_NUMBERS = re.compile(rf"{_NUM}(?:,{_NUM})*", re.ASCII)
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)
EMPTY_ID = "is empty (every row needs a sequence id)"


@dataclass(frozen=True)
class Columns:
    """A CSV file's header and the role of the columns used: the id column (None
    for one file per sequence), the step column (or None) and the features."""

    header: list[str]
    id_col: str | None
    step_col: str | None
    features: list[str]

    @property
    def used(self) -> list[str]:
        """The columns to parse: id, step, then the features."""
        id_part = [self.id_col] if self.id_col is not None else []
        return id_part + ([self.step_col] if self.step_col is not None else []) + self.features


# -- rows -> lines ----------------------------------------------------------------------


class Lines:
    """Data row -> physical line and cell text, computed only when a message needs it."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._numbers: list[int] | None = None

    @property
    def numbers(self) -> list[int]:
        """1-based line numbers of the non-blank lines after the header: row r is on
        line ``numbers[r]``."""
        if self._numbers is None:
            lines = self._raw.splitlines()
            self._numbers = [k + 1 for k in range(1, len(lines)) if lines[k]]
        return self._numbers

    def where(self, row: int) -> str:
        """``"line N"`` for data row ``row`` (0-based), or a fallback when lines and
        rows disagree (a quoted field spanning lines: unsupported, but never a traceback)."""
        if 0 <= row < len(self.numbers):
            return f"line {self.numbers[row]}"
        return f"data row {row + 1}"

    def text(self, row: int, col: int) -> str | None:
        """Cell ``col`` of data row ``row`` as written in the file, or None."""
        if row >= len(self.numbers):
            return None
        try:
            line = self._raw.splitlines()[self.numbers[row] - 1].decode("utf-8", "surrogateescape")
            return next(csv.reader([line]))[col]
        except Exception:  # noqa: BLE001 - only decorates a message
            return None

    def cell(self, row: int, col: int, fallback: float) -> str:
        """The cell's text for a message, or ``fallback`` (the value read) without one."""
        text = self.text(row, col)
        return text.strip(" \t") if text else repr(fallback)


# -- what is wrong with a cell -------------------------------------------------------------


def _arrow_float(cell: str) -> float | None:
    """``cell`` as pyarrow's CSV reader converts it to a float64, or None where it
    refuses. The reader trims spaces and tabs around a number before parsing it;
    a cast does not, so they are trimmed here."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        value: float = pc.cast(pa.array([cell.strip(" \t")], pa.string()), pa.float64())[0].as_py()
    except (pa.ArrowException, ValueError):  # ValueError: a lone surrogate, too
        return None
    return value


def number_problem(cell: str, float32: bool) -> str | None:
    """Why a numeric cell is unusable, or None; ``float32`` for a feature (a step is
    kept as float64)."""
    if cell == "":
        return "is empty (missing value)"
    v = _arrow_float(cell)
    if v is None:
        return f"has non-numeric value {show(cell)}"
    shown = show(cell.strip(" \t"))
    # An infinity without digits was written as a word (inf, Infinity); with digits
    # it is a number too large for float64 (1e400).
    if math.isnan(v) or (math.isinf(v) and not any(c.isdigit() for c in cell)):
        return f"is NaN/Inf ({shown})"
    if math.isinf(v):
        return f"value {shown} is out of range (overflows to Inf)"
    if float32 and abs(v) > F32_MAX and not _fits_float32(v):
        return f"value {shown} is too large for float32"
    return None


def _fits_float32(v: float) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(v)))


def cell_problem(lines: Lines, row: int, pos: int, name: str, kind: str) -> str:
    """The message for a bad cell that pyarrow read (a ``kind`` of
    :func:`seqmask.data.readers._long.column_problems`, or ``"missing_id"``), worded
    from the cell's text in the file."""
    if kind == "missing_id":
        return f"column {name!r} {EMPTY_ID}"
    if kind == "missing":
        return f"column {name!r} is empty (missing value)"
    cell = lines.text(row, pos)
    msg = number_problem(cell, float32=kind == "float32") if cell is not None else None
    # The text and the value disagree only where lines and rows do.
    if msg is None or msg.startswith(("is empty", "has non-numeric")):
        msg = "is NaN/Inf" if kind == "nonfinite" else "is too large for float32"
    return f"column {name!r} {msg}"


# -- the first bad line, after pyarrow failed ---------------------------------------------


def scan_csv(raw: bytes, columns: Columns) -> str | None:
    """The first bad line, as ``"line N: ..."``, found by a plain line-by-line pass.

    Runs only after pyarrow failed, so a loop per line is fine here; it is kept
    cheap (one regex over a row's numeric cells) and checks each cell only in the
    rare rows that the fast test does not pass.
    """
    reader = csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"), newline=""))
    try:
        next(reader)  # the header, already checked
        return _RowCheck(columns).first_problem(reader)
    except csv.Error as e:
        return f"line {reader.line_num}: cannot be parsed as CSV ({e})"


class _RowCheck:
    """What is wrong with a row of cells: the fast test, then each cell."""

    def __init__(self, columns: Columns) -> None:
        header, id_col = columns.header, columns.id_col
        self.header = header
        self.id_pos = header.index(id_col) if id_col is not None else None
        self.step_col = columns.step_col
        self.num_positions = [
            (k, c) for k, c in enumerate(header) if c == columns.step_col or (c in columns.features and c != id_col)
        ]
        self.checks = sorted(self.num_positions + ([] if id_col is None else [(header.index(id_col), id_col)]))

    def first_problem(self, reader: Reader) -> str | None:
        """``"line N: ..."`` for the first bad row that ``reader`` (a ``csv.reader``) gives."""
        n_cols, id_pos, n_commas = len(self.header), self.id_pos, len(self.num_positions) - 1
        pick_numbers = operator.itemgetter(*[k for k, _ in self.num_positions])
        single = n_commas == 0  # itemgetter then gives a str, not a tuple
        plain = _PLAIN_NUMBERS.fullmatch
        for cells in reader:  # a loop per line: the names above are locals for speed
            if not cells:
                continue  # a blank line: pyarrow skips it too
            if len(cells) != n_cols:
                return f"line {reader.line_num}: expected {n_cols} cells ({', '.join(self.header)}), found {len(cells)}"
            id_cell = cells[id_pos] if id_pos is not None else "-"
            numbers = pick_numbers(cells)
            joined = numbers if single else ",".join(numbers)
            # Overflowing values (1e400) pass this fast test; pyarrow does not fail on
            # them (they become Inf), so they are reported by the vectorized checks.
            if (
                id_cell == ""
                or (not id_cell.isascii() and _SURROGATE.search(id_cell))
                or not plain(joined)
                or joined.count(",") != n_commas  # a cell held a comma
            ):
                problem = self._cell_by_cell(cells)
                if problem is not None:
                    return f"line {reader.line_num}: {problem}"
        return None

    def _cell_by_cell(self, cells: list[str]) -> str | None:
        for pos, name in self.checks:
            cell = cells[pos]
            if _SURROGATE.search(cell):
                bad = cell.encode("utf-8", "surrogateescape")
                return f"column {name!r} is not valid UTF-8 text ({bad!r})"
            if pos == self.id_pos:
                if cell == "":
                    return f"column {name!r} {EMPTY_ID}"
                continue
            problem = number_problem(cell, float32=name != self.step_col)
            if problem is not None:
                return f"column {name!r} {problem}"
        return None
