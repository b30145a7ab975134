"""The masked LSTM autoencoder.

    values (batch, time, features), lengths (batch,)
      -> mask from lengths                         (batch, time)
      -> [training: input dropout / noise]
      -> num_layers x LSTM(units), masked          (batch, time, units)
         [bidirectional: and over each sequence reversed by its own length]
      -> state at each sequence's last real step   (batch, units) per direction
         [pooling: and the mean / max over its real steps]
      -> Dense(latent_dim) = the latent vector     (batch, latent_dim)
      -> decoder (one of DECODERS)                 (batch, time, decoder_units)
         [decoder_positions: each step also reads sinusoids of its index]
      -> Dense(features), the reconstruction       (batch, time, features)

Layers have fixed names (`latent` above all) so `encoder_from` can cut the encoder out of a
loaded autoencoder: one saved file serves evaluate and encode.
"""

from collections.abc import Callable

import keras

from seqmask.config import Decoder, ModelConfig, Padding
from seqmask.model.fused_lstm import FusedLSTM
from seqmask.model.layers import (
    ClearPadding,
    CropByMask,
    LastStep,
    LengthMask,
    MaskedPooling,
    ReattachMask,
    RepeatToTime,
    ReverseByLength,
    SeenPrefix,
    StepPositions,
    TrainingNoise,
)

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
    step_positions: int = 0,
) -> keras.KerasTensor:
    """num_layers LSTMs. `mask` is given only where the recurrence itself must skip padded
    steps; elsewhere the fused kernel is exact (see fused_lstm.py) and faster.

    `lengths` (fused, post padding): the fused layers run each sequence's real steps only,
    output zero after them, and with `last_only` the last layer returns each sequence's
    output at its last real step (batch, units) instead of every step's.
    `repeat_of`: x is (batch, features), the input at every step of `repeat_of`
    (batch, time, ...); the fused kernel then projects it once instead of at every step.
    `input_gradient=False`: x is the model's input values, which need no gradient.
    `step_positions` (with `repeat_of`, fused, post padding): the first layer also reads
    the step-position features (layers.StepPositions), added by the kernel itself.
    """
    for i in range(num_layers):
        name = f"{prefix}_lstm_{i}"
        if fused and mask is None:
            repeat = i == 0 and repeat_of is not None
            inputs = [x, repeat_of] if repeat else [x]
            if lengths is not None:
                inputs.append(lengths)
            x = FusedLSTM(
                units,
                repeat_input=repeat,
                input_gradient=input_gradient or i > 0,
                use_lengths=lengths is not None,
                return_sequences=not (last_only and i == num_layers - 1),
                step_positions=step_positions if repeat else 0,
                name=name,
            )(inputs if len(inputs) > 1 else x)
        else:
            if i == 0 and repeat_of is not None:
                assert not step_positions, "step positions on Keras's LSTM are concatenated by the caller"
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
    step_positions: int = 0,
) -> keras.KerasTensor:
    units = model_cfg.decoder_units or model_cfg.units
    return _lstm_stack(
        x, units, model_cfg.num_layers, "decoder", mask, fused, lengths, repeat_of, step_positions=step_positions
    )


def _repeated(
    latent: keras.KerasTensor, values: keras.KerasTensor, lengths: keras.KerasTensor, size: int, padding: Padding
) -> keras.KerasTensor:
    """The latent vector at every step, with `size` step-position features after it (if
    any): (batch, time, latent_dim + size)."""
    x = RepeatToTime(name="repeat")([latent, values])  # (batch, time, latent_dim)
    if not size:
        return x
    positions = StepPositions(size, padding, name="decoder_positions")([values, lengths])  # (batch, time, size)
    return keras.layers.Concatenate(name="decoder_input")([x, positions])


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

    decoder_positions: with post padding the positions are the same for every row, and the
    fused kernel adds them itself (their projection is a per-step bias: fused_lstm.py);
    otherwise they are concatenated to the repeated latent (`_repeated`).
    """
    post_lengths = lengths if padding == "post" else None
    positions = model_cfg.decoder_positions
    if positions and not (fused and padding == "post"):
        x = _repeated(latent, values, lengths, positions, padding)
        return _decoder_lstms(x, model_cfg, fused=fused, lengths=post_lengths)
    return _decoder_lstms(
        latent, model_cfg, fused=fused, repeat_of=values, lengths=post_lengths, step_positions=positions
    )


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
    x = _repeated(latent, values, lengths, model_cfg.decoder_positions, padding)  # (batch, time, latent_dim [+ P])
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


def _named(prefix: str, what: str) -> str:
    """The forward direction's layers keep the names unidirectional models always had."""
    return what if prefix == "encoder" else f"backward_{what}"


