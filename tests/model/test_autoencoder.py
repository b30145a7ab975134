"""The model's padding and masking invariants, and its save/load round trip."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import make_sequences, tiny_model_cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqmask.config import Decoder, Padding, choices_of
from seqmask.data import last_step_index_np, length_mask_np, pad, reverse_by_length_np
from seqmask.model.autoencoder import DECODERS, build_autoencoder, encoder_from
from seqmask.model.layers import MaskedPooling, SeenPrefix, StepPositions, TrainingNoise
from seqmask.model.losses import loss_terms
from seqmask.model.masks import last_step_index_ops, length_mask_ops, reverse_by_length_ops, seen_lengths_ops

# Every decoder is padding-invariant with post padding; with pre padding only remask is
# (repeat and crop would run the decoder over the leading padded steps: the config refuses them).
# The third element: the fused (mask-free) LSTM kernel, or Keras's masked LSTM.
# The fourth: the encoder's options (ENCODERS), the plain encoder or the bidirectional one
# with pooled outputs, which keeps every guarantee on both LSTM paths and both paddings.
ENCODERS: dict[str, dict[str, object]] = {
    "plain": {},
    "bidirectional": {"bidirectional": True},
    "bidirectional_pooled": {"bidirectional": True, "pooling": "mean_max"},
    "everything": {"bidirectional": True, "pooling": "mean", "input_stats": True},
    # The decoder without step positions: the fused kernel's repeated-input path.
    "no_positions": {"decoder_positions": 0},
}
VALID = [(decoder, "post", fused, "plain") for decoder in ("repeat", "remask", "crop") for fused in (False, True)]
VALID += [("remask", "pre", False, "plain"), ("remask", "pre", True, "plain")]
VALID += [("repeat", "post", fused, "bidirectional_pooled") for fused in (False, True)]
VALID += [("crop", "post", True, "bidirectional"), ("remask", "pre", True, "bidirectional_pooled")]
VALID += [("repeat", "post", True, "everything"), ("remask", "pre", False, "everything")]
VALID += [("repeat", "post", True, "no_positions"), ("remask", "pre", False, "no_positions")]

Combo = tuple[Decoder, Padding, bool, str]
Models = dict[Combo, tuple[keras.Model, keras.Model]]  # (autoencoder, its encoder)


@pytest.fixture(scope="module")
def models() -> Models:
    out: Models = {}
    for decoder, padding, fused, encoder in VALID:
        keras.utils.set_random_seed(0)
        cfg = tiny_model_cfg(decoder, num_layers=2, **ENCODERS[encoder])
        model = build_autoencoder(cfg, 2, padding, fused=fused)
        out[decoder, padding, fused, encoder] = (model, encoder_from(model))
    return out


# Decoder, encoder: the fast path's combos against Keras's LSTM.
FUSED_COMBOS = [(decoder, "plain") for decoder in ("repeat", "remask", "crop")]
FUSED_COMBOS += [("repeat", "bidirectional"), ("crop", "bidirectional_pooled"), ("repeat", "everything")]
FUSED_COMBOS += [("repeat", "no_positions"), ("crop", "no_positions")]

# (decoder, encoder) -> (weights, (loss sums, gradients, latent)) of the Keras-LSTM model.
KerasReference = dict[tuple[str, str], tuple[list[np.ndarray], tuple[np.ndarray, list[np.ndarray], np.ndarray]]]


@pytest.fixture(scope="module")
def fused_inputs() -> tuple[np.ndarray, np.ndarray]:
    seqs = make_sequences([3, 7, 1, 5], seed=2)
    return pad(seqs, np.arange(4), 8, "post"), seqs.lengths.astype(np.int32)


@pytest.fixture(scope="module")
def keras_reference(fused_inputs: tuple[np.ndarray, np.ndarray]) -> KerasReference:
    """Per combo: the Keras-LSTM model's weights, loss sums, gradients and latent, computed
    once for the kernels and slicings the test compares with it."""
    values, lengths = fused_inputs
    out: KerasReference = {}
    for decoder, encoder in FUSED_COMBOS:
        keras.utils.set_random_seed(0)
        cfg = tiny_model_cfg(decoder, num_layers=2, **ENCODERS[encoder])
        slow = build_autoencoder(cfg, 2, "post", fused=False)
        out[decoder, encoder] = (
            slow.get_weights(),
            _loss_grads_latent(slow, encoder_from(slow), values, lengths, "post"),
        )
    return out


@pytest.mark.parametrize("kernel", ["seqmask", "BlockLSTM"])
@pytest.mark.parametrize("shards", [1, 2, 5])
def test_fused_and_keras_lstm_agree(
    shards: int,
    kernel: str,
    monkeypatch: pytest.MonkeyPatch,
    keras_reference: KerasReference,
    fused_inputs: tuple[np.ndarray, np.ndarray],
) -> None:
    """Same weights, same loss and gradients: the fast path, with seqmask's kernel or the
    BlockLSTM fallback, with the batch cut into `shards` parallel slices (5 slices of a
    batch of 4 leave some empty), changes speed, not results."""
    from seqmask.model import devices, native

    monkeypatch.setattr(devices, "_cpu_shards", shards)
    if kernel == "BlockLSTM":
        monkeypatch.setattr(native, "_module", None)
        monkeypatch.setattr(native, "_error", "forced by the test")
    values, lengths = fused_inputs
    for decoder, encoder in FUSED_COMBOS:
        weights, (s_slow, g_slow, z_slow) = keras_reference[decoder, encoder]
        keras.utils.set_random_seed(0)
        cfg = tiny_model_cfg(decoder, num_layers=2, **ENCODERS[encoder])
        fast = build_autoencoder(cfg, 2, "post", fused=True)
        fast.set_weights(weights)
        s_fast, g_fast, z_fast = _loss_grads_latent(fast, encoder_from(fast), values, lengths, "post")
        np.testing.assert_allclose(s_fast, s_slow, rtol=1e-5)
        # TensorFlow's registered BlockLSTMV2 gradient is wrong (fused_lstm.py): guard ours.
        for a, b in zip(g_fast, g_slow, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(z_fast, z_slow, rtol=1e-5, atol=1e-6)


def test_there_is_a_decoder_for_each_config_choice() -> None:
    assert list(DECODERS) == list(choices_of(Decoder))


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_ops_forms_match_their_numpy_twins(padding: Padding) -> None:
    lengths = np.array([1, 5, 3, 6, 6], np.int32)
    x = np.random.default_rng(0).normal(size=(5, 9, 2)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(reverse_by_length_ops(x, lengths, padding)), reverse_by_length_np(x, lengths, padding)
    )
    for time_len in (6, 9):
        np.testing.assert_array_equal(
            np.asarray(length_mask_ops(lengths, time_len, padding)), length_mask_np(lengths, time_len, padding)
        )
        np.testing.assert_array_equal(
            np.asarray(last_step_index_ops(lengths, time_len, padding)), last_step_index_np(lengths, time_len, padding)
        )


def _loss_grads_latent(
    model: keras.Model, encoder: keras.Model, values: np.ndarray, lengths: np.ndarray, padding: Padding
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Per-sequence loss sums, the gradient of the mean loss, and the latent vectors."""
    with tf.GradientTape() as tape:
        preds = model([values, lengths], training=True)
        s, c, _ = loss_terms(
            values, lengths, preds, loss="per_step", error="mse", target="reconstruct", padding=padding
        )
        loss = tf.reduce_sum(s) / tf.reduce_sum(c)
    grads = tape.gradient(loss, model.trainable_variables)
    return s.numpy(), [g.numpy() for g in grads], encoder([values, lengths]).numpy()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    combo=st.sampled_from(VALID),
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    extra=st.integers(1, 5),
    pad_value=st.sampled_from([0.0, -3.0, 1e30, np.nan, np.inf]),
)
def test_pad_value_and_padded_length_change_nothing(
    models: Models, combo: Combo, lengths: list[int], extra: int, pad_value: float
) -> None:
    model, encoder = models[combo]
    padding = combo[1]
    seqs = make_sequences(lengths, seed=len(lengths))  # the same real steps, padded two ways
    idx = np.arange(len(seqs))
    lengths = seqs.lengths.astype(np.int32)
    base = _loss_grads_latent(model, encoder, pad(seqs, idx, max(lengths), padding), lengths, padding)
    other = _loss_grads_latent(
        model, encoder, pad(seqs, idx, max(lengths) + extra, padding, pad_value), lengths, padding
    )
    np.testing.assert_allclose(other[0], base[0], rtol=1e-5, atol=1e-6)  # per-sequence loss
    for g_other, g_base in zip(other[1], base[1], strict=True):
        np.testing.assert_allclose(g_other, g_base, rtol=1e-4, atol=1e-6)  # every gradient
    np.testing.assert_allclose(other[2], base[2], rtol=1e-5, atol=1e-6)  # latent vectors


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(combo=st.sampled_from(VALID), neighbours=st.lists(st.integers(1, 9), min_size=1, max_size=5))
def test_neighbours_change_nothing(models: Models, combo: Combo, neighbours: list[int]) -> None:
    model, encoder = models[combo]
    padding = combo[1]
    seqs = make_sequences([4] + neighbours, seed=sum(neighbours))
    alone = pad(seqs, [0], 4, padding)
    crowd = pad(seqs, np.arange(len(seqs)), int(seqs.lengths.max()), padding)
    lengths = seqs.lengths.astype(np.int32)
    z_alone = encoder([alone, lengths[:1]]).numpy()[0]
    z_crowd = encoder([crowd, lengths]).numpy()[0]
    np.testing.assert_allclose(z_crowd, z_alone, rtol=1e-5, atol=1e-6)
    s_alone, _, _ = loss_terms(
        alone,
        lengths[:1],
        model([alone, lengths[:1]]),
        loss="per_step",
        error="mse",
        target="reconstruct",
        padding=padding,
    )
    s_crowd, _, _ = loss_terms(
        crowd, lengths, model([crowd, lengths]), loss="per_step", error="mse", target="reconstruct", padding=padding
    )
    np.testing.assert_allclose(s_crowd.numpy()[0], s_alone.numpy()[0], rtol=1e-5)


