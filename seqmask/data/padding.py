"""Padded batches and the numpy reference of which batch positions are real steps.

:func:`pad` is the only place padding is made; :func:`length_mask_np` and its siblings are
the numpy twins of ``seqmask.model.layers``' keras.ops masks, used by scoring and the tests.
Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

from collections.abc import Sequence as _PySequence

import numpy as np

from seqmask.config import Padding, check_choice
from seqmask.data.sequences import Sequences


def pad(
    seqs: Sequences,
    indices: _PySequence[int] | np.ndarray,
    time_len: int,
    padding: Padding,
    pad_value: float = 0.0,
) -> np.ndarray:
    """A ``(len(indices), time_len, num_features)`` batch of the chosen sequences.

    The batch has the dtype of ``seqs.values``: float32 for numbers, int32 for token
    ids (pad with ``pad_value=0``, :data:`seqmask.data.vocab.PAD`). A ``pad_value`` that
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

    The numpy form; ``seqmask.model.masks.length_mask_ops`` computes the same in keras.ops.
    """
    check_choice("padding", padding, Padding)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    t = np.arange(int(time_len), dtype=np.int64)[None, :]
    if padding == "post":
        return t < lengths[:, None]
    return t >= (int(time_len) - lengths)[:, None]


def last_step_index_np(lengths: np.ndarray, time_len: int, padding: Padding) -> np.ndarray:
    """``(n,)`` int64: the time index of each sequence's last real step in a padded batch.

    The numpy form; ``seqmask.model.masks.last_step_index_ops`` computes the same in keras.ops.
    """
    check_choice("padding", padding, Padding)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if padding == "post":
        return lengths - 1
    return np.full(lengths.shape, int(time_len) - 1, dtype=np.int64)


def reverse_by_length_np(x: np.ndarray, lengths: np.ndarray, padding: Padding) -> np.ndarray:
    """``(n, time, dim)``: each row's real steps in reverse order, padding left in place.

    The numpy form, written for clarity; ``seqmask.model.masks.reverse_by_length_ops`` computes
    the same in keras.ops.
    """
    check_choice("padding", padding, Padding)
    out = np.array(x, copy=True)
    time_len = out.shape[1]
    for row, length in enumerate(np.asarray(lengths, dtype=np.int64).reshape(-1)):
        start = 0 if padding == "post" else time_len - int(length)
        out[row, start : start + length] = x[row, start : start + length][::-1]
    return out
