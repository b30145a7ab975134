"""The small custom layers the autoencoder needs, all driven by explicit `lengths`.

Keras's own answer to variable lengths is `Masking`, which marks a step as padding when all
of its features equal a sentinel value. That silently drops real all-zero steps. Here the
mask is always computed from each sequence's true length, which travels beside the values
from the reader to the loss.

Padding side: with `padding="post"` the real steps of a sequence of length L sit at
t = 0 .. L-1; with `padding="pre"` they sit at t = T-L .. T-1 (T = the batch's time length).

Every layer uses `keras.ops` only, implements `get_config`, and is registered, so a saved
model loads with `safe_mode=True`.
"""

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from seqmask.config import Padding, check_choice

PACKAGE = "seqmask"

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


@keras.saving.register_keras_serializable(package=PACKAGE)
class LengthMask(keras.layers.Layer):
    """Builds the step mask from lengths: [values, lengths] -> (batch, time) bool."""

    def __init__(self, padding: Padding = "post", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = check_choice("padding", padding, Padding)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        values, lengths = inputs  # (batch, time, features), (batch,)
        return length_mask_ops(lengths, ops.shape(values)[1], self.padding)  # (batch, time)

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        values_shape, _ = input_shape
        return tuple(values_shape[:2])

    def compute_output_spec(self, inputs: Sequence[Any]) -> Any:
        values, _ = inputs
        return keras.KerasTensor(values.shape[:2], dtype="bool")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClearPadding(keras.layers.Layer):
    """Sets padded steps to zero and attaches the mask: [values, mask] -> values, masked.

    Whatever the reader or the user put in the padding (zeros, NaN, 1e30) never reaches a
    weight: no output, latent vector or gradient can depend on it.
    """

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        values, step_mask = inputs  # (batch, time, features), (batch, time)
        return ops.where(step_mask[:, :, None], values, ops.zeros_like(values))

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        _, step_mask = inputs
        return ops.cast(step_mask, "bool")  # (batch, time)

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class LastStep(keras.layers.Layer):
    """Gathers each sequence's last real step: [sequence, lengths] -> (batch, units).

    Not `sequence[:, -1]`: with post padding that is a padded step for every sequence
    shorter than the batch.
    """

    def __init__(self, padding: Padding = "post", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = check_choice("padding", padding, Padding)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        sequence, lengths = inputs  # (batch, time, units), (batch,)
        batch, time, units = ops.shape(sequence)[0], ops.shape(sequence)[1], ops.shape(sequence)[2]
        index = last_step_index_ops(lengths, time, self.padding)  # (batch,)
        # Row b * time + index[b] of the (batch * time, units) view: one gather, whose
        # gradient is a cheap scatter; take_along_axis was slower, forward + backward (see
        # BENCHMARKS.md, section "Where the time goes", measured and not taken).
        rows = ops.arange(batch, dtype="int32") * time + index  # (batch,)
        return ops.take(ops.reshape(sequence, (-1, units)), rows, axis=0)  # (batch, units)

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        return None  # one vector per sequence: nothing left to mask

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        sequence_shape, _ = input_shape
        return (sequence_shape[0], sequence_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RepeatToTime(keras.layers.Layer):
    """Repeats a vector over the time length of a reference batch: [vector, values] -> (batch, time, dim).

    `RepeatVector(n)` needs a fixed n; the batch's own length keeps bucketed batches cheap.
    Like `RepeatVector`, it returns no mask: `ReattachMask` restores one where wanted.
    """

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        vector, values = inputs  # (batch, dim), (batch, time, features)
        time_len = ops.shape(values)[1]
        return ops.repeat(vector[:, None, :], time_len, axis=1)  # (batch, time, dim)

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        return None

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        vector_shape, values_shape = input_shape
        return (vector_shape[0], values_shape[1], vector_shape[1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReattachMask(keras.layers.Layer):
    """Passes a tensor through and attaches the given mask: [x, mask] -> x, masked.

    The next RNN then skips the padded steps: at a masked step its state is carried over
    unchanged, so padding never advances the decoder.
    """

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        x, _ = inputs  # (batch, time, dim), (batch, time)
        return x

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        _, step_mask = inputs
        return ops.cast(step_mask, "bool")  # (batch, time)

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropByMask(keras.layers.Layer):
    """Multiplies by the step mask: [x, mask] -> x * mask, exactly zero at padded steps.

    d(x * m)/dx = m, so padded steps also pass back exactly zero gradient.
    """

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        x, step_mask = inputs  # (batch, time, dim), (batch, time)
        return x * ops.cast(step_mask, x.dtype)[:, :, None]  # (batch, time, dim)

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        return None  # padded steps are already zero; downstream needs no mask

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        return input_shape[0]
