"""What every reader shares: options, file access, message helpers, and the
grouping of long-format rows (CSV, Parquet) into sequences."""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError


@dataclass(frozen=True)
class Options:
    """The reader settings of ``data`` in the config (see :func:`read_sequences`)."""

    id_column: str = "id"
    step_column: str | None = None
    feature_columns: tuple[str, ...] | None = None
    id_key: str = "id"
    values_key: str = "values"
    tokens_key: str = "tokens"


Reader = Callable[[Path, str, Options], Sequences]

F32_MAX = float(np.finfo(np.float32).max)
GZIP_MAGIC = b"\x1f\x8b"
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- file access -------------------------------------------------------------------


def check_exists(p: Path, shown: str) -> None:
    try:
        p.stat()
    except FileNotFoundError:
        raise DataError(f"{shown}: file not found") from None
    except PermissionError:
        raise DataError(f"{shown}: permission denied") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise DataError(f"{shown}: cannot access the file ({getattr(e, 'strerror', None) or e})") from None


def read_bytes(p: Path, shown: str) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{shown}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{shown}: is a directory, not a data file") from None
    except PermissionError:
        raise DataError(f"{shown}: permission denied") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{shown}: cannot read the file ({getattr(e, 'strerror', None) or e})") from None


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


def reject_column_options(opts: Options, shown: str, what: str) -> None:
    """``step_column``/``feature_columns`` name columns of a table with one row per step;
    every other layout says so here, with ``what`` telling what it holds instead."""
    if opts.step_column is not None or opts.feature_columns is not None:
        raise DataError(
            f"{shown}: step_column and feature_columns apply only to tables of one row per step "
            f"(formats csv, csv_dir and long-format parquet); {what}"
        )


# -- messages ------------------------------------------------------------------------


def show(text: str, limit: int = 40) -> str:
    """A cell value for a message: quoted, escaped, shortened."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def cols(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def float32_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as float32, and a bool mask of the cells that are not finite there
    (NaN/Inf, or finite but beyond float32's range)."""
    with np.errstate(over="ignore", invalid="ignore"):
        values32 = values.astype(np.float32)
    return values32, ~np.isfinite(values32)


def bad_value_text(original: float) -> str:
    """Why a non-finite float32 cell is bad, from its original value."""
    if np.isfinite(original):
        return f"value {float(original)!r} is too large for float32"
    return "is NaN/Inf"


def check_unique_ids(ids: np.ndarray, shown: str, where: Callable[[int], str], what: str) -> None:
    """``DataError`` for the first id (by its second appearance) that appears twice.

    ``where(i)`` places entry ``i`` ("line 4", "row 3", "index 2"); ``what`` says
    where the ids live ("in array 'ids'").
    """
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
            f"{shown}: id {show(str(ids[second[j]]))} appears more than once {what} "
            f"({where(int(first[j]))} and {where(int(second[j]))})"
        )


# -- long format: rows -> sequences ---------------------------------------------------


def long_columns(
    names: list[str], opts: Options, shown: str, *, where: str, id_hint: str | None
) -> tuple[str, str | None, list[str]]:
    """``(id column, step column, feature columns)`` of a long table whose columns are
    ``names``: the features are ``feature_columns``, or every column but the id and
    step columns.

    ``where`` places the columns in the messages (``" in the header"`` or ``""``);
    ``id_hint`` ends the message for a missing id column, and None makes the id
    column optional (one file per sequence: a column of that name is only skipped).
    """
    id_col, step_col = opts.id_column, opts.step_column
    if id_hint is not None and id_col not in names:
        raise DataError(f"{shown}: no id column {id_col!r}{where} (columns: {cols(names)}); {id_hint}")
    if step_col is not None:
        if step_col == id_col:
            raise DataError(f"{shown}: step_column and id_column are both {id_col!r}")
        if step_col not in names:
            raise DataError(f"{shown}: no step column {step_col!r}{where} (columns: {cols(names)})")
    reserved = {id_col} | ({step_col} if step_col is not None else set())
    if opts.feature_columns is None:
        features = [c for c in names if c not in reserved]
    else:
        features = list(opts.feature_columns)
        for c in features:
            if c not in names:
                raise DataError(f"{shown}: feature column {c!r} not found (available: {cols(names)})")
            if c in reserved:
                raise DataError(f"{shown}: column {c!r} cannot be both a feature and the id/step column")
        dup = [c for k, c in enumerate(features) if c in features[:k]]
        if dup:
            raise DataError(f"{shown}: feature column {dup[0]!r} is listed twice")
    if not features:
        raise DataError(f"{shown}: no feature columns (columns: {cols(names)})")
    return id_col, step_col, features


def numeric_columns(
    numeric: Callable[..., np.ndarray], n: int, step_col: str | None, features: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(n, features)`` float32 matrix and the float64 steps (or None) of a long
    table, one column at a time: ``numeric(name, float32=...)`` reads a column (and
    notes its problems; the caller reports the first)."""
    steps = numeric(step_col, float32=False) if step_col is not None else None
    x = np.empty((n, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        x[:, j] = numeric(name, float32=True)
    return x, steps


def group_rows(
    x: np.ndarray,
    id_array,
    steps: np.ndarray | None,
    shown: str,
    id_name: str,
    where: Callable[[int], str],
    step_text: Callable[[int], str],
) -> Sequences:
    """Rows of a long table -> :class:`Sequences`, vectorized.

    ``x`` is ``(rows, features)`` float32, ``id_array`` a pyarrow string array of the
    rows' ids (no nulls), ``steps`` float64 step indices or None (file order).
    Sequences come in order of each id's first row; a sequence's rows keep file
    order, or are sorted by step (stably) when there is a step column. ``where(row)``
    and ``step_text(row)`` describe a row for messages.
    """
    encoded = id_array.dictionary_encode()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    uniq_obj = encoded.dictionary.to_numpy(zero_copy_only=False)
    for k, s in enumerate(uniq_obj):  # a loop per sequence
        if "\x00" in s:
            raise DataError(
                f"{shown}, {where(int(np.argmax(codes == k)))}: column {id_name!r} contains a NUL character"
            )
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
            a, b = int(earlier[j]), int(later[j])
            raise DataError(
                f"{shown}, {where(b)}: step {step_text(b)} of sequence "
                f"{show(str(ids[codes[b]]))} appears twice (also on {where(a)})"
            )
    lengths = np.bincount(codes, minlength=len(ids)).astype(np.int64)
    values = x if perm is None else x[perm]
    return Sequences(values, lengths, ids, shown)


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
