"""An LSTM that runs the whole sequence in one op: seqmask's own kernel, or `BlockLSTMV2`.

Why: `keras.layers.LSTM` on CPU runs a graph-level while loop, several small ops per step.
A fused op runs the time loop in C++. seqmask's kernel (`kernels/lstm.cc`, loaded by
`native.py`) takes the input projection out of the loop, projects a decoder's repeated
input once instead of at every step (`repeat_input=True`) and runs one thread per slice
of the batch; where it cannot be built, TensorFlow's `BlockLSTMV2` runs instead, each
batch slice as its own op. bench/bench.py measures both against Keras and PyTorch.

Instead of a per-step mask it takes each sequence's length (`use_lengths=True`), which is
exact for seqmask's post-padded batches: an LSTM is causal, so the outputs at a
sequence's real steps (t < L) never depend on the padded steps after them. The kernel
runs only the real steps (output zero after them, where the loss looks at nothing), and
for the encoder returns each sequence's output at t = L - 1 directly
(`return_sequences=False`). The model builder uses this layer only where that argument
holds (post padding) and `keras.layers.LSTM`, which honours masks, elsewhere. Without
lengths (models saved before they were passed) every step runs.

The math, per step t (gate order i, f, c, o: BlockLSTMV2's, and Keras's):

    [i, f, c̃, o] = [x_t, h_{t-1}] · [kernel; recurrent_kernel] + bias
    c_t = σ(i) ⊙ tanh(c̃) + σ(f) ⊙ c_{t-1}
    h_t = σ(o) ⊙ tanh(c_t)

Initialization as Keras's LSTM: Glorot-uniform kernel, orthogonal recurrent kernel, zero
bias except 1 on the forget gate.
"""

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from seqmask.model import native
from seqmask.model.devices import cpu_shards
from seqmask.model.layers import PACKAGE
from seqmask.model.masks import Shape, Tensor, step_positions_ops


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedLSTM(keras.layers.Layer):
    """LSTM over a whole (batch, time, features) tensor; returns every step's output, or
    with `return_sequences=False` each sequence's output at its last real step.

    Inputs: x, then `reference` if `repeat_input`, then `lengths` if `use_lengths`.
    `repeat_input=True`: x is (batch, features), the input at every one of the steps of
    `reference` (batch, time, ...) (the `repeat` decoder).
    `use_lengths=True`: `lengths` (batch,) int32; each sequence runs its real steps
    t < L only (post padding) and outputs zero after them. `return_sequences=False` (needs
    lengths) returns each sequence's output at t = L - 1 alone: (batch, units).
    `input_gradient=False`: no gradient flows back to the input (zero is returned for it),
    which spares seqmask's kernel a matmul per step; only for a layer that reads the
    model's own input values, which nothing trains.
    `step_positions=P` (with `repeat_input`, post padding): at every step the input is
    [x, positions(t)], x repeated and `masks.step_positions_ops(time, P)` after it, the
    same for every row. The kernel holds weights for that whole input, as an LSTM reading
    it would; the positions' part of the projection, positions(t) W_p, depends on t alone,
    so it goes to seqmask's kernel as a per-step bias (`step_bias`) and x W_x is still
    computed once per sequence.
    """

    def __init__(
        self,
        units: int,
        repeat_input: bool = False,
        input_gradient: bool = True,
        use_lengths: bool = False,
        return_sequences: bool = True,
        step_positions: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if step_positions and not repeat_input:
            raise ValueError("step_positions needs repeat_input=True: positions are added to a repeated input")
        if not return_sequences and not use_lengths:
            raise ValueError(
                "return_sequences=False needs use_lengths=True: the last real step is found from the lengths"
            )
        self.units = units
        self.repeat_input = repeat_input
        self.input_gradient = input_gradient
        self.use_lengths = use_lengths
        self.return_sequences = return_sequences
        self.step_positions = step_positions
        self.supports_masking = True  # accepts a mask (and ignores it: see module docstring)

    def _unpack(self, inputs: Any) -> tuple[Any, Any, Any]:
        """(x, reference or None, lengths or None) from the layer's inputs."""
        # Any: it unpacks the inputs (tensors) and, for build and compute_output_shape, their shapes.
        if not (self.repeat_input or self.use_lengths):
            return inputs, None, None
        inputs = list(inputs)
        reference = inputs[1] if self.repeat_input else None
        lengths = inputs[-1] if self.use_lengths else None
        return inputs[0], reference, lengths

    def build(self, input_shape: Shape | Sequence[Shape]) -> None:
        input_dim, u = self._unpack(input_shape)[0][-1] + self.step_positions, self.units
        self.kernel = self.add_weight(shape=(input_dim, 4 * u), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(u, 4 * u), initializer="orthogonal", name="recurrent_kernel")

        def bias_init(shape: Shape, dtype: str | None = None) -> Tensor:
            # gates i, f, c̃, o: only the forget gate starts at 1, so early training remembers.
            return ops.concatenate([ops.zeros((u,)), ops.ones((u,)), ops.zeros((2 * u,))])

        self.bias = self.add_weight(shape=(4 * u,), initializer=bias_init, name="bias")

    def call(self, inputs: Tensor | Sequence[Tensor], mask: Any = None) -> Tensor:
        x, reference, lengths = self._unpack(inputs)
        if self.repeat_input:
            x = ops.cast(x, self.compute_dtype)[:, None, :]  # (batch, 1, features)
            time = tf.shape(reference)[1]
        else:
            x = ops.cast(x, self.compute_dtype)  # (batch, time, features)
            time = tf.shape(x)[1]
        if lengths is None:
            lengths = tf.fill(tf.shape(x)[:1], time)  # every step is real
        lengths = tf.cast(lengths, tf.int32)  # (batch,)
        kernels = native.load()
        kernel, bias, step_bias = self.kernel, self.bias, False
        if self.step_positions:
            positions = step_positions_ops(time, self.step_positions)  # (time, P)
        if kernels is not None:
            if self.step_positions:
                # [x, p_t] W = x W_x + p_t W_p: the second term is the same for every row.
                features = ops.shape(x)[-1]
                bias = bias[None, :] + ops.matmul(positions, kernel[features:])  # (time, 4 units)
                kernel, step_bias = kernel[:features], True
            return _native_lstm(
                kernels,
                x,
                kernel,
                self.recurrent_kernel,
                bias,
                lengths,
                time,
                self.input_gradient,
                last_only=not self.return_sequences,
                step_bias=step_bias,
            )
        if self.repeat_input:
            x = tf.broadcast_to(x, tf.stack([tf.shape(x)[0], time, tf.shape(x)[2]]))
        if self.step_positions:
            batch_positions = tf.broadcast_to(positions[None], tf.stack([tf.shape(x)[0], time, self.step_positions]))
            x = tf.concat([x, batch_positions], axis=-1)  # (batch, time, features + P)
        h = _sharded_block_lstm(x, kernel, self.recurrent_kernel, bias)  # (batch, time, units)
        if not self.use_lengths:
            return h
        if not self.return_sequences:  # the output at t = L - 1; zero for L = 0, as the kernel
            last = tf.gather(h, tf.maximum(lengths - 1, 0), axis=1, batch_dims=1)  # (batch, units)
            return last * tf.cast(lengths > 0, h.dtype)[:, None]
        # Zero after each sequence's end, as the kernel (which does not compute those steps).
        return h * tf.cast(tf.sequence_mask(lengths, time), h.dtype)[:, :, None]

    def compute_mask(self, inputs: Tensor | Sequence[Tensor], mask: Any = None) -> Tensor | None:
        if self.repeat_input or not self.return_sequences:
            return None
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape: Shape | Sequence[Shape]) -> Shape:
        x_shape, reference_shape, _ = self._unpack(input_shape)
        if not self.return_sequences:
            return (x_shape[0], self.units)
        if self.repeat_input:
            return (*reference_shape[:2], self.units)
        return (*x_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "repeat_input": self.repeat_input,
            "input_gradient": self.input_gradient,
            "use_lengths": self.use_lengths,
            "return_sequences": self.return_sequences,
            "step_positions": self.step_positions,
        }


