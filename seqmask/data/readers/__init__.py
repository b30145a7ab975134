"""Files -> :class:`~seqmask.data.Sequences`.

:func:`read_sequences` is the one entry point. It picks a reader from a small table
keyed by format name (``_READERS``); ``format="auto"`` picks by file extension
(``_EXTENSIONS``), or, for a directory or a glob pattern, by the extensions of the
files in it. A new format plugs in by adding a reader function
``(path, shown, options) -> Sequences`` to the tables.

Every problem with the input becomes a one-line :class:`~seqmask.errors.DataError`
naming the file and, where there is one, the line / row / array / sequence: never a
traceback, whatever the bytes.

May import numpy, `seqmask.data` (Sequences), `seqmask.errors` and, lazily, pyarrow; never
TensorFlow or Keras. Its `_private` modules are for the readers only: other modules take
what they need from this face.

Formats (one module each)
-------------------------
``npz`` (``.npz``, :mod:`.npz`)
    Arrays ``values`` ``[total_steps, features]`` (or ``[total_steps]``: 1 feature),
    then either ``lengths`` ``[N]`` or ``offsets`` ``[N+1]`` (0, ..., total_steps,
    never decreasing), and optionally ``ids`` ``[N]`` (strings or integers; default
    ``"0" .. "N-1"``). Loaded with ``allow_pickle=False``. Other arrays are ignored.
``csv`` (``.csv``, ``.csv.gz``, :mod:`.csvfile`)
    Long format: a header row, then one row per step; ``id_column`` names the
    sequence (its rows need not be adjacent), ``step_column`` orders them, the
    feature columns are the others or ``feature_columns``. Sequences come in order
    of each id's first row.
``jsonl`` (``.jsonl``, ``.jsonl.gz``, :mod:`.jsonl`)
    One object per line: ``{"id": ..., "values": [[...], ...]}`` or
    ``{"id": ..., "tokens": [...]}`` (key names: ``id_key``, ``values_key``,
    ``tokens_key``).
``parquet`` (``.parquet``, :mod:`.parquet`)
    Long format like the CSV, or one row per sequence with a list column
    (``values_key`` or ``tokens_key``), told apart by the schema.
``csv_dir`` / ``npy_dir`` (a directory or a glob pattern, :mod:`.files`)
    One ``.csv`` or ``.npy`` file per sequence; the file name (without extension)
    is the id; files sorted by path.
``tokens_text`` (``.txt``, :mod:`.text`)
    One sequence of whitespace-separated tokens per line; the id is the 1-based
    line number.

Token data (``tokens`` in JSONL/Parquet, ``tokens_text``) comes back as a
:class:`Sequences` whose ``values`` is a 1-D numpy unicode array
(``is_tokens``); :class:`seqmask.data.vocab.Vocabulary` maps it to ids.
"""

from __future__ import annotations

from collections.abc import Sequence as _PySequence
from pathlib import Path

from seqmask.data import Sequences
from seqmask.data.readers._arrays import checked_float32
from seqmask.data.readers._common import Options, Reader, check_exists, read_bytes, reason, show
from seqmask.data.readers.csvfile import read_csv
from seqmask.data.readers.files import PER_SEQUENCE_SUFFIXES, detect_in, is_pattern, read_csv_dir, read_npy_dir
from seqmask.data.readers.jsonl import read_jsonl
from seqmask.data.readers.npz import read_npz
from seqmask.data.readers.parquet import read_parquet
from seqmask.data.readers.text import read_tokens_text
from seqmask.errors import DataError

__all__ = [
    "read_sequences",
    "detect_format",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    # for the rest of data/ (shards, inputs): the reader options, a float32 check, message helpers
    "Options",
    "checked_float32",
    "PER_SEQUENCE_SUFFIXES",
    "read_bytes",
    "reason",
    "show",
]


# -- the reader table ----------------------------------------------------------------

