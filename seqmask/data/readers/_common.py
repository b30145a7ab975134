"""What every reader shares: its options, file access, the pieces of a message, and
the checks on text (ids, tokens).

The checks on numpy arrays are in :mod:`._arrays`; the rules of long-format tables
(CSV, Parquet) are in :mod:`._long`.
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from seqmask.config import DataConfig
from seqmask.data import Sequences
from seqmask.errors import DataError


@dataclass(frozen=True)
class Options:
    """The reader settings of ``data`` in the config (see :func:`read_sequences`), with
    the config's defaults (the comments in ``DataConfig`` say why they are what they are)."""

    id_column: str = DataConfig.id_column
    step_column: str | None = DataConfig.step_column
    feature_columns: tuple[str, ...] | None = DataConfig.feature_columns
    id_key: str = DataConfig.id_key
    values_key: str = DataConfig.values_key
    tokens_key: str = DataConfig.tokens_key


Reader = Callable[[Path, str, Options], Sequences]


def reject_column_options(opts: Options, shown: str, what: str) -> None:
    """``step_column``/``feature_columns`` name columns of a table with one row per step;
    every other layout says so here, with ``what`` telling what it holds instead."""
    if opts.step_column is not None or opts.feature_columns is not None:
        raise DataError(
            f"{shown}: step_column and feature_columns apply only to tables of one row per step "
            f"(formats csv, csv_dir and long-format parquet); {what}"
        )


GZIP_MAGIC = b"\x1f\x8b"
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- file access -------------------------------------------------------------------


def check_exists(p: Path, shown: str) -> None:
    """``DataError`` unless ``p`` exists and can be looked at."""
    try:
        p.stat()
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise _file_error(e, shown, "access the file") from None


def read_bytes(p: Path, shown: str) -> bytes:
    """The whole file; its failures as ``DataError``."""
    try:
        with open(p, "rb") as f:
            return f.read()
    except (OSError, ValueError) as e:
        raise _file_error(e, shown, "read the file") from None


def _file_error(e: OSError | ValueError, shown: str, doing: str) -> DataError:
    """The message for a failure to ``doing`` ("read the file") ``shown``."""
    if isinstance(e, FileNotFoundError):
        return DataError(f"{shown}: file not found")
    if isinstance(e, IsADirectoryError):
        return DataError(f"{shown}: is a directory, not a data file")
    if isinstance(e, PermissionError):
        return DataError(f"{shown}: permission denied")
    return DataError(f"{shown}: cannot {doing} ({getattr(e, 'strerror', None) or e})")


def read_nonempty(p: Path, shown: str) -> bytes:
    """:func:`read_bytes`, and ``DataError`` for a file of zero bytes."""
    raw = read_bytes(p, shown)
    if not raw:
        raise DataError(f"{shown}: file is empty")
    return raw


def gunzip_if_gzip(raw: bytes, shown: str) -> bytes:
    """``raw`` decompressed when it starts with the gzip magic bytes, else ``raw``."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{shown}: not a valid gzip file ({reason(e)})") from None


def strip_bom(raw: bytes) -> bytes:
    """``raw`` without a leading UTF-8 byte order mark (some editors write one)."""
    return raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw


def utf8_text(raw: bytes, where: Callable[[int], str]) -> str:
    """``raw`` decoded as UTF-8, or ``DataError`` for its first bad byte, placed by
    ``where(offset)`` ("data.csv, line 1")."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where(e.start)}: not valid UTF-8 text (byte {raw[e.start]:#04x})") from None


# -- messages ------------------------------------------------------------------------


def show(text: str, limit: int = 40) -> str:
    """A cell value for a message: quoted, escaped, shortened."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def cols(names: Iterable[str]) -> str:
    """Column or array names for a message: ``'a', 'b'``."""
    return ", ".join(repr(n) for n in names)


def reason(e: BaseException) -> str:
    """An exception for a message, on one line: its type and the first line of its text."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


# -- text ------------------------------------------------------------------------------


def check_tokens(tokens: list[str], where: Callable[[int], str]) -> None:
    """Tokens must be non-empty and free of NUL and line breaks: a vocabulary file
    holds one token per line, and numpy would drop trailing NULs. Checked on the
    Python strings, before numpy sees them; ``where(k)`` names token ``k`` with its
    file and place ("data.txt, line 3: token 2")."""
    if not tokens:
        return
    text = "".join(tokens)
    if (
        "\x00" not in text
        and "\n" not in text
        and "\r" not in text
        and min(map(len, tokens)) > 0
        and (text.isascii() or not _SURROGATE.search(text))
    ):
        return
    for k, tok in enumerate(tokens):  # only on the way to an error
        if tok == "" or "\x00" in tok or "\n" in tok or "\r" in tok:
            what = "is empty" if tok == "" else f"({show(tok)}) contains a NUL character or a line break"
            raise DataError(f"{where(k)} {what}; tokens must be non-empty text on one line")
        if _SURROGATE.search(tok):
            raise DataError(f"{where(k)} ({show(tok)}) is not valid Unicode text (a lone surrogate)")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be an id: a NUL character (numpy drops trailing ones) or a
    lone surrogate (it could never be written out as UTF-8)."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii() and _SURROGATE.search(text):
        return "is not valid Unicode text (a lone surrogate)"
    return None
