"""The in-memory form of a dataset, and what is done to it before batching.

A dataset is a :class:`Sequences`: every sequence's steps concatenated into one
``(total_steps, num_features)`` float32 array, plus each sequence's length and id
(and the features' names, when the file has them).

There is no padding in it; padding exists only in the batches that :func:`pad`
builds, and :func:`length_mask_np` is the numpy reference of which batch positions
are real steps (``seqmask.model.masks.length_mask_ops`` is its twin in keras.ops).

Token data has two forms. As read from a file, ``values`` is a 1-D numpy unicode
array of shape ``(total_steps,)``, one token per step (:attr:`Sequences.is_tokens`).
:meth:`seqmask.data.vocab.Vocabulary.encode` turns it into ids: ``values`` int32 of
shape ``(total_steps, 1)``, so that truncating, splitting and :func:`pad` work on it
unchanged (``pad`` keeps the dtype: an int32 batch of ids, 0 = padding).
:class:`Normalizer` refuses both token forms: tokens are never standardized.

Everything here is vectorized numpy (at most a loop per sequence, never per step),
and nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

from collections.abc import Sequence as _PySequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from seqmask.config import Truncating, check_choice
from seqmask.errors import DataError


def _exclusive_cumsum(lengths: np.ndarray) -> np.ndarray:
    """``[0, l0, l0+l1, ...]``: ``len(lengths) + 1`` int64 offsets."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def gather_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices ``concat(arange(s, s + c) for s, c in zip(starts, counts))``, vectorized."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    out_offsets = _exclusive_cumsum(counts)[:-1]
    # For each output row: its sequence's source start, minus that sequence's output start.
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - out_offsets, counts)
    return np.arange(total, dtype=np.int64) + shift


def _token_form(values: np.ndarray) -> bool:
    """True for tokens (unicode) and token ids (int32), which have no feature names;
    numbers of any other dtype become float32 features."""
    return values.dtype.kind == "U" or values.dtype == np.int32


@dataclass(frozen=True, eq=False)
class Sequences:
    """Variable-length sequences, concatenated without padding.

    ``values[offsets[i]:offsets[i + 1]]`` is sequence ``i`` (id ``ids[i]``), which has
    ``lengths[i]`` steps. Inputs are normalised on construction: lengths to int64,
    ids to a numpy unicode array, and values to one of three forms:

    * numbers: 2-D ``(total_steps, num_features)`` float32 (any other float, int or
      bool dtype is converted to float32), the common case;
    * token ids: 2-D ``(total_steps, 1)`` int32, as :meth:`Vocabulary.encode
      <seqmask.data.vocab.Vocabulary.encode>` makes them (int32 is kept as is);
    * tokens: 1-D ``(total_steps,)`` numpy unicode (``is_tokens``), as readers of
      token data return them; ``num_features`` is then 1.

    ``feature_names`` names the ``num_features`` columns of numbers when the file
    names them (the header of a CSV, the columns of a Parquet table), in the order of
    ``values``' columns; it is ``()`` when the file has no names (NPZ, JSONL, .npy)
    and always ``()`` for tokens and token ids. :attr:`feature_labels` has a label
    for every feature either way. Everything derived from a ``Sequences`` (subsets,
    splits, truncated or normalized copies) keeps the names.

    Inconsistent arrays raise ``ValueError`` (a programming error: readers raise
    ``DataError`` before building a ``Sequences`` from user data).

    An empty ``Sequences`` (no sequences, ``values`` of shape ``(0, num_features)``)
    is allowed; it is what :func:`split` returns as the validation set when the
    fraction is 0.
    """

    values: np.ndarray
    lengths: np.ndarray
    ids: np.ndarray
    source: str = ""
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.dtype.kind == "U":
            if values.ndim != 1:
                raise ValueError(f"token values must be 1-D (total_steps,), got shape {values.shape}")
        else:
            if values.ndim != 2:
                raise ValueError(f"values must be 2-D (total_steps, num_features), got shape {values.shape}")
            if values.dtype.kind not in "fiub":
                raise ValueError(f"values must be numbers or tokens (str), got dtype {values.dtype}")
            if values.dtype != np.float32 and values.dtype != np.int32:
                values = values.astype(np.float32)
        lengths = np.asarray(self.lengths)
        if lengths.ndim != 1:
            raise ValueError(f"lengths must be 1-D, got shape {lengths.shape}")
        if lengths.size and lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
        lengths = lengths.astype(np.int64, copy=False)
        if lengths.size and int(lengths.min()) < 1:
            raise ValueError("every sequence must have at least 1 step")
        if int(lengths.sum()) != values.shape[0]:
            raise ValueError(f"lengths add up to {int(lengths.sum())} steps but values has {values.shape[0]} rows")
        ids = np.asarray(self.ids)
        if ids.size == 0:
            ids = np.zeros(0, dtype="<U1")
        elif ids.dtype.kind != "U":
            ids = ids.astype(str)
        if ids.shape != lengths.shape:
            raise ValueError(f"got {ids.shape[0] if ids.ndim == 1 else ids.shape} ids for {lengths.shape[0]} sequences")
        if isinstance(self.feature_names, str):
            raise ValueError(f"feature_names must be a sequence of names, got the string {self.feature_names!r}")
        names = tuple(str(n) for n in self.feature_names)
        if names and _token_form(values):
            raise ValueError(f"tokens and token ids have no feature names, got {names!r}")
        num_features = 1 if values.ndim == 1 else int(values.shape[1])
        if names and len(names) != num_features:
            raise ValueError(f"got {len(names)} feature names for {num_features} features")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "source", str(self.source))
        object.__setattr__(self, "feature_names", names)

    # -- shape ---------------------------------------------------------------

    @cached_property
    def offsets(self) -> np.ndarray:
        """``(num_sequences + 1,)`` int64; ``offsets[i]:offsets[i+1]`` is sequence ``i``."""
        return _exclusive_cumsum(self.lengths)

    @property
    def is_tokens(self) -> bool:
        """True when ``values`` holds tokens (1-D unicode), not yet mapped to ids."""
        return self.values.dtype.kind == "U"

    @property
    def num_features(self) -> int:
        """Features per step; 1 for tokens (one token per step)."""
        return 1 if self.values.ndim == 1 else int(self.values.shape[1])

    @property
    def feature_labels(self) -> tuple[str, ...]:
        """A label for each feature, for outputs with a column per feature:
        ``feature_names`` when the file named them, else ``("f0", "f1", ...)``;
        ``("token",)`` for tokens and token ids (one token per step)."""
        if self.feature_names:
            return self.feature_names
        if _token_form(self.values):
            return ("token",)
        return tuple(f"f{j}" for j in range(self.num_features))

    @property
    def num_steps(self) -> int:
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def __repr__(self) -> str:
        kind = "tokens" if self.is_tokens else f"features={self.num_features}"
        return (
            f"Sequences(n={len(self)}, steps={self.num_steps}, {kind}"
            + (f", source={self.source!r}" if self.source else "")
            + ")"
        )

    # -- access --------------------------------------------------------------

    def sequence(self, i: int) -> np.ndarray:
        """Sequence ``i`` as a ``(length_i, num_features)`` view into ``values``
        (``(length_i,)`` for tokens)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sequence index {i} out of range for {n} sequences")
        i %= n
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def subset(self, indices: _PySequence[int] | np.ndarray) -> Sequences:
        """The sequences at ``indices``, in that order (repeats allowed)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"subset index out of range for {len(self)} sequences")
        idx = idx % max(len(self), 1)
        lengths = self.lengths[idx]
        rows = gather_index(self.offsets[idx], lengths)
        return replace(self, values=self.values[rows], lengths=lengths, ids=self.ids[idx])

    def with_values(self, values: np.ndarray) -> Sequences:
        """Same lengths, ids and source; new values with ``num_steps`` rows, in any
        of the forms the constructor takes (``(num_steps, F)`` numbers or ids,
        ``(num_steps,)`` tokens). The feature names are kept when the new values are
        numbers with as many features (normalized, say), and dropped otherwise."""
        values = np.asarray(values)
        if values.ndim not in (1, 2) or values.shape[0] != self.num_steps:
            raise ValueError(f"values must have shape ({self.num_steps}, F), got {values.shape}")
        same_features = values.ndim == 2 and values.shape[1] == self.num_features and not _token_form(values)
        return replace(self, values=values, feature_names=self.feature_names if same_features else ())