def test_real_all_zero_steps_are_data() -> None:
    """An all-zero real step changes the latent vector: it is not taken for padding."""
    keras.utils.set_random_seed(0)
    encoder = encoder_from(build_autoencoder(tiny_model_cfg("repeat"), 2, fused=True))
    values = np.ones((1, 4, 2), np.float32)
    values[0, 2:] = 0.0  # two real steps of zeros
    z3 = encoder([values, np.array([3], np.int32)]).numpy()
    z4 = encoder([values, np.array([4], np.int32)]).numpy()
    assert not np.allclose(z3, z4)


def test_crop_gives_zero_output_and_zero_gradient_at_padded_steps() -> None:
    keras.utils.set_random_seed(0)
    model = build_autoencoder(tiny_model_cfg("crop"), 2)
    values = np.random.default_rng(0).normal(size=(3, 6, 2)).astype(np.float32)
    lengths = np.array([2, 6, 4], np.int32)
    real = length_mask_np(lengths, 6, "post")
    weight = tf.constant(np.random.default_rng(1).normal(size=(3, 6, 2)).astype(np.float32))

    def grads(only_real: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        with tf.GradientTape() as tape:
            preds = model([values, lengths])
            # An arbitrary function of the outputs, with or without the padded steps.
            keep = real[:, :, None] if only_real else np.ones((3, 6, 1), bool)
            total = tf.reduce_sum(tf.where(keep, tf.sin(preds * weight), 0.0))
        return preds.numpy(), [g.numpy() for g in tape.gradient(total, model.trainable_variables)]

    preds, with_padded = grads(only_real=False)
    _, real_only = grads(only_real=True)
    assert np.all(preds[~real] == 0.0)
    for a, b in zip(with_padded, real_only, strict=True):
        np.testing.assert_array_equal(a, b)  # padded steps add exactly nothing


def test_remask_decoder_state_is_not_advanced_by_padded_steps() -> None:
    """With pre padding the padded steps come first; remask's decoder must skip them."""
    keras.utils.set_random_seed(0)
    model = build_autoencoder(tiny_model_cfg("remask"), 2, padding="pre")
    decoder_out = keras.Model(model.inputs, model.get_layer("decoder_lstm_0").output)
    seqs = make_sequences([3], seed=1)
    lengths = np.array([3], np.int32)
    short = decoder_out([pad(seqs, [0], 3, "pre"), lengths]).numpy()[0]
    long = decoder_out([pad(seqs, [0], 9, "pre"), lengths]).numpy()[0]
    np.testing.assert_allclose(long[-3:], short, rtol=1e-5, atol=1e-6)


def test_saved_model_loads_in_safe_mode(tmp_path: Path) -> None:
    for decoder in ("repeat", "remask", "crop"):
        model = build_autoencoder(tiny_model_cfg(decoder), 2, fused=decoder != "remask")
        model.save(tmp_path / f"{decoder}.keras")
        loaded = keras.models.load_model(tmp_path / f"{decoder}.keras", safe_mode=True)
        values = np.random.default_rng(0).normal(size=(2, 5, 2)).astype(np.float32)
        lengths = np.array([5, 2], np.int32)
        np.testing.assert_allclose(loaded([values, lengths]), model([values, lengths]), rtol=1e-6)


@settings(max_examples=8, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    extra=st.integers(1, 4),
    decoder=st.sampled_from(["repeat", "remask", "crop"]),
)
def test_token_model_ignores_padding(lengths: list[int], extra: int, decoder: Decoder) -> None:
    """Token ids: neither the padded length nor the ids in the padding change the
    cross-entropy or the latent vectors."""
    keras.utils.set_random_seed(0)
    model = build_autoencoder(tiny_model_cfg(decoder), 1, fused=True, vocab_size=7, embedding_dim=3)
    encoder = encoder_from(model)
    rng = np.random.default_rng(len(lengths))
    lengths = np.array(lengths, np.int32)
    longest = int(lengths.max())
    base = np.where(length_mask_np(lengths, longest, "post"), rng.integers(1, 7, (len(lengths), longest)), 0)
    garbage = rng.integers(0, 7, (len(lengths), longest + extra))  # any ids in the padding
    longer = np.where(length_mask_np(lengths, longest + extra, "post"), np.pad(base, ((0, 0), (0, extra))), garbage)
    out = []
    for ids in (base, longer):
        ids = ids.astype(np.int32)[:, :, None]  # (batch, time, 1)
        s, _, _ = loss_terms(
            ids,
            lengths,
            model([ids, lengths]),
            loss="per_step",
            error="cross_entropy",
            target="reconstruct",
            padding="post",
        )
        out.append((s.numpy(), encoder([ids, lengths]).numpy()))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-5)
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-5, atol=1e-6)


