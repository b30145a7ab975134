"""Finding the shards: which files of a directory or glob pattern are shards, and of what format.

A shard is a data file of many sequences (``.npz``, ``.parquet``, ``.jsonl``,
``.jsonl.gz``: :data:`SHARD_FORMATS`); a directory of one ``.csv`` or ``.npy`` file per
sequence is not a set of shards but the readers' ``csv_dir`` / ``npy_dir``.
"""

from __future__ import annotations

from pathlib import Path

from seqmask.data.readers import PER_SEQUENCE_SUFFIXES, detect_format
from seqmask.data.readers.files import is_pattern, list_files
from seqmask.errors import DataError

__all__ = ["SHARD_FORMATS", "find_shards"]

# Formats of many sequences per file (keys of the readers' table): these can be shards.
SHARD_FORMATS: tuple[str, ...] = ("npz", "parquet", "jsonl")


_ONE_PER_FILE = " (one sequence per file)"


def _format_of(f: Path) -> str | None:
    """The reader format of one file by its name, for a message: ``".npy (one sequence
    per file)"`` for the files of csv_dir / npy_dir, None for an unknown extension."""
    name = f.name.lower()
    # One sequence per file: a directory of these is csv_dir / npy_dir, not shards.
    for suffix in PER_SEQUENCE_SUFFIXES:
        if name.endswith(suffix):
            return suffix + _ONE_PER_FILE
    try:
        return detect_format(f)
    except DataError:
        return None


def find_shards(path: str | Path) -> list[Path] | None:
    """The shard files of a directory or glob pattern, sorted by path (by name, within
    one directory); None where ``path`` is not a set of shards: a single file (or a path
    that does not exist, for the reader to report), or a directory / pattern of .csv or
    .npy files, one per sequence (formats ``csv_dir`` and ``npy_dir``, read as before).

    Hidden files and sub-directories are left out, as for ``csv_dir``. ``DataError`` for
    an empty directory or pattern, for shards of different formats (naming a file of
    each), and for a file among the shards that is not one.
    """
    p = Path(path)
    shown = str(path)
    if not (p.is_dir() or (is_pattern(shown) and not _exists(p))):
        return None
    files = list_files(p, shown)  # DataError for a pattern that matches nothing
    what = "directory" if p.is_dir() else "pattern"
    if not files:
        raise DataError(f"{shown}: the {what} holds no files; give shard files (.npz, .parquet, .jsonl) or a data file")
    formats = {f: _format_of(f) for f in files}
    shards = [f for f, fmt in formats.items() if fmt in SHARD_FORMATS]
    if not shards:
        if all(fmt is not None and fmt.endswith(_ONE_PER_FILE) for fmt in formats.values()):
            return None  # one file per sequence: today's csv_dir / npy_dir
        raise DataError(
            f"{shown}: the {what} holds no shard files (.npz, .parquet, .jsonl, .jsonl.gz) and is not "
            f"one .csv or .npy file per sequence (it holds e.g. {files[0].name!r})"
        )
    first = shards[0]
    for f, fmt in formats.items():
        if fmt is None:
            raise DataError(f"{shown}: {f} is not a shard file (expected .npz, .parquet, .jsonl or .jsonl.gz files)")
        if fmt != formats[first]:
            raise DataError(
                f"{shown}: shards must all have one format, but {first} is {formats[first]} and {f} is {fmt}"
            )
    return shards


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False
