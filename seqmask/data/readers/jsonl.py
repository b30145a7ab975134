"""JSONL: one JSON object per line, one sequence per object.

``{"id": "a", "values": [[1.0, 2.0], [3.0, 4.0]]}`` (a list of steps, each a list
of numbers; a flat list of numbers is one feature), or ``{"id": "a", "tokens":
["the", "cat"]}`` (strings or integer ids; integers are kept as their text). The
key names are ``id_key``, ``values_key`` and ``tokens_key``; other keys are
ignored. Ids are strings or integers (kept as their text). Blank lines are skipped;
line numbers in messages are physical lines (1-based, ``\\n``-separated). A file
starting with the gzip magic bytes (``.jsonl.gz``) is decompressed first.

Each line is parsed by ``json.loads``; its numbers are checked by type in C
(``set(map(type, ...))``) and converted by one numpy call, so there is a Python
loop per line, never per number.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seqmask.data import Sequences
from seqmask.data.readers._arrays import checked_float32, common_width, lengths_of
from seqmask.data.readers._common import (
    Options,
    check_tokens,
    gunzip_if_gzip,
    read_bytes,
    reject_column_options,
    show,
    strip_bom,
    text_problem,
    utf8_text,
)
from seqmask.errors import DataError

_NUMBER_TYPES = frozenset({int, float})


def _json_type(v: object) -> str:
    """A JSON value for a message: its kind, and the value itself where it is short."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"the string {show(v, 20)}"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def read_jsonl(p: Path, shown: str, opts: Options) -> Sequences:
    """One sequence per non-blank line, in file order."""
    reject_column_options(opts, shown, "a JSONL file names its keys with id_key, values_key and tokens_key")
    raw = strip_bom(gunzip_if_gzip(read_bytes(p, shown), shown))
    seen = _Seen(opts)
    for line_no, line in enumerate(raw.split(b"\n"), 1):  # a loop per line
        if line.strip():
            at = f"{shown}, line {line_no}"
            seen.add(_record(line, at), line_no, at)
    if not seen.ids:
        raise DataError(f"{shown}: no sequences (the file is empty or has only blank lines)")
    return seen.sequences(shown)


def _record(line: bytes, at: str) -> dict[str, Any]:
    """One line as a JSON object; ``at`` is the file and line, for the messages."""
    text = utf8_text(line, lambda _: at)
    try:
        record = json.loads(text)
    except RecursionError:
        raise DataError(f"{at}: invalid JSON (nested too deep)") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{at}: invalid JSON ({e.msg} at column {e.colno})") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise DataError(f"{at}: invalid JSON ({str(e)[:120]})") from None
    if not isinstance(record, dict):
        raise DataError(f"{at}: expected a JSON object {{...}} per line, got {_json_type(record)}")
    return record


class _Seen:
    """The sequences of the lines read so far, and what a later line must agree
    with: a new id, the same kind of sequence (values or tokens) and, for values,
    the same number of features."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.ids: list[str] = []
        self.id_lines: dict[str, int] = {}
        self.parts: list[np.ndarray] = []  # each (steps, features) float32
        self.token_parts: list[list[str]] = []
        self.mode: str | None = None  # values_key or tokens_key, fixed by the first record
        self.mode_line = 0

    def add(self, record: dict[str, Any], line_no: int, at: str) -> None:
        """The sequence of line ``line_no``; ``at`` names the file and the line."""
        sid = _record_id(record, self.opts.id_key, at)
        if sid in self.id_lines:
            raise DataError(f"{at}: id {show(sid)} appears more than once (also on line {self.id_lines[sid]})")
        key = self._key(record, line_no, at)
        where = f"{at}: sequence {show(sid)}"
        if key == self.opts.values_key:
            self._add_values(_values(record[key], where, key), where)
        else:
            self.token_parts.append(_tokens(record[key], where, key))
        self.id_lines[sid] = line_no
        self.ids.append(sid)

    def _key(self, record: dict[str, Any], line_no: int, at: str) -> str:
        """The key holding the sequence: values_key or tokens_key, the same in every
        record (the first one fixes it)."""
        values_key, tokens_key = self.opts.values_key, self.opts.tokens_key
        has_v, has_t = values_key in record, tokens_key in record
        if has_v and has_t:
            raise DataError(f"{at}: has both {values_key!r} and {tokens_key!r}; give one of them")
        if not has_v and not has_t:
            raise DataError(f"{at}: missing key {values_key!r} (or {tokens_key!r} for token sequences)")
        key = values_key if has_v else tokens_key
        if self.mode is None:
            self.mode, self.mode_line = key, line_no
        elif key != self.mode:
            raise DataError(
                f"{at}: has {key!r} but line {self.mode_line} has {self.mode!r}; one file holds "
                "either numeric or token sequences"
            )
        return key

    def _add_values(self, x: np.ndarray, where: str) -> None:
        """Keep ``x`` ``(steps, features)``: as many features as the sequences before."""
        if self.parts and x.shape[1] != self.parts[0].shape[1]:
            raise DataError(
                f"{where} has {x.shape[1]} features per step but earlier sequences "
                f"(line {self.mode_line}) have {self.parts[0].shape[1]}"
            )
        self.parts.append(x)

    def sequences(self, shown: str) -> Sequences:
        """Everything read, end to end, as :class:`Sequences`."""
        ids = np.asarray(self.ids, dtype=str)  # (sequences,)
        if self.mode == self.opts.values_key:
            return Sequences(np.concatenate(self.parts), lengths_of(self.parts), ids, shown)
        tokens = np.asarray(list(itertools.chain.from_iterable(self.token_parts)), dtype=str)  # (total_tokens,)
        return Sequences(tokens, lengths_of(self.token_parts), ids, shown)


def _record_id(record: dict[str, Any], id_key: str, at: str) -> str:
    """The record's id as text: a string or an integer, not empty."""
    if id_key not in record:
        raise DataError(f"{at}: missing key {id_key!r} (the sequence id)")
    sid = record[id_key]
    if isinstance(sid, bool) or not isinstance(sid, (str, int)):
        raise DataError(f"{at}: {id_key!r} must be a string or an integer, got {_json_type(sid)}")
    try:
        sid = str(sid)
    except ValueError:  # an int too long to print
        raise DataError(f"{at}: {id_key!r} is an integer too long to use as an id") from None
    if sid == "":
        raise DataError(f"{at}: {id_key!r} is empty; every sequence needs an id")
    problem = text_problem(sid)
    if problem is not None:
        raise DataError(f"{at}: {id_key!r} {problem}")
    return sid