def _empty_like(seqs: Sequences) -> Sequences:
    return replace(
        seqs,
        values=seqs.values[:0],  # keeps the dtype, the feature count and the names
        lengths=np.zeros(0, dtype=np.int64),
        ids=np.zeros(0, dtype=seqs.ids.dtype),
    )


def _where(seqs: Sequences) -> str:
    return seqs.source or "the data"


# -- before batching ---------------------------------------------------------


def truncate(seqs: Sequences, max_len: int | None, truncating: Truncating) -> Sequences:
    """Cut sequences longer than ``max_len``.

    ``"post"`` keeps the first ``max_len`` steps, ``"pre"`` keeps the last ones,
    ``"none"`` raises :class:`DataError` naming the first sequence that is too long.
    ``max_len=None`` returns ``seqs`` unchanged.
    """
    check_choice("truncating", truncating, Truncating)
    if max_len is None:
        return seqs
    max_len = int(max_len)
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    too_long = np.flatnonzero(seqs.lengths > max_len)
    if too_long.size == 0:
        return seqs
    if truncating == "none":
        i = int(too_long[0])
        raise DataError(
            f"{_where(seqs)}: sequence {str(seqs.ids[i])!r} (index {i}) has {int(seqs.lengths[i])} steps, "
            f"more than max_len {max_len} ({too_long.size} sequence(s) are too long); "
            "raise max_len or set truncating to 'post' or 'pre'"
        )
    new_lengths = np.minimum(seqs.lengths, max_len)
    starts = seqs.offsets[:-1]
    if truncating == "pre":
        starts = starts + (seqs.lengths - new_lengths)
    rows = gather_index(starts, new_lengths)
    return replace(seqs, values=seqs.values[rows], lengths=new_lengths)


def split(seqs: Sequences, fraction: float, seed: int) -> tuple[Sequences, Sequences]:
    """A seeded random ``(train, validation)`` split by sequence.

    ``round(fraction * n)`` sequences are held out, clamped so that validation gets
    at least one when ``fraction > 0`` and there are at least 2 sequences, and train
    is never empty. Both parts keep file order. ``fraction == 0`` (or a single
    sequence) returns ``(seqs, empty)``. The same ``seed`` always gives the same split.
    """
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n = len(seqs)
    if fraction == 0.0 or n < 2:
        return seqs, _empty_like(seqs)
    n_val = min(max(int(round(fraction * n)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])
    return seqs.subset(train_idx), seqs.subset(val_idx)
