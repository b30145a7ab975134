"""seqmask's compiled CPU LSTM kernel (seqmask/kernels/lstm.cc via seqmask/native.py)
against Keras's LSTM, and its fallback to TensorFlow's BlockLSTMV2."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmask.model import devices, native
from seqmask.model.fused_lstm import FusedLSTM


@pytest.fixture(autouse=True)
def _kernel_built():
    if native.load() is None:
        pytest.fail(f"the kernel did not build here: {native.status()}")


def _forced_fallback(monkeypatch, why="forced by the test"):
    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setattr(native, "_error", why)


def _unloaded(monkeypatch, **env):
    """native as in a fresh process (nothing loaded or tried yet), with `env` set."""
    _forced_fallback(monkeypatch, None)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _outputs_and_grads(layer, inputs, upstream, lengths=None):
    """h and the gradients of sum(h * upstream) w.r.t. the inputs and the weights."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        h = layer(inputs if lengths is None else [inputs, lengths])
        loss = tf.reduce_sum(h * upstream)
    grads = tape.gradient(loss, [inputs, *layer.trainable_variables])
    return h.numpy(), [np.zeros(inputs.shape, np.float32) if g is None else g.numpy() for g in grads]


def _reference(units, features, rng):
    """A Keras LSTM with weights away from their init (every gate matters), and them."""
    reference = keras.layers.LSTM(units, return_sequences=True)
    reference.build((None, None, features))
    weights = [w * 1.5 for w in reference.get_weights()]
    weights[2] = rng.normal(size=weights[2].shape).astype(np.float32)
    reference.set_weights(weights)
    return reference, weights