_READERS: dict[str, Reader] = {
    "npz": read_npz,
    "csv": read_csv,
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "npy_dir": read_npy_dir,
    "csv_dir": read_csv_dir,
    "tokens_text": read_tokens_text,
}

# Longest suffix first, so that a compound suffix wins over a plain one.
_EXTENSIONS: tuple[tuple[str, str], ...] = (
    (".csv.gz", "csv"),
    (".csv", "csv"),
    (".npz", "npz"),
    (".jsonl.gz", "jsonl"),
    (".jsonl", "jsonl"),
    (".parquet", "parquet"),
    (".txt", "tokens_text"),
)

# Formats that read many files: the path is a directory or a glob pattern.
_MANY_FILES = ("npy_dir", "csv_dir")

SUPPORTED_FORMATS: tuple[str, ...] = tuple(_READERS)
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(ext for ext, _ in _EXTENSIONS)


# -- entry point -----------------------------------------------------------------------


def read_sequences(
    path: str | Path,
    *,
    format: str = "auto",
    id_column: str = Options.id_column,
    step_column: str | None = Options.step_column,
    feature_columns: _PySequence[str] | None = Options.feature_columns,
    id_key: str = Options.id_key,
    values_key: str = Options.values_key,
    tokens_key: str = Options.tokens_key,
) -> Sequences:
    """Read a data file (or a directory / glob pattern of files) into :class:`Sequences`.

    ``source`` of the result is ``str(path)``. ``format`` is ``"auto"`` (see
    :func:`detect_format`) or a key of the reader table (:data:`SUPPORTED_FORMATS`).
    ``id_column``, ``step_column`` and ``feature_columns`` apply to tabular data
    (long-format CSV and Parquet; ``feature_columns``/``step_column`` also to
    ``csv_dir``); giving ``step_column`` or ``feature_columns`` for a format
    without columns is a ``DataError``. ``id_key``, ``values_key`` and
    ``tokens_key`` name the keys of JSONL records and the columns of a Parquet file
    with one row per sequence.

    Raises :class:`DataError` for every problem with the data.
    """
    shown = str(path)
    p = Path(path)
    if format != "auto" and format not in _READERS:
        raise DataError(f"{shown}: unknown data format {format!r} (supported: {', '.join(SUPPORTED_FORMATS)})")
    if format not in _MANY_FILES and not (format == "auto" and is_pattern(shown) and not _exists(p)):
        check_exists(p, shown)
    fmt = detect_format(p) if format == "auto" else format
    opts = Options(
        id_column=str(id_column),
        step_column=None if step_column is None else str(step_column),
        feature_columns=_names(feature_columns),
        id_key=str(id_key),
        values_key=str(values_key),
        tokens_key=str(tokens_key),
    )
    return _READERS[fmt](p, shown, opts)


def _names(columns: _PySequence[str] | None) -> tuple[str, ...] | None:
    """``feature_columns`` as a tuple of names; one name alone is one column."""
    if columns is None:
        return None
    if isinstance(columns, str):
        return (columns,)
    return tuple(str(c) for c in columns)


def detect_format(path: str | Path) -> str:
    """The reader-table key for ``path``: by extension for a file; for a directory,
    or a glob pattern (``*``/``?``) that is not an existing file, ``csv_dir`` or
    ``npy_dir`` by the extensions of the files in it. ``DataError`` if none fits."""
    p = Path(path)
    shown = str(path)
    if p.is_dir() or (is_pattern(shown) and not _exists(p)):
        return detect_in(p, shown)
    name = p.name.lower()
    for ext, fmt in _EXTENSIONS:
        if name.endswith(ext):
            return fmt
    raise DataError(
        f"{shown}: unknown file extension; supported: {', '.join(SUPPORTED_EXTENSIONS)}, or a "
        "directory or glob pattern ('recordings/*.csv') of .csv or .npy files, one per sequence "
        "(or set the data format explicitly)"
    )


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False
