"""The masked LSTM autoencoder.

    values (batch, time, features), lengths (batch,)
      -> mask from lengths                         (batch, time)
      -> num_layers x LSTM(units), masked          (batch, time, units)
      -> state at each sequence's last real step   (batch, units)
      -> Dense(latent_dim) = the latent vector     (batch, latent_dim)
      -> decoder (one of DECODERS)                 (batch, time, decoder_units)
      -> Dense(features), the reconstruction       (batch, time, features)

Layers have fixed names (`latent` above all) so `encoder_from` can cut the encoder out of a
loaded autoencoder: one saved file serves evaluate and encode.
"""

from collections.abc import Callable

import keras

from seqmask.config import Decoder, ModelConfig, Padding
from seqmask.fused_lstm import FusedLSTM
from seqmask.layers import ClearPadding, CropByMask, LastStep, LengthMask, ReattachMask, RepeatToTime

LATENT = "latent"


def _lstm_stack(
    x: keras.KerasTensor,
    units: int,
    num_layers: int,
    prefix: str,
    mask: keras.KerasTensor | None,
    fused: bool,
    lengths: keras.KerasTensor | None = None,
    repeat_of: keras.KerasTensor | None = None,
    input_gradient: bool = True,
    last_only: bool = False,
) -> keras.KerasTensor:
    """num_layers LSTMs. `mask` is given only where the recurrence itself must skip padded
    steps; elsewhere the fused kernel is exact (see fused_lstm.py) and faster.

    `lengths` (fused, post padding): the fused layers run each sequence's real steps only,
    output zero after them, and with `last_only` the last layer returns each sequence's
    output at its last real step (batch, units) instead of every step's.
    `repeat_of`: x is (batch, features), the input at every step of `repeat_of`
    (batch, time, ...); the fused kernel then projects it once instead of at every step.
    `input_gradient=False`: x is the model's input values, which need no gradient.
    """
    for i in range(num_layers):
        name = f"{prefix}_lstm_{i}"
        if fused and mask is None:
            repeat = i == 0 and repeat_of is not None
            inputs = [x, repeat_of] if repeat else [x]
            if lengths is not None:
                inputs.append(lengths)
            x = FusedLSTM(
                units, repeat_input=repeat, input_gradient=input_gradient or i > 0,
                use_lengths=lengths is not None,
                return_sequences=not (last_only and i == num_layers - 1), name=name,
            )(inputs if len(inputs) > 1 else x)
        else:
            if i == 0 and repeat_of is not None:
                x = RepeatToTime(name="repeat")([x, repeat_of])  # (batch, time, latent_dim)
            x = keras.layers.LSTM(units, return_sequences=True, name=name)(x, mask=mask)
    return x  # (batch, time, units); last_only: (batch, units)


def _decoder_lstms(
    x: keras.KerasTensor,
    model_cfg: ModelConfig,
    mask: keras.KerasTensor | None = None,
    fused: bool = False,
    repeat_of: keras.KerasTensor | None = None,
    lengths: keras.KerasTensor | None = None,
) -> keras.KerasTensor:
    units = model_cfg.decoder_units or model_cfg.units
    return _lstm_stack(x, units, model_cfg.num_layers, "decoder", mask, fused, lengths, repeat_of)


def _repeat(
    latent: keras.KerasTensor,
    values: keras.KerasTensor,
    lengths: keras.KerasTensor,
    step_mask: keras.KerasTensor,
    model_cfg: ModelConfig,
    padding: Padding,
    fused: bool,
) -> keras.KerasTensor:
    """The latent vector at every step.

    With post padding the padded steps come after the real ones, so they cannot change a
    real step's output (an LSTM is causal) and the loss ignores them: Keras's LSTM runs
    them anyway, the fused kernel skips them. With pre padding they come first and the
    decoder runs through them (`remask` is the decoder that skips them).
    """
    lengths = lengths if padding == "post" else None
    return _decoder_lstms(latent, model_cfg, fused=fused, repeat_of=values, lengths=lengths)


def _remask(
    latent: keras.KerasTensor,
    values: keras.KerasTensor,
    lengths: keras.KerasTensor,
    step_mask: keras.KerasTensor,
    model_cfg: ModelConfig,
    padding: Padding,
    fused: bool,
) -> keras.KerasTensor:
    """As repeat, with the input mask put back, so the decoder skips padded steps.

    `RepeatToTime` (like `RepeatVector`) drops the mask; `ReattachMask` restores it. This
    is the decoder that stays exact with pre padding, where the padded steps come first.
    With post padding they come last, skipping them changes no real step's output, and the
    fused kernel runs it as `repeat` (which skips them there too).
    """
    if fused and padding == "post":
        return _repeat(latent, values, lengths, step_mask, model_cfg, padding, fused)
    x = RepeatToTime(name="repeat")([latent, values])  # (batch, time, latent_dim)
    x = ReattachMask(name="remask")([x, step_mask])
    return _decoder_lstms(x, model_cfg, mask=step_mask, fused=fused)


