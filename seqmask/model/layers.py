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
from seqmask.model.masks import (
    Shape,
    Tensor,
    last_step_index_ops,
    length_mask_ops,
    reverse_by_length_ops,
    seen_lengths_ops,
    step_positions_ops,
)

PACKAGE = "seqmask"


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


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReverseByLength(keras.layers.Layer):
    """Reverses each sequence's real steps: [x, lengths] -> x reversed, masked as x was.

    The backward direction of a bidirectional encoder: an LSTM run forward over the
    reversed sequence starts at the sequence's own last real step, never in the padding,
    and its state at the last real step has seen the whole sequence back to step 0.
    Applied twice it is the identity, so it also puts backward outputs back in order.
    """

    def __init__(self, padding: Padding = "post", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = check_choice("padding", padding, Padding)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        x, lengths = inputs  # (batch, time, dim), (batch,)
        return reverse_by_length_ops(x, lengths, self.padding)  # (batch, time, dim)

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        # The real steps are the same set of positions, reversed among themselves.
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedPooling(keras.layers.Layer):
    """Statistics over each sequence's real steps: [sequence, mask] -> (batch, k * units).

        mean = Σ_t m[t] h[t] / Σ_t m[t]              max = max over {t : m[t]} of h[t]
        std  = sqrt(Σ_t m[t] (h[t] - mean)² / Σ_t m[t] + 1e-6)    min = -max of -h

    The mask, not the values, decides: Keras's masked LSTM carries its last output over
    the padded steps, and the fused kernel writes zeros there; neither reaches the pool.
    `modes` is a non-empty subset of POOL_MODES, concatenated in the order given. The 1e-6
    keeps the gradient of std finite for a constant (or length-1) sequence.
    """

    POOL_MODES = ("mean", "std", "min", "max")

    def __init__(self, modes: Sequence[str] = ("mean",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not modes or any(m not in self.POOL_MODES for m in modes):
            raise ValueError(f"modes must be a non-empty subset of {self.POOL_MODES}, got {modes!r}")
        self.modes = tuple(modes)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        sequence, step_mask = inputs  # (batch, time, units), (batch, time)
        real = ops.cast(step_mask, "bool")[:, :, None]  # (batch, time, 1)
        count = ops.maximum(ops.sum(ops.cast(real, sequence.dtype), axis=1), 1.0)  # (batch, 1)
        mean = ops.sum(ops.where(real, sequence, 0.0), axis=1) / count  # (batch, units)
        lowest = ops.full_like(sequence, -3.0e38)  # below any value a real step holds
        stats = {
            "mean": lambda: mean,
            "std": lambda: ops.sqrt(
                ops.sum(ops.where(real, ops.square(sequence - mean[:, None, :]), 0.0), axis=1) / count + 1e-6
            ),
            "min": lambda: -ops.max(ops.where(real, -sequence, lowest), axis=1),
            "max": lambda: ops.max(ops.where(real, sequence, lowest), axis=1),
        }
        pooled = [stats[mode]() for mode in self.modes]  # each (batch, units)
        return pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        return None  # one vector per sequence: nothing left to mask

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        sequence_shape, _ = input_shape
        units = sequence_shape[2]
        return (sequence_shape[0], None if units is None else units * len(self.modes))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "modes": list(self.modes)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TrainingNoise(keras.layers.Layer):
    """Dropout and/or additive Gaussian noise, in training only: x -> x (mask kept).

        training:  x * keep / (1 - rate) + stddev * N(0, 1),   keep ~ Bernoulli(1 - rate)
        otherwise: x

    so evaluate, encode and detect see the model without it and stay deterministic. Its
    random state (a SeedGenerator, seeded from `seed`) is saved with the layer's weights
    (Keras saves no seed state of its own), so a run resumed from a checkpoint draws the
    same noise as one never interrupted.
    """

    def __init__(self, rate: float = 0.0, stddev: float = 0.0, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0 or stddev < 0.0:
            raise ValueError(f"need 0 <= rate < 1 and stddev >= 0, got rate={rate!r}, stddev={stddev!r}")
        self.rate, self.stddev, self.seed = float(rate), float(stddev), int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True

    def call(self, x: Tensor, training: bool | None = None) -> Tensor:
        if not training:
            return x
        if self.rate > 0.0:
            x = keras.random.dropout(x, self.rate, seed=self.seed_generator)
        if self.stddev > 0.0:
            x = x + keras.random.normal(ops.shape(x), stddev=self.stddev, dtype=x.dtype, seed=self.seed_generator)
        return x

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def save_own_variables(self, store: Any) -> None:
        store["seed_state"] = self.seed_generator.state

    def load_own_variables(self, store: Any) -> None:
        self.seed_generator.state.assign(store["seed_state"])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class StepPositions(keras.layers.Layer):
    """Sinusoids of each step's index for the decoder: [values, lengths] -> (batch, time, size).

    The index t counts from the sequence's own first real step, so padding (how much, and
    on which side) moves nothing. For k = 0 .. size/2 - 1, with ω_k = π · 5000^(-k / (size/2 - 1)):

        position[t] = [sin(ω_0 t), ..., sin(ω_{size/2-1} t), cos(ω_0 t), ..., cos(ω_{size/2-1} t)]

    periods 2 steps (ω = π: cos is (-1)^t, a signal that alternates every step) to 10 000
    steps. Zero at padded steps.
    """

    def __init__(self, size: int, padding: Padding = "post", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if size < 2 or size % 2:
            raise ValueError(f"size must be an even number >= 2, got {size}")
        self.size = size
        self.padding = check_choice("padding", padding, Padding)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        values, lengths = inputs  # (batch, time, features), (batch,)
        time_len = ops.shape(values)[1]
        real = length_mask_ops(lengths, time_len, self.padding)  # (batch, time)
        t = ops.cast(ops.arange(time_len), "float32")[None, :]  # (1, time)
        if self.padding == "pre":  # the first real step is at time_len - L
            t = t - ops.cast(time_len - lengths, "float32")[:, None]  # (batch, time)
        positions = step_positions_ops(t, self.size)  # (batch or 1, time, size)
        return ops.where(real[:, :, None], positions, 0.0)  # (batch, time, size)

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> Tensor | None:
        return None

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        values_shape, _ = input_shape
        return (values_shape[0], values_shape[1], self.size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size, "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SeenPrefix(keras.layers.Layer):
    """target: composite. [x, lengths] -> [x', seen]: in training, each sequence cut to its
    first `seen` real steps (seen_lengths_ops), still padded on the same side; the steps
    after them become padding (zero), so the encoder cannot see the future the decoder is
    asked to predict. Outside training: [x, lengths] unchanged.

    Post padding: the first steps stay where they are. Pre padding: they move right by
    L - seen steps, so they end at the last step, as pre-padded steps do.
    """

    def __init__(self, future_fraction: float, padding: Padding = "post", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < future_fraction < 1.0:
            raise ValueError(f"future_fraction must be in (0, 1), got {future_fraction}")
        self.future_fraction = future_fraction
        self.padding = check_choice("padding", padding, Padding)

    def call(self, inputs: Sequence[Tensor], training: bool = False) -> list[Tensor]:
        x, lengths = inputs  # (batch, time, features), (batch,)
        if not training:
            return [x, lengths]
        seen = seen_lengths_ops(lengths, self.future_fraction)  # (batch,)
        time_len = ops.shape(x)[1]
        if self.padding == "pre":
            t = ops.arange(time_len)[None, :]  # (1, time)
            source = ops.clip(t - (lengths - seen)[:, None], 0, time_len - 1)  # (batch, time)
            x = ops.take_along_axis(x, ops.cast(source, "int32")[:, :, None], axis=1)
        keep = length_mask_ops(seen, time_len, self.padding)  # (batch, time)
        return [ops.where(keep[:, :, None], x, ops.zeros_like(x)), seen]

    def compute_mask(self, inputs: Sequence[Tensor], mask: Any = None) -> list[None]:
        return [None, None]

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> list[Shape]:
        return [tuple(input_shape[0]), tuple(input_shape[1])]

    def compute_output_spec(self, inputs: Sequence[Any], training: bool = False) -> list[Any]:
        x, lengths = inputs
        return [keras.KerasTensor(x.shape, dtype=x.dtype), keras.KerasTensor(lengths.shape, dtype=lengths.dtype)]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "future_fraction": self.future_fraction, "padding": self.padding}