def _select(h, lengths, output):
    """What a FusedLSTM with `output` returns, from Keras's full h (batch, time, units):
    all of it, zero after each length, or the step at L - 1 (zero for L = 0)."""
    if output == "all":
        return h
    time = tf.shape(h)[1]
    if output == "sequences":
        return h * tf.cast(tf.sequence_mask(lengths, time), h.dtype)[:, :, None]
    last = tf.gather(h, tf.maximum(lengths - 1, 0), axis=1, batch_dims=1)
    return last * tf.cast(lengths > 0, h.dtype)[:, None]


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 6),
    time=st.integers(1, 9),
    features=st.integers(1, 5),
    units=st.integers(1, 9),
    shards=st.integers(1, 4),
    repeat=st.booleans(),
    output=st.sampled_from(["all", "sequences", "last"]),
    data=st.data(),
    seed=st.integers(0, 99),
)
def test_kernel_matches_keras_lstm(batch, time, features, units, shards, repeat, output, data, seed):
    """Outputs and every gradient equal Keras's LSTM with the same weights, for any batch
    size against the number of slices (batch < shards included), length 1, the
    repeated-input form the `repeat` decoder uses, and the three outputs: every step
    (no lengths), every real step with zero after it, each sequence's last real step.
    The lengths are any in [0, time], in any order: the kernel sorts them per slice."""
    rng = np.random.default_rng(seed)
    lengths = tf.constant(data.draw(st.lists(st.integers(0, time), min_size=batch, max_size=batch)), tf.int32)
    step = rng.normal(size=(batch, features)).astype(np.float32)
    x = np.repeat(step[:, None], time, axis=1) if repeat else rng.normal(size=(batch, time, features))
    x = tf.constant(x.astype(np.float32))  # (batch, time, features)
    shape = (batch, units) if output == "last" else (batch, time, units)
    upstream = tf.constant(rng.normal(size=shape).astype(np.float32))
    reference, weights = _reference(units, features, rng)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(_select(reference(x), lengths, output) * upstream)
    h_ref = _select(reference(x), lengths, output).numpy()
    grads_ref = [g.numpy() for g in tape.gradient(loss, [x, *reference.trainable_variables])]

    old = devices._cpu_shards
    devices._cpu_shards = shards
    try:
        use_lengths = output != "all"
        layer = FusedLSTM(units, repeat_input=repeat, use_lengths=use_lengths, return_sequences=output != "last")
        inputs = [tf.constant(step), tf.zeros((batch, time, 1))] if repeat else [x]
        if use_lengths:
            inputs.append(lengths)
        inputs = inputs if len(inputs) > 1 else inputs[0]
        layer(inputs)  # builds
        layer.set_weights(weights)
        watched = inputs[0] if isinstance(inputs, list) else inputs
        with tf.GradientTape() as tape:
            tape.watch(watched)
            h = layer(inputs)
            loss = tf.reduce_sum(h * upstream)
        d_input, *grads = [g.numpy() for g in tape.gradient(loss, [watched, *layer.trainable_variables])]
    finally:
        devices._cpu_shards = old
    # The repeated input's gradient is the per-step one summed over steps.
    d_ref = grads_ref[0].sum(axis=1) if repeat else grads_ref[0]
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_input, d_ref, rtol=1e-4, atol=1e-5)
    for got, want in zip(grads, grads_ref[1:], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_input_gradient_false_leaves_weights_gradients_unchanged():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(5, 7, 3)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(5, 7, 4)).astype(np.float32))
    full, without = FusedLSTM(4), FusedLSTM(4, input_gradient=False)
    for layer in (full, without):
        layer.build((None, None, 3))
    without.set_weights(full.get_weights())
    (h1, g1), (h2, g2) = (_outputs_and_grads(layer, x, upstream) for layer in (full, without))
    np.testing.assert_array_equal(h1, h2)
    assert np.abs(g1[0]).max() > 0 and np.abs(g2[0]).max() == 0  # dx: computed / skipped
    for a, b in zip(g1[1:], g2[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_kernel_is_deterministic(monkeypatch):
    """Bit-identical gradients from call to call (exact resume depends on it), with the
    batch split over threads and sorted by length (ties included)."""
    monkeypatch.setattr(devices, "_cpu_shards", 2)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(33, 20, 3)).astype(np.float32))
    lengths = tf.constant(rng.integers(1, 21, 33).astype(np.int32))
    upstream = tf.constant(rng.normal(size=(33, 20, 8)).astype(np.float32))
    layer = FusedLSTM(8, use_lengths=True)
    layer.build([(None, None, 3), (None,)])
    first, second = (_outputs_and_grads(layer, x, upstream, lengths) for _ in range(2))
    np.testing.assert_array_equal(first[0], second[0])
    for a, b in zip(first[1], second[1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("output", ["all", "sequences", "last"])
def test_fallback_gives_the_same_results(output, monkeypatch):
    """BlockLSTM, where the kernel cannot run, returns the same: zero after each length,
    or the last real step."""
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(4, 6, 3)).astype(np.float32))
    lengths = tf.constant([6, 2, 0, 5])
    upstream = tf.constant(rng.normal(size=(4, 5) if output == "last" else (4, 6, 5)).astype(np.float32))
    layer = FusedLSTM(5, use_lengths=output != "all", return_sequences=output != "last")
    layer.build([(None, None, 3), (None,)] if output != "all" else (None, None, 3))
    results = []
    for forced in (False, True):
        if forced:
            _forced_fallback(monkeypatch)
            assert native.status() == "BlockLSTM (forced by the test)"
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = layer([x, lengths] if output != "all" else x)
            loss = tf.reduce_sum(h * upstream)
        results.append((h.numpy(), [g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_variables])]))
    (h_kernel, g_kernel), (h_block, g_block) = results
    np.testing.assert_allclose(h_block, h_kernel, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_block, g_kernel, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_no_compiler_means_fallback_with_the_reason(monkeypatch, tmp_path):
    _unloaded(monkeypatch, SEQMASK_CACHE_DIR=str(tmp_path / "cache"), CXX="no-such-compiler")
    assert native.load() is None
    assert native.status() == "BlockLSTM (no C++ compiler (no-such-compiler) to build it)"


def test_failed_compile_means_fallback_with_the_reason(monkeypatch, tmp_path):
    _unloaded(monkeypatch, SEQMASK_CACHE_DIR=str(tmp_path / "cache"), CXX="false")  # exits 1 without a word
    assert native.load() is None
    assert native.status() == "BlockLSTM (false failed: (no output))"
    assert not list((tmp_path / "cache").glob("*.so"))  # no half-built library left


def test_disabled_by_environment(monkeypatch):
    _unloaded(monkeypatch, SEQMASK_NATIVE="0")
    assert native.load() is None
    assert native.status() == "BlockLSTM (SEQMASK_NATIVE=0)"


def test_a_cached_build_is_reused():
    path = native.build()
    before = os.stat(path).st_mtime_ns
    assert native.build() == path and os.stat(path).st_mtime_ns == before


def test_op_refuses_mismatched_shapes():
    kernels = native.load()
    x, lengths = tf.zeros((2, 3, 4)), tf.constant([3, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="wx must be"):
        kernels.seqmask_lstm(x, tf.zeros((5, 8)), tf.zeros((2, 8)), tf.zeros(8), lengths, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 step or `time` steps"):
        kernels.seqmask_lstm(x, tf.zeros((4, 8)), tf.zeros((2, 8)), tf.zeros(8), lengths, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="lengths must be"):
        kernels.seqmask_lstm(x, tf.zeros((4, 8)), tf.zeros((2, 8)), tf.zeros(8), tf.constant([3]), 3)


def test_needs_build_is_true_only_before_a_build(monkeypatch, tmp_path):
    _unloaded(monkeypatch, SEQMASK_CACHE_DIR=str(tmp_path / "cache"))
    assert native.needs_build()
    monkeypatch.setenv("SEQMASK_NATIVE", "0")
    assert not native.needs_build()  # disabled: nothing will be built


def _kernel_messages(monkeypatch, tmp_path, data=None, model=None):
    """Trains one tiny epoch on CPU as if no kernel were built yet; returns what the
    reporter heard: 'building' (if announced), then the start line's kernel."""
    import yaml

    from seqmask.config import load_config
    from seqmask.training.loop import train
    from seqmask.training.progress import Reporter

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, 20)
    np.savez(tmp_path / "d.npz", values=rng.normal(size=(lengths.sum(), 2)).astype(np.float32), lengths=lengths)
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "data": {"train": "d.npz", **(data or {})},
                "model": {"units": 4, "latent_dim": 2, **(model or {})},
                "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
            }
        )
    )
    heard = []

    class Recorder(Reporter):
        def building_kernel(self):
            heard.append("building")

        def start(self, info):
            heard.append(info.lstm_kernel)

    monkeypatch.setattr(native, "needs_build", lambda: True)  # as on a machine with no build yet
    train(load_config(tmp_path / "c.yaml"), tmp_path / "run", reporter=Recorder())
    return heard


def test_training_says_when_it_builds_the_kernel_and_which_kernel_runs(monkeypatch, tmp_path):
    """The first CPU training on a machine compiles the kernel (a pause): the reporter hears
    of it before the pause, and the start line names the kernel in use."""
    assert _kernel_messages(monkeypatch, tmp_path) == ["building", "seqmask kernel"]


def test_pre_padding_neither_builds_nor_claims_the_kernel(monkeypatch, tmp_path):
    """With pre padding every LSTM is Keras's masked one: no build, and the start line
    says so instead of naming a kernel that does not run."""
    heard = _kernel_messages(monkeypatch, tmp_path, data={"padding": "pre"}, model={"decoder": "remask"})
    assert heard == ["Keras (masked, for pre padding)"]
