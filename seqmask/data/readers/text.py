"""Token text (``.txt``, format ``tokens_text``): one sequence per line.

Tokens are separated by whitespace (words, or integer ids kept as text). A
sequence's id is its physical line number, 1-based, as a string ("1", "2", ...).
Blank lines are skipped, but they still count, so ids always match the line
numbers of the file and outputs join back to it. ``\\n``, ``\\r\\n`` and ``\\r``
all end a line. A file starting with the gzip magic bytes is decompressed first.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.data.readers._arrays import locate_step
from seqmask.data.readers._common import (
    Options,
    check_tokens,
    gunzip_if_gzip,
    read_bytes,
    reject_column_options,
    strip_bom,
    utf8_text,
)
from seqmask.errors import DataError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")


def line_of(raw: bytes, offset: int) -> int:
    """The 1-based physical line holding byte ``offset``."""
    return len(_LINE_BREAK_BYTES.findall(raw, 0, offset)) + 1


def decode_lines(raw: bytes, shown: str) -> list[str]:
    """UTF-8 text split into physical lines (a final line break ends the last
    line; it does not start a new one). ``DataError`` names the line of a bad byte."""
    raw = strip_bom(raw)
    text = utf8_text(raw, lambda offset: f"{shown}, line {line_of(raw, offset)}")
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_tokens_text(p: Path, shown: str, opts: Options) -> Sequences:
    """One sequence per non-blank line; its id is the line number."""
    reject_column_options(opts, shown, "a token text file has one sequence of tokens per line")
    lines = decode_lines(gunzip_if_gzip(read_bytes(p, shown), shown), shown)
    tokens: list[str] = []
    lengths: list[int] = []
    ids: list[int] = []
    for line_no, line in enumerate(lines, 1):  # a loop per line
        parts = line.split()
        if parts:
            tokens.extend(parts)
            lengths.append(len(parts))
            ids.append(line_no)
    if not ids:
        raise DataError(f"{shown}: no sequences (the file is empty or has only blank lines)")

    def where(k: int) -> str:
        seq, token = locate_step(lengths, k)
        return f"{shown}, line {ids[seq]}: token {token}"

    check_tokens(tokens, where)  # whitespace never is in a token; NUL can be
    return Sequences(
        np.asarray(tokens, dtype=str),
        np.asarray(lengths, dtype=np.int64),
        np.asarray(ids).astype(str),
        shown,
    )
