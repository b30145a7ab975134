"""One file per sequence: a directory, or a glob pattern, of ``.csv`` or ``.npy`` files.

Each file is one sequence, its id the file name without the extension; files come
sorted by path (by name, within one directory), so the order is stable. A ``.csv``
file has a header row and one row per step (``feature_columns`` picks columns; a
``step_column`` sorts the rows; a column named like ``id_column`` is skipped, as
the file name is the id); the header names the features (``feature_names``), the
same in every file. A ``.npy`` file holds a ``[steps, features]`` array (or
``[steps]``: one feature), with no names. Errors name the file (and the line, for CSV).
"""

from __future__ import annotations

import glob
import io
import os
from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.data.readers._arrays import check_unique_ids, checked_float32, lengths_of, load_array, numeric_steps
from seqmask.data.readers._common import Options, read_nonempty, reject_column_options
from seqmask.errors import DataError

# File-name suffix (lower case) -> format.
_SUFFIXES: tuple[tuple[str, str], ...] = ((".csv.gz", "csv_dir"), (".csv", "csv_dir"), (".npy", "npy_dir"))
# The suffixes of the files of one sequence each (csv_dir / npy_dir), longest first.
PER_SEQUENCE_SUFFIXES: tuple[str, ...] = tuple(suffix for suffix, _ in _SUFFIXES)
_WANTED = {"csv_dir": ".csv or .csv.gz", "npy_dir": ".npy"}


def is_pattern(path: str) -> bool:
    return "*" in path or "?" in path


def _kind(name: str) -> str | None:
    low = name.lower()
    for suffix, fmt in _SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return fmt
    return None


def _stem(name: str) -> str:
    low = name.lower()
    for suffix, _ in _SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_files(p: Path, shown: str) -> list[Path]:
    """The files of directory ``p``, or those matching glob pattern ``p``, sorted by
    path; hidden files and sub-directories are left out."""
    text = str(p)
    try:
        if p.is_dir():
            found = [Path(e.path) for e in os.scandir(p) if not e.name.startswith(".") and e.is_file()]
        elif is_pattern(text):
            found = [
                Path(m)
                for m in glob.glob(text, recursive=True)
                if not os.path.basename(m).startswith(".") and os.path.isfile(m)
            ]
            if not found:
                raise DataError(f"{shown}: no files match this pattern")
        elif p.exists():
            raise DataError(
                f"{shown}: is a file; one file per sequence needs a directory or a glob pattern "
                "such as 'recordings/*.csv'"
            )
        else:
            raise DataError(f"{shown}: file not found")
    except PermissionError:
        raise DataError(f"{shown}: permission denied") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{shown}: cannot list the files ({getattr(e, 'strerror', None) or e})") from None
    return sorted(found, key=str)


def detect_in(p: Path, shown: str) -> str:
    """``csv_dir`` or ``npy_dir`` for a directory or glob pattern whose files are all
    ``.csv`` (``.csv.gz``) or all ``.npy``; ``DataError`` for mixed or none."""
    files = list_files(p, shown)
    what = "directory" if p.is_dir() else "pattern"
    kinds = {f: _kind(f.name) for f in files}
    found = sorted({k for k in kinds.values() if k is not None})
    if not found:
        listed = f" (it holds e.g. {files[0].name!r})" if files else ""
        raise DataError(
            f"{shown}: the {what} has no .csv or .npy files{listed}; give a directory of "
            "one file per sequence, or a data file"
        )
    if len(found) > 1:
        raise DataError(
            f"{shown}: the {what} mixes .csv and .npy files; one file per sequence needs "
            "them all of one kind (set data.format to csv_dir or npy_dir to read only those)"
        )
    other = [f for f, k in kinds.items() if k is None]
    if other:
        raise DataError(
            f"{shown}: the {what} also holds {other[0].name!r}, which is not a "
            f"{_WANTED[found[0]]} file (set data.format to {found[0]} to read only those)"
        )
    return found[0]


def _files_of(p: Path, shown: str, fmt: str) -> list[Path]:
    files = [f for f in list_files(p, shown) if _kind(f.name) == fmt]
    if not files:
        raise DataError(f"{shown}: no {_WANTED[fmt]} files to read (format {fmt})")
    return files


def _assemble(parts: list[np.ndarray], files: list[Path], shown: str, features: list[str] | None = None) -> Sequences:
    """The sequences of ``files``, one per file; ``features`` names the columns (the
    CSV header's, the same in every file), None where files have no names (.npy)."""
    ids = np.asarray([_stem(f.name) for f in files], dtype=str)
    check_unique_ids(ids, shown, lambda i: str(files[i]), "among the files")
    return Sequences(np.concatenate(parts), lengths_of(parts), ids, shown, tuple(features or ()))


def read_csv_dir(p: Path, shown: str, opts: Options) -> Sequences:
    from seqmask.data.readers.csvfile import read_csv_sequence

    files = _files_of(p, shown, "csv_dir")
    parts: list[np.ndarray] = []
    first_features: list[str] | None = None
    for f in files:  # a loop per sequence
        x, features = read_csv_sequence(f, str(f), opts)
        if first_features is None:
            first_features = features
        elif features != first_features:
            raise DataError(
                f"{f}: feature columns ({', '.join(features)}) differ from those of {files[0]} "
                f"({', '.join(first_features)}); every file needs the same columns (or set feature_columns)"
            )
        parts.append(x)
    return _assemble(parts, files, shown, first_features)


def read_npy_dir(p: Path, shown: str, opts: Options) -> Sequences:
    reject_column_options(opts, shown, "a .npy file holds one [steps, features] array")
    files = _files_of(p, shown, "npy_dir")
    parts: list[np.ndarray] = []
    for f in files:  # a loop per sequence
        x = _read_npy(f, str(f))
        if parts and x.shape[1] != parts[0].shape[1]:
            raise DataError(f"{f}: has {x.shape[1]} features but {files[0]} has {parts[0].shape[1]}")
        parts.append(x)
    return _assemble(parts, files, shown)


def _read_npy(f: Path, shown: str) -> np.ndarray:
    """One sequence: a ``(steps, features)`` float32 array from a .npy file."""
    raw = read_nonempty(f, shown)
    if not raw.startswith(b"\x93NUMPY"):
        raise DataError(f"{shown}: not a .npy file (expected an array saved by numpy.save)")
    values = load_array(
        lambda: np.load(io.BytesIO(raw), allow_pickle=False),
        f"{shown}: holds Python objects (it would need pickle to load); save a numeric array",
        f"{shown}: not a valid .npy file",
    )
    if not isinstance(values, np.ndarray):
        raise DataError(f"{shown}: not a .npy array")
    values = numeric_steps(values, shown, None)  # (steps, features)
    return checked_float32(values, lambda step, feat: f"{shown}: step {step} (0-based), feature {feat}")
