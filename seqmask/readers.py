"""Files -> :class:`~seqmask.data.Sequences`.

:func:`read_sequences` is the one entry point. It picks a reader from a small table
keyed by format name (``_READERS``); ``format="auto"`` picks by file extension
(``_EXTENSIONS``). A new format (jsonl, parquet, a directory of files, ...) plugs in
by adding a reader function with the signature of :func:`_read_npz` to both tables.

Every problem with the input becomes a one-line :class:`~seqmask.errors.DataError`
naming the file and, where there is one, the line / array / sequence: never a
traceback.

Formats
-------
NPZ (``.npz``)
    Arrays ``values`` ``[total_steps, features]`` (or ``[total_steps]``: 1 feature),
    ``lengths`` ``[N]`` and optionally ``ids`` ``[N]`` (strings or integers; default
    ``"0" .. "N-1"``). Loaded with ``allow_pickle=False``. Other arrays are ignored.
CSV (``.csv``, ``.csv.gz``; gzip is recognised by its magic bytes)
    Long format: a header row, then one row per step. The id column names the
    sequence; rows of one id need not be adjacent (they are gathered, in file order,
    or sorted by the step column when one is given). Sequences come in order of
    each id's first appearance. Feature columns: every other column, or exactly
    ``feature_columns``. Parsed by ``pyarrow.csv`` (C++, multi-threaded); when it
    fails, a second, line-by-line pass finds the first bad line for the message.

    Line numbers in messages are physical lines (line 1 is the header), with
    ``\\n``, ``\\r\\n`` and ``\\r`` all ending a line and blank lines counted but
    skipped. They are exact as long as no quoted field spans several lines (not
    supported: ids and numbers never need it).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import math
import operator
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence as _PySequence

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError

__all__ = ["read_sequences", "detect_format", "SUPPORTED_EXTENSIONS", "SUPPORTED_FORMATS"]


@dataclass(frozen=True)
class _Options:
    id_column: str
    step_column: str | None
    feature_columns: tuple[str, ...] | None


Reader = Callable[[Path, str, _Options], Sequences]

_F32_MAX = float(np.finfo(np.float32).max)
_GZIP_MAGIC = b"\x1f\x8b"


# -- entry point ---------------------------------------------------------------


def read_sequences(
    path: str | Path,
    *,
    format: str = "auto",
    id_column: str = "id",
    step_column: str | None = None,
    feature_columns: _PySequence[str] | None = None,
) -> Sequences:
    """Read a data file into :class:`Sequences` (``source`` is ``str(path)``).

    ``format`` is ``"auto"`` (by extension) or a key of the reader table
    (:data:`SUPPORTED_FORMATS`). ``id_column``, ``step_column`` and
    ``feature_columns`` apply to tabular formats (CSV); giving ``step_column`` or
    ``feature_columns`` for an NPZ file is a ``DataError``.

    Raises :class:`DataError` for every problem with the file.
    """
    shown = str(path)
    p = Path(path)
    _check_exists(p, shown)
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in _READERS:
        raise DataError(
            f"{shown}: unknown data format {fmt!r} (supported: {', '.join(SUPPORTED_FORMATS)})"
        )
    opts = _Options(
        id_column=str(id_column),
        step_column=None if step_column is None else str(step_column),
        feature_columns=(
            None
            if feature_columns is None
            else (feature_columns,)
            if isinstance(feature_columns, str)
            else tuple(str(c) for c in feature_columns)
        ),
    )
    return _READERS[fmt](p, shown, opts)


def detect_format(path: str | Path) -> str:
    """The reader-table key for ``path``'s extension; ``DataError`` if none fits."""
    p = Path(path)
    name = p.name.lower()
    for ext, fmt in _EXTENSIONS:
        if name.endswith(ext):
            return fmt
    if p.is_dir():
        raise DataError(
            f"{path}: is a directory; give a data file ({', '.join(SUPPORTED_EXTENSIONS)})"
        )
    raise DataError(
        f"{path}: unknown file extension; supported: {', '.join(SUPPORTED_EXTENSIONS)} "
        "(or set the data format explicitly)"
    )


def _check_exists(p: Path, shown: str) -> None:
    try:
        p.stat()
    except FileNotFoundError:
        raise DataError(f"{shown}: file not found") from None
    except PermissionError:
        raise DataError(f"{shown}: permission denied") from None
    except OSError as e:
        raise DataError(f"{shown}: cannot access the file ({e.strerror or e})") from None