# -- values ------------------------------------------------------------------------------


def _values(v: object, where: str, key: str) -> np.ndarray:
    """A ``(steps, features)`` float32 array from a JSON list, or ``DataError``."""
    if not isinstance(v, list):
        raise DataError(f"{where}: {key!r} must be a list of steps, got {_json_type(v)}")
    if not v:
        raise DataError(f"{where} is empty ({key!r} is []); every sequence needs at least one step")

    def place(step: int, feature: int) -> str:
        return f"{where}: step {step}, feature {feature}"

    flat, width = _flat_numbers(v, where, key, place)
    try:
        x = np.array(flat, dtype=np.float64)  # (steps * features,)
    except (OverflowError, ValueError, TypeError):
        k = next(k for k, c in enumerate(flat) if not _fits_float64(c))
        raise DataError(f"{place(*divmod(k, width))} value {show(str(flat[k]))} is too large") from None
    return checked_float32(x.reshape(-1, width), place)  # (steps, features)


def _flat_numbers(v: list[Any], where: str, key: str, place: Callable[[int, int], str]) -> tuple[list[Any], int]:
    """The numbers of ``v`` step by step, and the number of features per step.
    The types are checked in C (``set(map(type, ...))``); only a bad list takes a
    Python loop, to find the bad item."""
    types = set(map(type, v))
    if types <= _NUMBER_TYPES:
        return v, 1
    if types == {list}:
        widths = lengths_of(v)  # (steps,)
        width = common_width(widths, lambda s: f"{where}: step {s}", "step 0")
        if width == 0:
            raise DataError(f"{where}: step 0 is an empty list (no features)")
        flat = list(itertools.chain.from_iterable(v))
        if not set(map(type, flat)) <= _NUMBER_TYPES:
            k = next(k for k, c in enumerate(flat) if type(c) not in _NUMBER_TYPES)
            problem = (
                "is a list: nested too deep (a step is a list of numbers)"
                if isinstance(flat[k], list)
                else f"is {_json_type(flat[k])}, not a number"
            )
            raise DataError(f"{place(*divmod(k, width))} {problem}")
        return flat, width
    k_bad = next((k for k, c in enumerate(v) if type(c) is not list and type(c) not in _NUMBER_TYPES), None)
    if k_bad is not None:
        raise DataError(f"{where}: step {k_bad} is {_json_type(v[k_bad])}, not a number or a list of numbers")
    raise DataError(f"{where}: {key!r} mixes numbers and lists; give a list of steps, each a list of numbers")


def _fits_float64(c: Any) -> bool:
    try:
        float(c)
    except (OverflowError, ValueError, TypeError):
        return False
    return True


# -- tokens ------------------------------------------------------------------------------


def _tokens(t: object, where: str, key: str) -> list[str]:
    """The tokens of a JSON list (strings, or integers kept as their text)."""
    if not isinstance(t, list):
        raise DataError(f"{where}: {key!r} must be a list of tokens, got {_json_type(t)}")
    if not t:
        raise DataError(f"{where} is empty ({key!r} is []); every sequence needs at least one token")
    types = set(map(type, t))
    if types == {str}:
        out = t
    elif types <= {str, int}:
        try:
            out = list(map(str, t))
        except ValueError:  # an int too long to print
            raise DataError(f"{where}: {key!r} holds an integer too long to use as a token") from None
    else:
        k = next(k for k, c in enumerate(t) if type(c) not in (str, int))
        raise DataError(f"{where}: token {k} is {_json_type(t[k])}; tokens must be strings or integers")
    check_tokens(out, lambda k: f"{where}, token {k}")
    return out