def _native_lstm(
    kernels: ModuleType,
    x: tf.Tensor,
    kernel: keras.Variable,
    recurrent_kernel: keras.Variable,
    bias: keras.Variable,
    lengths: tf.Tensor,
    time: tf.Tensor,
    input_gradient: bool = True,
    last_only: bool = False,
    step_bias: bool = False,
) -> tf.Tensor:
    """seqmask's kernel: x (batch, 1 or time, features) -> h (batch, time, units), or
    (batch, units) with `last_only`. `step_bias`: `bias` is (time, 4 units)."""
    shards = cpu_shards()

    @tf.custom_gradient
    def lstm(
        x: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor, bias: tf.Tensor
    ) -> tuple[tf.Tensor, Callable[[tf.Tensor], Any]]:
        h, c, gates, kept = kernels.seqmask_lstm(
            x, kernel, recurrent_kernel, bias, lengths, time, shards=shards, last_only=last_only, step_bias=step_bias
        )

        def grad(dh: tf.Tensor) -> Any:
            return kernels.seqmask_lstm_grad(
                x,
                kernel,
                recurrent_kernel,
                lengths,
                c,
                gates,
                kept,
                dh,
                shards=shards,
                last_only=last_only,
                input_gradient=input_gradient,
                step_bias=step_bias,
            )  # dx, dkernel, drecurrent_kernel, dbias

        return h, grad

    return lstm(x, tf.identity(kernel), tf.identity(recurrent_kernel), tf.identity(bias))