def test_reverse_by_length_hand_checked() -> None:
    """Real steps reversed within each sequence's own length; padding stays put."""
    x = np.array([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]], np.float32)[:, :, None]  # (3, 4, 1)
    lengths = np.array([3, 2, 1], np.int32)
    post = np.asarray(reverse_by_length_ops(x, lengths, "post"))[:, :, 0]
    assert post.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [6, 0, 0, 0]]
    pre = np.array([[0, 1, 2, 3], [0, 0, 4, 5]], np.float32)[:, :, None]
    assert np.asarray(reverse_by_length_ops(pre, lengths[:2], "pre"))[:, :, 0].tolist() == [[0, 3, 2, 1], [0, 0, 5, 4]]


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=5), padding=st.sampled_from(["post", "pre"]))
def test_reversing_twice_is_the_identity(lengths: list[int], padding: Padding) -> None:
    x = np.random.default_rng(len(lengths)).normal(size=(len(lengths), 9, 2)).astype(np.float32)
    lens = np.array(lengths, np.int32)
    twice = reverse_by_length_ops(reverse_by_length_ops(x, lens, padding), lens, padding)
    np.testing.assert_array_equal(np.asarray(twice), x)


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_masked_pooling_equals_numpy_over_the_real_steps(padding: Padding) -> None:
    rng = np.random.default_rng(3)
    lengths = np.array([1, 4, 6], np.int32)
    h = rng.uniform(-1, 1, size=(3, 6, 4)).astype(np.float32)
    mask = length_mask_np(lengths, 6, padding)
    h[~mask] = 50.0  # padding that would win a max and move a mean
    pooled = np.asarray(MaskedPooling(("mean", "std", "min", "max"))([h, mask]))
    for b in range(3):
        real = h[b][mask[b]]  # (length, units)
        expected = np.concatenate([real.mean(0), np.sqrt(real.var(0) + 1e-6), real.min(0), real.max(0)])
        np.testing.assert_allclose(pooled[b], expected, rtol=1e-5, atol=1e-6)


