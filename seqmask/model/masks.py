"""Which batch positions are real steps, in keras.ops: every mask computed from `lengths`.

The keras.ops twins of `seqmask.data.padding`'s numpy references (the tests hold them
equal), used by the layers, the losses, the fused LSTM and the exported graphs.

Padding side: with `padding="post"` the real steps of a sequence of length L sit at
t = 0 .. L-1; with `padding="pre"` they sit at t = T-L .. T-1 (T = the batch's time length).
"""

import math
from typing import Any

from keras import ops

from seqmask.config import Padding, check_choice

# A backend tensor, or a numpy array where keras.ops takes one; Keras has no type for both.
Tensor = Any
# A Keras shape: one size per axis, None where it is only known at run time.
Shape = tuple[int | None, ...]


def length_mask_ops(lengths: Tensor, time_len: Any, padding: Padding) -> Tensor:
    """`True` at real steps, in keras.ops (`seqmask.data.length_mask_np` is the numpy twin).

    lengths: (batch,) int -> (batch, time) bool. `time_len` may be a symbolic size.
    """
    check_choice("padding", padding, Padding)
    steps = ops.arange(time_len, dtype="int32")[None, :]  # (1, time)
    lengths = ops.cast(lengths, "int32")[:, None]  # (batch, 1)
    if padding == "post":
        return steps < lengths  # real steps: t < L
    return steps >= time_len - lengths  # real steps: t >= T - L


def last_step_index_ops(lengths: Tensor, time_len: Any, padding: Padding) -> Tensor:
    """Index of each sequence's last real step, in keras.ops (`seqmask.data.last_step_index_np`
    is the numpy twin). (batch,) int -> (batch,) int32.

    Found from the lengths alone, so a length-1 sequence gives 0 (post) and a last step
    whose features are all zero is still found.
    """
    check_choice("padding", padding, Padding)
    lengths = ops.cast(lengths, "int32")
    if padding == "post":
        return lengths - 1
    return ops.full_like(lengths, time_len - 1)


def reverse_index_ops(lengths: Tensor, time_len: Any, padding: Padding) -> Tensor:
    """For each (b, t), the step whose value lands at t when each sequence's real steps are
    reversed by its own length; padded steps stay where they are. (batch,) -> (batch, time).

    Real steps run from s to e (post: s = 0, e = L - 1; pre: s = T - L, e = T - 1), and the
    reversal maps t -> s + e - t. Reversing by the padded length instead would move the
    padding to the front of a post-padded sequence.
    """
    check_choice("padding", padding, Padding)
    steps = ops.arange(time_len, dtype="int32")[None, :]  # (1, time)
    lengths = ops.cast(lengths, "int32")[:, None]  # (batch, 1)
    if padding == "post":
        first_plus_last = lengths - 1  # s + e = 0 + (L - 1)
    else:
        first_plus_last = 2 * time_len - lengths - 1  # (T - L) + (T - 1)
    real = length_mask_ops(lengths[:, 0], time_len, padding)  # (batch, time)
    return ops.where(real, first_plus_last - steps, steps)  # (batch, time)


def reverse_by_length_ops(x: Tensor, lengths: Tensor, padding: Padding) -> Tensor:
    """x (batch, time, dim) with each sequence's real steps in reverse order (keras.ops;
    `seqmask.data.reverse_by_length_np` is the numpy twin)."""
    index = reverse_index_ops(lengths, ops.shape(x)[1], padding)  # (batch, time)
    return ops.take_along_axis(x, index[:, :, None], axis=1)  # (batch, time, dim)


def step_positions_ops(steps: Tensor, size: int) -> Tensor:
    """The `StepPositions` features of step indices: `steps` (time,) or (batch, time)
    float32, or a time length (indices 0 .. time - 1) -> (..., size)."""
    if not hasattr(steps, "shape") or len(steps.shape) == 0:
        steps = ops.cast(ops.arange(steps), "float32")  # (time,)
    half = size // 2
    k = ops.cast(ops.arange(half), "float32")  # (half,)
    omega = math.pi * ops.exp(-math.log(5000.0) * k / max(half - 1, 1))  # (half,)
    angle = steps[..., None] * omega  # (..., half)
    return ops.concatenate([ops.sin(angle), ops.cos(angle)], axis=-1)  # (..., size)


def seen_lengths_ops(lengths: Tensor, future_fraction: float) -> Tensor:
    """target: composite. How many of each sequence's real steps the encoder sees in
    training: L - floor(f L), at least one (a length-0 sequence stays 0)."""
    future = ops.cast(ops.floor(future_fraction * ops.cast(lengths, "float32")), lengths.dtype)
    return ops.maximum(lengths - future, ops.minimum(lengths, 1))