def _sharded_block_lstm(
    x: tf.Tensor, kernel: keras.Variable, recurrent_kernel: keras.Variable, bias: keras.Variable
) -> tf.Tensor:
    """TensorFlow's BlockLSTMV2: x (batch, time, features) -> h (batch, time, units)."""
    w = tf.concat([kernel, recurrent_kernel], axis=0)  # (features + units, 4 units)
    b = tf.identity(bias)  # a tensor: custom_gradient handles variables separately
    time_major = tf.transpose(x, [1, 0, 2])  # (time, batch, features)
    shards = cpu_shards()
    if shards > 1:
        # Independent slices of the batch, one op each: TensorFlow's inter-op threads
        # run them on separate cores, which beats splitting each small matmul
        # (BENCHMARKS.md, bench/profile_step.py --threads/--shards). Never an empty slice: the gradient
        # op returns garbage weights' gradients for a batch of 0.
        batch = tf.shape(x)[0]

        def sharded() -> tf.Tensor:
            parts = tf.split(time_major, _split_sizes(batch, shards), axis=1)
            return tf.concat([_block_lstm(part, w, b) for part in parts], axis=1)

        h = tf.cond(batch >= shards, sharded, lambda: _block_lstm(time_major, w, b))
    else:
        h = _block_lstm(time_major, w, b)  # (time, batch, units)
    return tf.transpose(h, [1, 0, 2])  # (batch, time, units)


def _split_sizes(batch: tf.Tensor, shards: int) -> tf.Tensor:
    """Sizes of `shards` slices of a batch, as equal as possible: (shards,) int32."""
    base = batch // shards
    return tf.concat([tf.fill([shards - 1], base), [batch - base * (shards - 1)]], axis=0)


@tf.custom_gradient
def _block_lstm(
    x: tf.Tensor, w: tf.Tensor, b: tf.Tensor
) -> tuple[tf.Tensor, Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]]:
    """h of every step for time-major x (time, batch, features), zero initial state.

    The gradient is given here because TensorFlow registers BlockLSTMV2's gradient as the
    V1 op's, which assumes V1's gate order (i, c, f, o) and so is wrong for V2's (i, f, c, o);
    BlockLSTMGradV2 is the matching op.
    """
    units = tf.shape(b)[0] // 4
    zeros = tf.zeros(tf.stack([tf.shape(x)[1], units]), x.dtype)  # (batch, units)
    peephole = tf.zeros(tf.reshape(units, [1]), x.dtype)  # unused: use_peephole=False
    common = dict(
        seq_len_max=tf.cast(tf.shape(x)[0], tf.int64),
        x=x,
        cs_prev=zeros,
        h_prev=zeros,
        w=w,
        wci=peephole,
        wcf=peephole,
        wco=peephole,
        b=b,
    )
    i, cs, f, o, ci, co, h = tf.raw_ops.BlockLSTMV2(
        **common,
        cell_clip=-1.0,
        use_peephole=False,  # negative cell_clip: no clipping
    )

    def grad(h_grad: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        grads = tf.raw_ops.BlockLSTMGradV2(
            **common,
            i=i,
            cs=cs,
            f=f,
            o=o,
            ci=ci,
            co=co,
            h=h,
            cs_grad=tf.zeros_like(cs),
            h_grad=h_grad,
            use_peephole=False,
        )
        return grads.x_grad, grads.w_grad, grads.b_grad

    return h, grad