def _read_bytes(p: Path, shown: str) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{shown}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{shown}: is a directory, not a data file") from None
    except PermissionError:
        raise DataError(f"{shown}: permission denied") from None
    except OSError as e:
        raise DataError(f"{shown}: cannot read the file ({e.strerror or e})") from None


def _show(text: str, limit: int = 40) -> str:
    """A cell value for a message: quoted, escaped, shortened."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def _cols(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


# -- NPZ -------------------------------------------------------------------------


def _read_npz(p: Path, shown: str, opts: _Options) -> Sequences:
    if opts.step_column is not None or opts.feature_columns is not None:
        raise DataError(
            f"{shown}: step_column and feature_columns apply to CSV files only; "
            "an .npz file has 'values', 'lengths' and 'ids' arrays"
        )
    raw = _read_bytes(p, shown)
    if not raw:
        raise DataError(f"{shown}: file is empty")
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
        raise DataError(f"{shown}: not a valid .npz archive ({_reason(e)})") from None
    if not hasattr(archive, "files"):
        raise DataError(
            f"{shown}: holds a single .npy array, not an .npz archive of 'values' and 'lengths'"
        )
    with archive:
        keys = list(archive.files)
        for key in ("values", "lengths"):
            if key not in keys:
                raise DataError(
                    f"{shown}: missing array '{key}' (arrays in the file: {_cols(keys) or 'none'})"
                )
        values = _npz_member(archive, "values", shown)
        lengths = _npz_member(archive, "lengths", shown)
        ids = _npz_member(archive, "ids", shown) if "ids" in keys else None
    return _npz_to_sequences(values, lengths, ids, shown)


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _npz_member(archive, key: str, shown: str) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise DataError(
                f"{shown}: array '{key}' holds Python objects (it would need pickle to load); "
                "save plain numeric or string arrays"
            ) from None
        raise DataError(f"{shown}: array '{key}' cannot be read ({_reason(e)})") from None
    except Exception as e:  # noqa: BLE001 - corrupt members fail in many ways
        raise DataError(f"{shown}: array '{key}' cannot be read ({_reason(e)})") from None


def _npz_to_sequences(
    values: np.ndarray, lengths: np.ndarray, ids: np.ndarray | None, shown: str
) -> Sequences:
    # values
    if values.dtype.kind not in "fiu":
        raise DataError(
            f"{shown}: array 'values' must hold numbers (float or int), got dtype {values.dtype}"
        )
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2:
        raise DataError(
            f"{shown}: array 'values' must be 2-D [total_steps, features] "
            f"(or 1-D for one feature), got shape {values.shape}"
        )
    if values.shape[1] == 0:
        raise DataError(f"{shown}: array 'values' has no features (shape {values.shape})")
    n_rows = values.shape[0]

    # lengths
    if lengths.ndim != 1:
        raise DataError(f"{shown}: array 'lengths' must be 1-D [num_sequences], got shape {lengths.shape}")
    if lengths.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            integral = bool(np.all(np.isfinite(lengths)) and np.all(lengths == np.round(lengths)))
        if not integral:
            raise DataError(f"{shown}: array 'lengths' must hold integers, got non-integer values")
    elif lengths.dtype.kind not in "iu":
        raise DataError(f"{shown}: array 'lengths' must hold integers, got dtype {lengths.dtype}")
    n = lengths.shape[0]
    if n == 0:
        raise DataError(f"{shown}: no sequences (array 'lengths' is empty)")

    # ids
    if ids is None:
        id_arr = np.arange(n).astype(str)
    else:
        id_arr = _npz_ids(ids, n, shown)

    # length values
    bad = np.flatnonzero(lengths <= 0)
    if bad.size:
        i = int(bad[0])
        what = "is empty (length 0" if lengths[i] == 0 else f"has a negative length ({lengths[i]}"
        raise DataError(f"{shown}: sequence '{id_arr[i]}' (index {i}) {what} in array 'lengths')")
    if np.any(lengths > n_rows):
        total = "more than"
    else:
        lengths = lengths.astype(np.int64)
        total = int(lengths.sum())
    if total != n_rows:
        raise DataError(
            f"{shown}: array 'lengths' adds up to {total} steps but 'values' has {n_rows} rows"
        )

    # values must be finite, in float32 too
    with np.errstate(over="ignore", invalid="ignore"):
        values32 = values.astype(np.float32)
    finite = np.isfinite(values32)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        feat = int(np.flatnonzero(~finite[row])[0])
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
            f"{shown}: sequence '{id_arr[seq]}' (index {seq}) has {what} at step {step} "
            f"(0-based), feature {feat} (row {row} of array 'values')"
        )
    return Sequences(values32, lengths, id_arr, shown)


def _npz_ids(ids: np.ndarray, n: int, shown: str) -> np.ndarray:
    if ids.ndim != 1:
        raise DataError(f"{shown}: array 'ids' must be 1-D [num_sequences], got shape {ids.shape}")
    if ids.shape[0] != n:
        raise DataError(
            f"{shown}: array 'ids' has {ids.shape[0]} entries but 'lengths' has {n} sequences"
        )
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
        raise DataError(
            f"{shown}: array 'ids' must hold strings or integers, got dtype {ids.dtype}"
        )
    out = np.asarray(out, dtype=str)
    _check_unique_ids(out, shown, lambda i: f"index {i}")
    return out


def _check_unique_ids(ids: np.ndarray, shown: str, where: Callable[[int], str]) -> None:
    if ids.size < 2:
        return
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    dup = s[1:] == s[:-1]
    if dup.any():
        first = order[:-1][dup]
        second = order[1:][dup]
        j = int(np.argmin(second))
        raise DataError(
            f"{shown}: id '{ids[second[j]]}' appears more than once in array 'ids' "
            f"({where(int(first[j]))} and {where(int(second[j]))})"
        )


# -- CSV -------------------------------------------------------------------------

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


def _read_csv(p: Path, shown: str, opts: _Options) -> Sequences:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    raw = _read_bytes(p, shown)
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{shown}: not a valid gzip file ({_reason(e)})") from None
    header, has_data = _csv_header(raw, shown)
    id_col, step_col, features = _csv_columns(header, opts, shown)
    if not has_data:
        raise DataError(f"{shown}: no sequences (the file has a header row but no data rows)")
    used = [id_col] + ([step_col] if step_col is not None else []) + features

    types = {c: pa.float64() for c in used}
    types[id_col] = pa.string()
    try:
        table = pacsv.read_csv(
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
            f"{shown}: cannot parse as CSV ({_reason(e)}); note that quoted fields "
            "spanning several lines are not supported"
        ) from None
    return _csv_table_to_sequences(table, raw, header, id_col, step_col, features, shown)


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
    header: list[str], opts: _Options, shown: str
) -> tuple[str, str | None, list[str]]:
    id_col, step_col = opts.id_column, opts.step_column
    if id_col not in header:
        raise DataError(
            f"{shown}: no id column {id_col!r} in the header (columns: {_cols(header)}); "
            "set id_column to the column that names each sequence"
        )
    if step_col is not None:
        if step_col == id_col:
            raise DataError(f"{shown}: step_column and id_column are both {id_col!r}")
        if step_col not in header:
            raise DataError(
                f"{shown}: no step column {step_col!r} in the header (columns: {_cols(header)})"
            )
    reserved = {id_col} | ({step_col} if step_col is not None else set())
    if opts.feature_columns is None:
        features = [c for c in header if c not in reserved]
    else:
        features = list(opts.feature_columns)
        for c in features:
            if c not in header:
                raise DataError(
                    f"{shown}: feature column {c!r} not found (available: {_cols(header)})"
                )
            if c in reserved:
                raise DataError(f"{shown}: column {c!r} cannot be both a feature and the id/step column")
        dup = [c for k, c in enumerate(features) if c in features[:k]]
        if dup:
            raise DataError(f"{shown}: feature column {dup[0]!r} is listed twice")
    if not features:
        raise DataError(f"{shown}: no feature columns (columns: {_cols(header)})")
    return id_col, step_col, features


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
        return f"has non-numeric value {_show(cell)}"
    shown = _show(cell.strip(" \t"))
    if m.group("word") is not None:
        return f"is NaN/Inf ({shown})"
    v = float(m.group("num"))
    if not math.isfinite(v):
        return f"value {shown} is out of range (overflows to Inf)"
    if float32 and abs(v) > _F32_MAX and not _fits_float32(v):
        return f"value {shown} is too large for float32"
    return None


def _scan_csv(
    raw: bytes, header: list[str], id_col: str, step_col: str | None, features: list[str]
) -> str | None:
    """The first bad line, as ``"line N: ..."``, found by a plain line-by-line pass.

    Runs only after pyarrow failed, so a loop per line is fine here; it is kept
    cheap (one regex over a row's numeric cells) and checks each cell only in the
    rare rows that the fast test does not pass.
    """
    id_pos = header.index(id_col)
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
            id_cell = cells[id_pos]
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
    cells: list[str], id_pos: int, id_col: str, num_positions: list[tuple[int, str]], step_col: str | None
) -> str | None:
    for pos, name in sorted([(id_pos, id_col), *num_positions]):
        cell = cells[pos]
        if _SURROGATE.search(cell):
            bad = cell.encode("utf-8", "surrogateescape")
            return f"column {name!r} is not valid UTF-8 text ({bad!r})"
        if name == id_col:
            if cell == "":
                return f"column {name!r} is empty (every row needs a sequence id)"
            continue
        problem = _number_problem(cell, float32=name != step_col)
        if problem is not None:
            return f"column {name!r} {problem}"
    return None


def _csv_table_to_sequences(
    table, raw: bytes, header: list[str], id_col: str, step_col: str | None, features: list[str], shown: str
) -> Sequences:
    import pyarrow.compute as pc

    n = table.num_rows
    if n == 0:
        raise DataError(f"{shown}: no sequences (the file has a header row but no data rows)")

    # The first bad cell, by (row, column position in the header).
    problems: list[tuple[int, int, str, str]] = []  # (row, header pos, column, kind)

    def first_true(mask: np.ndarray) -> int | None:
        hit = np.flatnonzero(mask)
        return int(hit[0]) if hit.size else None

    def nulls(col) -> np.ndarray:
        return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)

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

    steps = numeric(step_col, float32=False) if step_col is not None else None
    x = np.empty((n, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        x[:, j] = numeric(name, float32=True)

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

    # Group rows by id: codes in order of first appearance.
    encoded = id_chunked.combine_chunks().dictionary_encode()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    uniq_obj = encoded.dictionary.to_numpy(zero_copy_only=False)
    for k, s in enumerate(uniq_obj):  # a loop per sequence
        if "\x00" in s:
            where = _where_row(_data_line_numbers(raw), int(np.argmax(codes == k)))
            raise DataError(f"{shown}, {where}: column {id_col!r} contains a NUL character")
    ids = np.asarray(uniq_obj, dtype=str) if len(uniq_obj) else np.zeros(0, dtype="<U1")

    perm: np.ndarray | None
    if steps is None:
        perm = None if bool(np.all(codes[1:] >= codes[:-1])) else np.argsort(codes, kind="stable")
    else:
        perm = np.lexsort((steps, codes))  # stable: equal keys keep file order
        sc, ss = codes[perm], steps[perm]
        dup = (sc[1:] == sc[:-1]) & (ss[1:] == ss[:-1])
        if dup.any():
            earlier, later = perm[:-1][dup], perm[1:][dup]
            j = int(np.argmin(later))
            line_numbers = _data_line_numbers(raw)
            a, b = int(earlier[j]), int(later[j])
            step_text = (
                _cell_text(raw, line_numbers[b], header.index(step_col))
                if b < len(line_numbers)
                else None
            )
            step_text = step_text.strip(" \t") if step_text else repr(float(steps[b]))
            raise DataError(
                f"{shown}, {_where_row(line_numbers, b)}: step {step_text} of sequence "
                f"'{ids[codes[b]]}' appears twice (also on {_where_row(line_numbers, a)})"
            )
    lengths = np.bincount(codes, minlength=len(ids)).astype(np.int64)
    values = x if perm is None else x[perm]
    return Sequences(values, lengths, ids, shown)


# -- the reader table ----------------------------------------------------------

_READERS: dict[str, Reader] = {
    "npz": _read_npz,
    "csv": _read_csv,
}

# Longest suffix first: ".csv.gz" must win over a future ".gz".
_EXTENSIONS: tuple[tuple[str, str], ...] = (
    (".csv.gz", "csv"),
    (".csv", "csv"),
    (".npz", "npz"),
)

SUPPORTED_FORMATS: tuple[str, ...] = tuple(_READERS)
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(ext for ext, _ in _EXTENSIONS)