def test_training_noise_is_off_outside_training_and_its_state_is_saved(tmp_path: Path) -> None:
    """Deterministic at inference; in training the draws continue after a save and load
    exactly where they would have without it (exact resume)."""
    keras.utils.set_random_seed(0)
    cfg = tiny_model_cfg("repeat", dropout=0.3, input_dropout=0.2, input_noise=0.5, bidirectional=True)
    model = build_autoencoder(cfg, 2, fused=True, seed=7)
    seqs = make_sequences([3, 5], seed=1)
    values, lengths = pad(seqs, np.arange(2), 5, "post"), seqs.lengths.astype(np.int32)
    np.testing.assert_array_equal(np.asarray(model([values, lengths])), np.asarray(model([values, lengths])))
    first = np.asarray(model([values, lengths], training=True))
    assert not np.allclose(first, np.asarray(model([values, lengths])))  # noise in training
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    for _ in range(2):
        np.testing.assert_array_equal(
            np.asarray(loaded([values, lengths], training=True)), np.asarray(model([values, lengths], training=True))
        )
    with pytest.raises(ValueError, match="rate"):
        TrainingNoise(rate=1.0)


def test_training_noise_does_not_see_the_padding_values() -> None:
    """With dropout and input noise on, what sits in the padding (same shape) changes no
    loss and no gradient of a training step: the padded steps are cleared after the noise."""
    seqs = make_sequences([2, 6, 4], seed=5)
    idx, lengths = np.arange(3), seqs.lengths.astype(np.int32)
    results = []
    for pad_value in (0.0, 1e30):
        keras.utils.set_random_seed(0)
        cfg = tiny_model_cfg(
            "repeat", num_layers=2, dropout=0.3, input_dropout=0.2, input_noise=0.5, bidirectional=True, pooling="mean"
        )
        model = build_autoencoder(cfg, 2, fused=True, seed=3)
        results.append(
            _loss_grads_latent(model, encoder_from(model), pad(seqs, idx, 8, "post", pad_value), lengths, "post")
        )
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    for a, b in zip(results[1][1], results[0][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- decoder positions


def test_step_positions_hand_checked() -> None:
    """size 4: ω = (π, π / 5000); the index counts from each sequence's first real step."""
    values = np.zeros((2, 3, 1), np.float32)
    lengths = np.array([3, 2], np.int32)
    w = np.pi / 5000
    post = np.asarray(StepPositions(4, "post")([values, lengths]))
    expected_rows = [[0, 0, 1, 1], [0, np.sin(w), -1, np.cos(w)], [0, np.sin(2 * w), 1, np.cos(2 * w)]]
    np.testing.assert_allclose(post[0], expected_rows, atol=1e-6)
    np.testing.assert_allclose(post[1], [*expected_rows[:2], [0, 0, 0, 0]], atol=1e-6)  # zero when padded
    pre = np.asarray(StepPositions(4, "pre")([values, lengths]))
    np.testing.assert_allclose(pre[0], expected_rows, atol=1e-6)
    np.testing.assert_allclose(pre[1], [[0, 0, 0, 0], *expected_rows[:2]], atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        StepPositions(3)


# --------------------------------------------------------------------------- target: composite


def test_seen_lengths_hand_checked() -> None:
    lengths = np.array([0, 1, 2, 3, 4, 8, 9], np.int32)
    np.testing.assert_array_equal(np.asarray(seen_lengths_ops(lengths, 0.25)), [0, 1, 2, 3, 3, 6, 7])
    np.testing.assert_array_equal(np.asarray(seen_lengths_ops(lengths, 0.9)), [0, 1, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_seen_prefix_hides_the_future_in_training_only(padding: Padding) -> None:
    seqs = make_sequences([4, 2], num_features=1, seed=0)
    x = pad(seqs, np.arange(2), 5, padding, pad_value=7.0)  # (2, 5, 1)
    lengths = seqs.lengths.astype(np.int32)
    layer = SeenPrefix(0.5, padding)
    same_x, same_lengths = layer([x, lengths])
    np.testing.assert_array_equal(np.asarray(same_x), x)
    np.testing.assert_array_equal(np.asarray(same_lengths), lengths)
    seen_x, seen = layer([x, lengths], training=True)
    np.testing.assert_array_equal(np.asarray(seen), [2, 1])
    # Each sequence's first `seen` real steps, padded with zeros on the same side.
    firsts = [seqs.values[0:2, 0], seqs.values[4:5, 0]]
    for b, first in enumerate(firsts):
        row = np.zeros(5, np.float32)
        if padding == "post":
            row[: len(first)] = first
        else:
            row[5 - len(first) :] = first
        np.testing.assert_array_equal(np.asarray(seen_x)[b, :, 0], row)
    with pytest.raises(ValueError, match="future_fraction"):
        SeenPrefix(1.0)


def test_composite_encoder_in_training_sees_only_the_prefix() -> None:
    """In training the latent vector of a sequence of 7 steps (future_fraction 0.25: 6
    seen) is the inference latent of its first 6 steps; outside training, of all 7."""
    keras.utils.set_random_seed(0)
    model = build_autoencoder(tiny_model_cfg("repeat"), 2, fused=True, future_fraction=0.25)
    encoder = encoder_from(model)
    seqs = make_sequences([7], seed=3)
    full = pad(seqs, [0], 7, "post")
    z_training = encoder([full, np.array([7], np.int32)], training=True).numpy()
    z_prefix = encoder([full[:, :6], np.array([6], np.int32)]).numpy()
    z_full = encoder([full, np.array([7], np.int32)]).numpy()
    np.testing.assert_allclose(z_training, z_prefix, rtol=1e-5, atol=1e-6)
    assert not np.allclose(z_full, z_prefix)


@pytest.fixture(scope="module")
def composite_models() -> list[tuple[keras.Model, Padding]]:
    """target: composite's model (future_fraction 0.4) three ways, with the same weights:
    fused (post), Keras's masked LSTM (post), and remask with pre padding."""
    out: list[tuple[keras.Model, Padding]] = []
    for decoder, padding, fused in (("repeat", "post", True), ("repeat", "post", False), ("remask", "pre", False)):
        keras.utils.set_random_seed(0)
        cfg = tiny_model_cfg(decoder, bidirectional=True, pooling="mean_max", input_stats=True)
        model = build_autoencoder(cfg, 2, padding, fused=fused, future_fraction=0.4)
        if out:
            model.set_weights(out[0][0].get_weights())
        out.append((model, padding))
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    extra=st.integers(1, 4),
    pad_value=st.sampled_from([0.0, 1e30, np.nan]),
)
def test_composite_training_step_is_padding_invariant_and_fused_equals_keras(
    composite_models: list[tuple[keras.Model, Padding]], lengths: list[int], extra: int, pad_value: float
) -> None:
    """target: composite's training loss and gradients: the same for the fused kernel and
    Keras's masked LSTM, for post and pre padding (remask), whatever the padding holds."""
    seqs = make_sequences(lengths, seed=len(lengths))
    idx, lens = np.arange(len(seqs)), seqs.lengths.astype(np.int32)
    results = []
    for model, padding in composite_models:
        for time_len, value in ((max(lens), 0.0), (max(lens) + extra, pad_value)):
            values = pad(seqs, idx, time_len, padding, value)
            results.append(_loss_grads_latent(model, encoder_from(model), values, lens, padding))
    base = results[0]
    for other in results[1:]:
        np.testing.assert_allclose(other[0], base[0], rtol=1e-5, atol=1e-6)
        for a, b in zip(other[1], base[1], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
