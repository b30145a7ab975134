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

import codecs
import itertools
import json
from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError
from seqmask.readers._arrays import bad_value_text, float32_values
from seqmask.readers._common import (
    Options,
    check_tokens,
    gunzip_if_gzip,
    read_bytes,
    reject_column_options,
    show,
    text_problem,
)

_NUMBER_TYPES = frozenset({int, float})


def _json_type(v) -> str:
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
    reject_column_options(opts, shown, "a JSONL file names its keys with id_key, values_key and tokens_key")
    raw = gunzip_if_gzip(read_bytes(p, shown), shown)
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    id_key, values_key, tokens_key = opts.id_key, opts.values_key, opts.tokens_key

    ids: list[str] = []
    id_lines: dict[str, int] = {}
    parts: list[np.ndarray] = []
    token_parts: list[list[str]] = []
    mode: str | None = None  # values_key or tokens_key, fixed by the first record
    mode_line = 0
    width = 0  # features per step of the values records

    for line_no, line in enumerate(raw.split(b"\n"), 1):  # a loop per line
        if not line.strip():
            continue
        at = f"{shown}, line {line_no}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{at}: not valid UTF-8 text (byte {line[e.start]:#04x})") from None
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

        # id
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
        if sid in id_lines:
            raise DataError(f"{at}: id {show(sid)} appears more than once (also on line {id_lines[sid]})")

        # values or tokens
        has_v, has_t = values_key in record, tokens_key in record
        if has_v and has_t:
            raise DataError(f"{at}: has both {values_key!r} and {tokens_key!r}; give one of them")
        if not has_v and not has_t:
            raise DataError(f"{at}: missing key {values_key!r} (or {tokens_key!r} for token sequences)")
        key = values_key if has_v else tokens_key
        if mode is None:
            mode, mode_line = key, line_no
        elif key != mode:
            raise DataError(
                f"{at}: has {key!r} but line {mode_line} has {mode!r}; one file holds "
                "either numeric or token sequences"
            )
        where = f"{at}: sequence {show(sid)}"
        if key == values_key:
            x = _values(record[key], where, key)
            if parts and x.shape[1] != width:
                raise DataError(
                    f"{where} has {x.shape[1]} features per step but earlier sequences "
                    f"(line {mode_line}) have {width}"
                )
            width = x.shape[1]
            parts.append(x)
        else:
            token_parts.append(_tokens(record[key], where, key))
        id_lines[sid] = line_no
        ids.append(sid)

    if not ids:
        raise DataError(f"{shown}: no sequences (the file is empty or has only blank lines)")
    if mode == values_key:
        lengths = np.fromiter((len(x) for x in parts), dtype=np.int64, count=len(parts))
        return Sequences(np.concatenate(parts), lengths, np.asarray(ids, dtype=str), shown)
    lengths = np.fromiter((len(t) for t in token_parts), dtype=np.int64, count=len(token_parts))
    tokens = np.asarray(list(itertools.chain.from_iterable(token_parts)), dtype=str)
    return Sequences(tokens, lengths, np.asarray(ids, dtype=str), shown)


def _values(v, where: str, key: str) -> np.ndarray:
    """A ``(steps, features)`` float32 array from a JSON list, or ``DataError``."""
    if not isinstance(v, list):
        raise DataError(f"{where}: {key!r} must be a list of steps, got {_json_type(v)}")
    if not v:
        raise DataError(f"{where} is empty ({key!r} is []); every sequence needs at least one step")
    types = set(map(type, v))
    if types <= _NUMBER_TYPES:
        flat, width = v, 1
    elif types == {list}:
        widths = np.fromiter(map(len, v), dtype=np.int64, count=len(v))
        width = int(widths[0])
        ragged = np.flatnonzero(widths != width)
        if ragged.size:
            s = int(ragged[0])
            raise DataError(f"{where}: step {s} has {int(widths[s])} features but step 0 has {width}")
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
            raise DataError(f"{where}: step {k // width}, feature {k % width} {problem}")
    else:
        k = next((k for k, c in enumerate(v) if type(c) is not list and type(c) not in _NUMBER_TYPES), None)
        if k is not None:
            raise DataError(f"{where}: step {k} is {_json_type(v[k])}, not a number or a list of numbers")
        raise DataError(f"{where}: {key!r} mixes numbers and lists; give a list of steps, each a list of numbers")
    try:
        x = np.array(flat, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):
        k = next(k for k, c in enumerate(flat) if not _fits_float64(c))
        raise DataError(
            f"{where}: step {k // width}, feature {k % width} value {show(str(flat[k]))} is too large"
        ) from None
    x = x.reshape(-1, width)
    x32, bad = float32_values(x)
    if bad.any():
        s, f = (int(a[0]) for a in np.nonzero(bad))
        raise DataError(f"{where}: step {s}, feature {f} {bad_value_text(x[s, f])}")
    return x32


def _fits_float64(c) -> bool:
    try:
        float(c)
    except (OverflowError, ValueError, TypeError):
        return False
    return True


def _tokens(t, where: str, key: str) -> list[str]:
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
