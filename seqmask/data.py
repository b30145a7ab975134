"""The in-memory form of a dataset, and what is done to it before batching.

A dataset is a :class:`Sequences`: every sequence's steps concatenated into one
``(total_steps, num_features)`` float32 array, plus each sequence's length and id
(and the features' names, when the file has them).

There is no padding in it; padding exists only in the batches that :func:`pad`
builds, and :func:`length_mask_np` is the numpy reference of which batch positions
are real steps (``seqmask.layers.length_mask_ops`` is its twin in keras.ops).

Token data has two forms. As read from a file, ``values`` is a 1-D numpy unicode
array of shape ``(total_steps,)``, one token per step (:attr:`Sequences.is_tokens`).
:meth:`seqmask.vocab.Vocabulary.encode` turns it into ids: ``values`` int32 of
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
from typing import Any

import numpy as np

from seqmask.config import Padding, Truncating, check_choice
from seqmask.errors import DataError


def _exclusive_cumsum(lengths: np.ndarray) -> np.ndarray:
    """``[0, l0, l0+l1, ...]``: ``len(lengths) + 1`` int64 offsets."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _gather_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
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
      <seqmask.vocab.Vocabulary.encode>` makes them (int32 is kept as is);
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
        rows = _gather_index(self.offsets[idx], lengths)
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


def _check_numbers(seqs: Sequences, what: str) -> None:
    if seqs.values.dtype != np.float32:
        form = "tokens" if seqs.is_tokens else "token ids"
        raise ValueError(f"cannot {what} {form}: only numeric (float32) values are normalized")


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
    rows = _gather_index(starts, new_lengths)
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


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Per-feature standardisation ``(x - mean) / std``, fitted over the real steps.

    A constant (or empty-variance) feature gets ``std = 1`` so nothing is ever
    divided by 0.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"mean has {mean.size} features but std has {std.size}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("normalizer mean must be finite and std finite and > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def num_features(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, seqs: Sequences) -> Normalizer:
        """Mean and (population) std of every feature over all real steps.

        ``ValueError`` for tokens or token ids: they are never normalized.
        """
        _check_numbers(seqs, "fit a normalizer on")
        if seqs.num_steps == 0:
            raise ValueError("cannot fit a normalizer on no data")
        x = seqs.values.astype(np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        constant = (x.max(axis=0) == x.min(axis=0)) | ~np.isfinite(std) | ~(std > 0)
        std = np.where(constant, 1.0, std)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        return cls(mean, std)

    @classmethod
    def identity(cls, num_features: int) -> Normalizer:
        return cls(np.zeros(num_features), np.ones(num_features))

    def apply(self, seqs: Sequences) -> Sequences:
        _check_numbers(seqs, "normalize")
        if seqs.num_features != self.num_features:
            raise ValueError(f"normalizer has {self.num_features} features but the data has {seqs.num_features}")
        out = (seqs.values.astype(np.float64) - self.mean) / self.std
        return seqs.with_values(out.astype(np.float32))

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`. Raises ``ValueError`` if ``d`` is malformed."""
        if not isinstance(d, dict) or "mean" not in d or "std" not in d:
            raise ValueError("a normalizer needs 'mean' and 'std' lists")
        try:
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"normalizer 'mean'/'std' must be lists of numbers ({e})") from None
        if mean.ndim != 1 or std.ndim != 1:
            raise ValueError("normalizer 'mean' and 'std' must be flat lists")
        return cls(mean, std)


# -- batching ----------------------------------------------------------------


def pad(
    seqs: Sequences,
    indices: _PySequence[int] | np.ndarray,
    time_len: int,
    padding: Padding,
    pad_value: float = 0.0,
) -> np.ndarray:
    """A ``(len(indices), time_len, num_features)`` batch of the chosen sequences.

    The batch has the dtype of ``seqs.values``: float32 for numbers, int32 for token
    ids (pad with ``pad_value=0``, :data:`seqmask.vocab.PAD`). A ``pad_value`` that
    int32 cannot hold exactly is a ``ValueError``, and so are tokens not yet encoded.
    Real steps sit at the start (``"post"`` padding) or the end (``"pre"``) of the
    time axis; every other position holds ``pad_value``. Every chosen sequence must
    fit (``length <= time_len``), else ``ValueError``: truncate first.
    """
    check_choice("padding", padding, Padding)
    if seqs.is_tokens:
        raise ValueError("cannot pad tokens: encode them to ids with a Vocabulary first")
    dtype = seqs.values.dtype
    if dtype.kind in "iu":
        info, p = np.iinfo(dtype), float(pad_value)
        if not (p.is_integer() and info.min <= p <= info.max):
            raise ValueError(f"pad_value {pad_value!r} is not a valid {dtype} value for token ids")
        pad_value = int(p)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -len(seqs) or idx.max() >= len(seqs)):
        raise IndexError(f"pad index out of range for {len(seqs)} sequences")
    idx = idx % max(len(seqs), 1)
    time_len = int(time_len)
    if time_len < 0:
        raise ValueError(f"time_len must be >= 0, got {time_len}")
    lengths = seqs.lengths[idx]
    if lengths.size and int(lengths.max()) > time_len:
        j = int(np.argmax(lengths))
        raise ValueError(
            f"sequence {str(seqs.ids[idx[j]])!r} has {int(lengths[j])} steps, more than time_len {time_len}"
        )
    out = np.full((idx.size, time_len, seqs.num_features), pad_value, dtype=dtype)
    # One slice copy per sequence, not one fancy-indexed copy of every step: this runs
    # before every training step, and for batches of training size the slices are several
    # times faster (see BENCHMARKS.md, section "Training throughput (CPU)"; the time it
    # takes now is a row of section "Where the time goes").
    values, starts = seqs.values, seqs.offsets[idx].tolist()
    for row, (start, length) in enumerate(zip(starts, lengths.tolist(), strict=True)):
        first = 0 if padding == "post" else time_len - length
        out[row, first : first + length] = values[start : start + length]
    return out


def length_mask_np(lengths: np.ndarray, time_len: int, padding: Padding) -> np.ndarray:
    """``(n, time_len)`` bool: True at the real steps of a :func:`pad`-ded batch.

    The numpy form; ``seqmask.layers.length_mask_ops`` computes the same in keras.ops.
    """
    check_choice("padding", padding, Padding)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    t = np.arange(int(time_len), dtype=np.int64)[None, :]
    if padding == "post":
        return t < lengths[:, None]
    return t >= (int(time_len) - lengths)[:, None]


def last_step_index_np(lengths: np.ndarray, time_len: int, padding: Padding) -> np.ndarray:
    """``(n,)`` int64: the time index of each sequence's last real step in a padded batch.

    The numpy form; ``seqmask.layers.last_step_index_ops`` computes the same in keras.ops.
    """
    check_choice("padding", padding, Padding)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if padding == "post":
        return lengths - 1
    return np.full(lengths.shape, int(time_len) - 1, dtype=np.int64)


def reverse_by_length_np(x: np.ndarray, lengths: np.ndarray, padding: Padding) -> np.ndarray:
    """``(n, time, dim)``: each row's real steps in reverse order, padding left in place.

    The numpy form, written for clarity; ``seqmask.layers.reverse_by_length_ops`` computes
    the same in keras.ops.
    """
    check_choice("padding", padding, Padding)
    out = np.array(x, copy=True)
    time_len = out.shape[1]
    for row, length in enumerate(np.asarray(lengths, dtype=np.int64).reshape(-1)):
        start = 0 if padding == "post" else time_len - int(length)
        out[row, start : start + length] = x[row, start : start + length][::-1]
    return out