def _crop(
    latent: keras.KerasTensor,
    values: keras.KerasTensor,
    lengths: keras.KerasTensor,
    step_mask: keras.KerasTensor,
    model_cfg: ModelConfig,
    padding: Padding,
    fused: bool,
) -> keras.KerasTensor:
    """As repeat; the caller multiplies the output by the mask (zero output and gradient)."""
    return _repeat(latent, values, lengths, step_mask, model_cfg, padding, fused)


# (latent, values, lengths, step_mask, model_cfg, padding, fused) -> the decoder's output.
DecoderFn = Callable[
    [keras.KerasTensor, keras.KerasTensor, keras.KerasTensor, keras.KerasTensor, ModelConfig, Padding, bool],
    keras.KerasTensor,
]
DECODERS: dict[Decoder, DecoderFn] = {"repeat": _repeat, "remask": _remask, "crop": _crop}


def build_autoencoder(
    model_cfg: ModelConfig,
    num_features: int,
    padding: Padding = "post",
    fused: bool = False,
    vocab_size: int | None = None,
    embedding_dim: int = 32,
) -> keras.Model:
    """The autoencoder: [values, lengths] -> reconstruction (batch, time, num_features).

    `fused=True` uses the one-op LSTM kernel (fused_lstm.py, the fast path on CPU) wherever
    the recurrence needs no mask: everywhere with post padding. Either way the loss, the
    gradients and the latent vectors are the same up to float rounding.

    Tokens (`vocab_size` given): values are token ids (batch, time, 1) int32, embedded
    before the encoder, and the output is one logit per vocabulary entry
    (batch, time, vocab_size); the loss applies the softmax (cross-entropy from logits).
    """
    if model_cfg.decoder not in DECODERS:
        raise ValueError(f"unknown decoder {model_cfg.decoder!r}; expected one of {sorted(DECODERS)}")
    tokens = vocab_size is not None
    values = keras.Input(
        (None, num_features), dtype="int32" if tokens else "float32", name="values"
    )  # (batch, time, features); tokens: (batch, time, 1) ids
    lengths = keras.Input((), dtype="int32", name="lengths")  # (batch,)
    step_mask = LengthMask(padding, name="mask")([values, lengths])  # (batch, time)

    x = values
    if tokens:
        x = keras.layers.Reshape((-1,), name="token_ids")(x)  # (batch, time)
        x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(x)  # (batch, time, embedding_dim)
    x = ClearPadding(name="clear_padding")([x, step_mask])  # (batch, time, features)
    if fused and padding == "post":
        # The state at t = L - 1 never saw a padded step: no mask needed, and the kernel
        # returns it directly.
        last = _lstm_stack(
            x, model_cfg.units, model_cfg.num_layers, "encoder", None, True, lengths,
            input_gradient=tokens, last_only=True,  # the embedding trains; the values do not
        )  # (batch, units)
    else:
        x = _lstm_stack(x, model_cfg.units, model_cfg.num_layers, "encoder", step_mask, False)
        last = LastStep(padding, name="last_step")([x, lengths])  # (batch, units)
    latent = keras.layers.Dense(model_cfg.latent_dim, name=LATENT)(last)  # (batch, latent_dim)

    decoded = DECODERS[model_cfg.decoder](latent, values, lengths, step_mask, model_cfg, padding, fused)
    # Dense on the 3-D tensor is the per-step map; unlike TimeDistributed it works with an
    # unknown time length inside a compiled graph and keeps the mask.
    output_size = vocab_size if tokens else num_features
    output = keras.layers.Dense(output_size, name="output")(decoded)  # (batch, time, features or vocab)
    if model_cfg.decoder == "crop":
        output = CropByMask(name="crop")([output, step_mask])
    return keras.Model([values, lengths], output, name="autoencoder")


def encoder_from(autoencoder: keras.Model) -> keras.Model:
    """The encoder half of a (built or loaded) autoencoder: [values, lengths] -> latent."""
    return keras.Model(autoencoder.inputs, autoencoder.get_layer(LATENT).output, name="encoder")
