"""The vocabulary of token sequences: token <-> id.

Id 0 (``<pad>``) is reserved for padding and id 1 (``<unk>``) for tokens the
vocabulary does not know; real tokens get ids from 2, most frequent first. A
vocabulary is built from the *training* split only (:meth:`Vocabulary.build`), so
validation tokens never leak into it, or loaded from a file
(:meth:`Vocabulary.load`): UTF-8 text, one token per line, the id is the 0-based
line index, ``<pad>`` and ``<unk>`` on the first two lines.

The encoded form (:meth:`Vocabulary.encode`) is a :class:`~seqmask.data.Sequences`
whose ``values`` are int32 ids of shape ``(total_steps, 1)``: one feature per step,
so truncating, splitting and :func:`~seqmask.data.pad` work on it unchanged, and
``pad`` returns an int32 ``(batch, time, 1)`` array padded with :data:`PAD`.

Everything is vectorized (``np.unique`` + ``searchsorted``), and nothing here
imports TensorFlow or Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from seqmask.atomic import write_text
from seqmask.data import Sequences
from seqmask.errors import DataError

__all__ = ["PAD", "UNKNOWN", "PAD_TOKEN", "UNKNOWN_TOKEN", "Vocabulary"]

PAD, UNKNOWN = 0, 1  # id 0 reserved for padding, 1 for unknown tokens
PAD_TOKEN, UNKNOWN_TOKEN = "<pad>", "<unk>"
_RESERVED = (PAD_TOKEN, UNKNOWN_TOKEN)


def _bad_token(token: object) -> str | None:
    """Why ``token`` cannot be in a vocabulary (a file of one token per line)."""
    if not isinstance(token, str):
        return f"is not a string ({type(token).__name__})"
    if token == "":
        return "is empty"
    if "\n" in token or "\r" in token:
        return "contains a line break"
    if "\x00" in token:
        return "contains a NUL character"
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate)"
    return None


@dataclass(frozen=True)
class Vocabulary:
    """Token strings by id: ``tokens[i]`` has id ``i``; ``tokens[:2]`` are
    ``("<pad>", "<unk>")``. ``ValueError`` for anything else (duplicates, empty
    tokens, line breaks): every vocabulary can be saved and loaded back."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        if tokens[:2] != _RESERVED:
            raise ValueError(f"a vocabulary starts with {PAD_TOKEN!r}, {UNKNOWN_TOKEN!r}, got {tokens[:2]!r}")
        for i, tok in enumerate(tokens):
            problem = _bad_token(tok)
            if problem is not None:
                raise ValueError(f"token {i} ({tok!r}) {problem}")
        seen: set[str] = set()
        for tok in tokens:
            if tok in seen:
                raise ValueError(f"token {tok!r} appears more than once in the vocabulary")
            seen.add(tok)
        object.__setattr__(self, "tokens", tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    # -- making one --------------------------------------------------------------

    @classmethod
    def build(cls, seqs: Sequences, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """The tokens of ``seqs`` (the training split), most frequent first, ties
        broken by token string (code point order), so the result is deterministic.

        Tokens seen fewer than ``min_count`` times are left out (they encode to
        :data:`UNKNOWN`). ``max_size`` caps ``len(vocabulary)``, the two reserved ids
        included (so it must be >= 3). Literal ``<pad>``/``<unk>`` tokens in the data
        are not given ids of their own. ``ValueError`` if ``seqs`` is not tokens.
        """
        if not seqs.is_tokens:
            raise ValueError("Vocabulary.build needs token sequences (1-D str values)")
        min_count = int(min_count)
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and int(max_size) < 3:
            raise ValueError(f"max_size must be >= 3 (it counts <pad> and <unk>) or None, got {max_size}")
        uniq, counts = np.unique(seqs.values, return_counts=True)  # uniq is sorted
        keep = (counts >= min_count) & (uniq != PAD_TOKEN) & (uniq != UNKNOWN_TOKEN)
        uniq, counts = uniq[keep], counts[keep]
        order = np.lexsort((uniq, -counts))  # by count descending, then by token
        if max_size is not None:
            order = order[: int(max_size) - len(_RESERVED)]
        return cls(_RESERVED + tuple(uniq[order].tolist()))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary file (UTF-8, one token per line, ``<pad>`` and ``<unk>``
        first). ``DataError`` naming the file, and the line where there is one."""
        from seqmask.data.readers import read_bytes
        from seqmask.data.readers.text import decode_lines

        shown = str(path)
        lines = decode_lines(read_bytes(Path(path), shown), shown)
        if not lines:
            raise DataError(
                f"{shown}: the vocabulary file is empty; it needs {PAD_TOKEN!r} and {UNKNOWN_TOKEN!r} first"
            )
        for k, expected in enumerate(_RESERVED):
            if k >= len(lines) or lines[k] != expected:
                got = repr(lines[k]) if k < len(lines) else "the end of the file"
                raise DataError(
                    f"{shown}, line {k + 1}: expected {expected!r} (lines 1 and 2 of a vocabulary are "
                    f"{PAD_TOKEN!r} and {UNKNOWN_TOKEN!r}), got {got}"
                )
        first_line: dict[str, int] = {}
        for k, tok in enumerate(lines):  # a loop per token, as the file has
            problem = _bad_token(tok)
            if problem is not None:
                raise DataError(f"{shown}, line {k + 1}: the token {problem}; one token per line, no blank lines")
            if tok in first_line:
                raise DataError(
                    f"{shown}, line {k + 1}: token {tok!r} appears twice (also on line {first_line[tok] + 1})"
                )
            first_line[tok] = k
        return cls(tuple(lines))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary file atomically: a temporary file in the same
        directory, renamed over ``path``, so a reader never sees half a file."""
        write_text(path, "\n".join(self.tokens) + "\n")

    # -- using one -----------------------------------------------------------------

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """The real tokens sorted (for ``searchsorted``) and their ids, int32."""
        real = np.asarray(self.tokens[2:], dtype=str) if len(self.tokens) > 2 else np.zeros(0, dtype="<U1")
        order = np.argsort(real, kind="stable")
        return real[order], (order + len(_RESERVED)).astype(np.int32)

    def encode(self, seqs: Sequences) -> Sequences:
        """Token sequences -> ids: same lengths, ids and source; ``values`` int32 of
        shape ``(total_steps, 1)``. A token not in the vocabulary (or a literal
        ``<pad>``/``<unk>`` in the data) becomes :data:`UNKNOWN`; no real step is
        ever :data:`PAD`. ``ValueError`` if ``seqs`` is not tokens."""
        if not seqs.is_tokens:
            raise ValueError("Vocabulary.encode needs token sequences (1-D str values); are they encoded already?")
        real, real_ids = self._sorted
        out = np.full(seqs.num_steps, UNKNOWN, dtype=np.int32)
        if real.size and seqs.num_steps:
            uniq, inverse = np.unique(seqs.values, return_inverse=True)
            pos = np.searchsorted(real, uniq).clip(0, real.size - 1)
            found = real[pos] == uniq
            uniq_ids = np.where(found, real_ids[pos], UNKNOWN).astype(np.int32)
            out = uniq_ids[inverse.reshape(-1)]
        return seqs.with_values(out.reshape(-1, 1))

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Ids (any shape) -> tokens, a numpy unicode array of the same shape.
        ``ValueError`` for an id outside ``0 .. len(self) - 1``."""
        ids = np.asarray(ids)
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"token ids must be integers in 0 .. {len(self) - 1}")
        return np.asarray(self.tokens, dtype=str)[ids.astype(np.int64)]