_POOLS: dict[str, tuple[str, ...]] = {"none": (), "mean": ("mean",), "max": ("max",), "mean_max": ("mean", "max")}


def _encoder_lstm(
    x: keras.KerasTensor,
    lengths: keras.KerasTensor,
    step_mask: keras.KerasTensor,
    units: int,
    name: str,
    fast: bool,
    input_gradient: bool,
    return_sequences: bool,
) -> keras.KerasTensor:
    """One encoder LSTM: the fused kernel on the fast path (CPU, post padding; lengths
    instead of a mask), else Keras's masked LSTM, always returning every step."""
    if fast:
        layer = FusedLSTM(
            units, input_gradient=input_gradient, use_lengths=True, return_sequences=return_sequences, name=name
        )
        return layer([x, lengths])  # (batch, time, units), or (batch, units)
    return keras.layers.LSTM(units, return_sequences=True, name=name)(x, mask=step_mask)  # (batch, time, units)


def _last_layer_summary(
    outputs: dict[str, keras.KerasTensor],
    lengths: keras.KerasTensor,
    step_mask: keras.KerasTensor,
    pools: tuple[str, ...],
    padding: Padding,
    fast: bool,
) -> list[keras.KerasTensor]:
    """Each direction's state at its last real step, then (with pooling) its pooled outputs."""
    summary = []
    for prefix, h in outputs.items():
        last = h if fast and not pools else LastStep(padding, name=_named(prefix, "last_step"))([h, lengths])
        summary.append(last)  # (batch, units)
    for prefix, h in outputs.items() if pools else ():
        summary.append(MaskedPooling(pools, name=_named(prefix, "pooling"))([h, step_mask]))
    return summary


def _next_layer_inputs(
    outputs: dict[str, keras.KerasTensor],
    lengths: keras.KerasTensor,
    model_cfg: ModelConfig,
    padding: Padding,
    i: int,
    seed: int,
) -> dict[str, keras.KerasTensor]:
    """What each direction of layer i + 1 reads: with two directions, [forward, backward]
    at every step, each in its own order; then the dropout between layers."""
    if model_cfg.bidirectional:
        forward, backward = outputs["encoder"], outputs["encoder_backward"]
        both = keras.layers.Concatenate(name=f"encoder_both_{i}")(
            [forward, ReverseByLength(padding, name=f"reverse_backward_{i}")([backward, lengths])]
        )  # (batch, time, 2 units), each step's two directions side by side
        directions = {
            "encoder": both,
            "encoder_backward": ReverseByLength(padding, name=f"reverse_both_{i}")([both, lengths]),
        }
    else:
        directions = {"encoder": outputs["encoder"]}
    if model_cfg.dropout:
        directions = {
            prefix: TrainingNoise(model_cfg.dropout, seed=seed + 2 * i + j + 1, name=f"{prefix}_dropout_{i}")(h)
            for j, (prefix, h) in enumerate(directions.items())
        }
    return directions


def _encoder(
    x: keras.KerasTensor,
    lengths: keras.KerasTensor,
    step_mask: keras.KerasTensor,
    model_cfg: ModelConfig,
    padding: Padding,
    fast: bool,
    input_gradient: bool,
    seed: int,
) -> keras.KerasTensor:
    """(batch, time, features) -> what the latent Dense reads, (batch, k * units): each
    direction's state at the last real step, then its pooled outputs.

    The backward direction is a forward LSTM over the sequence reversed by its own length
    (`ReverseByLength`), so it starts at the last real step and runs the fused kernel too.
    Between bidirectional layers each direction reads [forward, backward] at every step, in
    its own order.
    """
    pools = _POOLS[model_cfg.pooling]
    directions = {"encoder": x}
    if model_cfg.bidirectional:
        directions["encoder_backward"] = ReverseByLength(padding, name="reverse_input")([x, lengths])
    summary: list[keras.KerasTensor] = []
    for i in range(model_cfg.num_layers):
        last_layer = i == model_cfg.num_layers - 1
        outputs = {
            prefix: _encoder_lstm(
                inputs,
                lengths,
                step_mask,
                model_cfg.units,
                f"{prefix}_lstm_{i}",
                fast,
                input_gradient=input_gradient or i > 0,
                return_sequences=not last_layer or bool(pools),
            )
            for prefix, inputs in directions.items()
        }  # each (batch, time, units); the fast path's last layer without pooling: (batch, units)
        if last_layer:
            summary += _last_layer_summary(outputs, lengths, step_mask, pools, padding, fast)
            break
        directions = _next_layer_inputs(outputs, lengths, model_cfg, padding, i, seed)
    if model_cfg.input_stats:
        summary.append(MaskedPooling(("mean", "std", "min", "max"), name="input_stats")([x, step_mask]))
    features = summary[0] if len(summary) == 1 else keras.layers.Concatenate(name="summary")(summary)
    if model_cfg.dropout:
        features = TrainingNoise(model_cfg.dropout, seed=seed + 1000, name="summary_dropout")(features)
    return features  # (batch, k * units)


