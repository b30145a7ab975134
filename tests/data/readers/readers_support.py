"""Shared helpers of the reader tests (test_readers*.py): writing files, checking
that an error names the file, and the one rule of fuzzing: a correct load or a
DataError naming the file, never another exception."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from seqmask.data import Sequences
from seqmask.data.readers import read_sequences
from seqmask.errors import DataError

# SEQMASK_FUZZ_EXAMPLES=2000 for a long hunt; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("SEQMASK_FUZZ_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# Bytes that break things: invalid UTF-8, NUL, stray quotes/brackets, line breaks.
BAD_BYTES = [b"\xff", b"\xc3", b"\x00", b"\x80\x80", b'"', b"\r", b"\n", b"[", b"}", b",", b"\xed\xa0\x80"]


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def error(path, *, names=None, **kw) -> str:
    """The DataError message of reading ``path``; it must name ``names`` (default:
    ``path``) and be one line."""
    with pytest.raises(DataError) as e:
        read_sequences(path, **kw)
    msg = str(e.value)
    assert str(names if names is not None else path) in msg, msg
    assert "\n" not in msg, msg
    return msg


def check_outcome(path: Path, names=None, **kw) -> Sequences | None:
    """Read ``path``: a valid Sequences, or a DataError naming the file (``names``
    may list several acceptable file names, e.g. the files of a directory)."""
    try:
        s = read_sequences(path, **kw)
    except DataError as e:
        msg = str(e)
        candidates = [str(path)] + [str(n) for n in (names or [])]
        assert any(c in msg for c in candidates), msg
        assert "\n" not in msg, msg
        return None
    # any other exception fails the test
    assert isinstance(s, Sequences) and len(s) >= 1
    assert int(s.lengths.sum()) == s.num_steps and s.lengths.min() >= 1
    assert len(set(s.ids.tolist())) == len(s)
    assert all(i != "" for i in s.ids.tolist())
    if s.is_tokens:
        assert s.values.ndim == 1
        assert all(t and "\n" not in t and "\r" not in t and "\x00" not in t for t in s.values.tolist())
    else:
        assert s.values.dtype == np.float32 and s.values.ndim == 2 and s.num_features >= 1
        assert np.all(np.isfinite(s.values))
    return s