def _encoder_input(
    values: keras.KerasTensor,
    step_mask: keras.KerasTensor,
    model_cfg: ModelConfig,
    vocab_size: int | None,
    embedding_dim: int,
    seed: int,
) -> keras.KerasTensor:
    """What the encoder reads: token ids embedded, the training-only input noise, and the
    padded steps set to exactly zero. (batch, time, features) -> (batch, time, features)."""
    x = values
    if vocab_size is not None:
        x = keras.layers.Reshape((-1,), name="token_ids")(x)  # (batch, time)
        x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(x)  # (batch, time, embedding_dim)
    if model_cfg.input_dropout or model_cfg.input_noise:
        # Before ClearPadding, so the padded steps are exactly zero again after it.
        x = TrainingNoise(model_cfg.input_dropout, model_cfg.input_noise, seed=seed, name="input_noise")(x)
    return ClearPadding(name="clear_padding")([x, step_mask])  # (batch, time, features)


def build_autoencoder(
    model_cfg: ModelConfig,
    num_features: int,
    padding: Padding = "post",
    fused: bool = False,
    vocab_size: int | None = None,
    embedding_dim: int = 32,
    seed: int = 0,
    future_fraction: float = 0.0,
) -> keras.Model:
    """The autoencoder: [values, lengths] -> reconstruction (batch, time, num_features).

    `fused=True` uses the one-op LSTM kernel (fused_lstm.py, the fast path on CPU) wherever
    the recurrence needs no mask: everywhere with post padding. Either way the loss, the
    gradients and the latent vectors are the same up to float rounding.

    Tokens (`vocab_size` given): values are token ids (batch, time, 1) int32, embedded
    before the encoder, and the output is one logit per vocabulary entry
    (batch, time, vocab_size); the loss applies the softmax (cross-entropy from logits).

    `seed` seeds the training-only noise layers (dropout, input noise), whose random state
    then lives in the saved weights.

    `future_fraction` > 0 (train.target: composite): in training the encoder sees only the
    first L - floor(f L) real steps of each sequence (`SeenPrefix`); the decoder still
    outputs all L, so it reconstructs what the encoder saw and predicts the rest.
    """
    if model_cfg.decoder not in DECODERS:
        raise ValueError(f"unknown decoder {model_cfg.decoder!r}; expected one of {sorted(DECODERS)}")
    tokens = vocab_size is not None
    values = keras.Input(
        (None, num_features), dtype="int32" if tokens else "float32", name="values"
    )  # (batch, time, features); tokens: (batch, time, 1) ids
    lengths = keras.Input((), dtype="int32", name="lengths")  # (batch,)
    step_mask = LengthMask(padding, name="mask")([values, lengths])  # (batch, time)

    x = _encoder_input(values, step_mask, model_cfg, vocab_size, embedding_dim, seed)  # (batch, time, features)
    # With post padding the state at t = L - 1 never saw a padded step: the fused kernel
    # needs no mask and returns it directly.
    fast = fused and padding == "post"
    seen_lengths, seen_mask = lengths, step_mask
    if future_fraction:
        x, seen_lengths = SeenPrefix(future_fraction, padding, name="seen_prefix")([x, lengths])
        seen_mask = LengthMask(padding, name="seen_mask")([values, seen_lengths])  # (batch, time)
    summary = _encoder(x, seen_lengths, seen_mask, model_cfg, padding, fast, input_gradient=tokens, seed=seed)
    latent = keras.layers.Dense(model_cfg.latent_dim, name=LATENT)(summary)  # (batch, latent_dim)

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
