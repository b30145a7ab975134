"""seqmask's compiled CPU LSTM kernel (seqmask/kernels/lstm.cc via seqmask/native.py)
against Keras's LSTM, and its fallback to TensorFlow's BlockLSTMV2."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmask import devices, native
from seqmask.fused_lstm import FusedLSTM


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


def _outputs_and_grads(layer, inputs, upstream):
    """h and the gradients of sum(h * upstream) w.r.t. the inputs and the weights."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        h = layer(inputs)
        loss = tf.reduce_sum(h * upstream)
    grads = tape.gradient(loss, [inputs, *layer.trainable_variables])
    return h.numpy(), [np.zeros(inputs.shape, np.float32) if g is None else g.numpy() for g in grads]


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 6), time=st.integers(1, 9), features=st.integers(1, 5),
    units=st.integers(1, 9), shards=st.integers(1, 4), repeat=st.booleans(), seed=st.integers(0, 99),
)
def test_kernel_matches_keras_lstm(batch, time, features, units, shards, repeat, seed):
    """Outputs and every gradient equal Keras's LSTM with the same weights, for any batch
    size against the number of slices (batch < shards included), length 1, and the
    repeated-input form the `repeat` decoder uses."""
    rng = np.random.default_rng(seed)
    step = rng.normal(size=(batch, features)).astype(np.float32)
    x = np.repeat(step[:, None], time, axis=1) if repeat else rng.normal(size=(batch, time, features))
    x = tf.constant(x.astype(np.float32))  # (batch, time, features)
    upstream = tf.constant(rng.normal(size=(batch, time, units)).astype(np.float32))
    reference = keras.layers.LSTM(units, return_sequences=True)
    reference.build((None, None, features))
    weights = [w * 1.5 for w in reference.get_weights()]  # bias away from its init: all gates matter
    weights[2] = rng.normal(size=weights[2].shape).astype(np.float32)
    reference.set_weights(weights)
    h_ref, grads_ref = _outputs_and_grads(reference, x, upstream)

    old = devices._cpu_shards
    devices._cpu_shards = shards
    try:
        layer = FusedLSTM(units, repeat_input=repeat)
        layer.build([(None, features), (None, None, 1)] if repeat else (None, None, features))
        layer.set_weights(weights)
        if repeat:
            inputs = tf.constant(step)
            reference_steps = tf.zeros((batch, time, 1))
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                h = layer([inputs, reference_steps])
                loss = tf.reduce_sum(h * upstream)
            d_step, *d_weights = tape.gradient(loss, [inputs, *layer.trainable_variables])
            # The repeated input's gradient is the per-step one summed over steps.
            np.testing.assert_allclose(d_step, grads_ref[0].sum(axis=1), rtol=1e-4, atol=1e-5)
            grads = [g.numpy() for g in d_weights]
            grads_ref = grads_ref[1:]
        else:
            h, grads = _outputs_and_grads(layer, x, upstream)
    finally:
        devices._cpu_shards = old
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, grads_ref):
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
    for a, b in zip(g1[1:], g2[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_kernel_is_deterministic(monkeypatch):
    """Bit-identical gradients from call to call (exact resume depends on it), with the
    batch split over threads."""
    monkeypatch.setattr(devices, "_cpu_shards", 2)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(33, 20, 3)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(33, 20, 8)).astype(np.float32))
    layer = FusedLSTM(8)
    layer.build((None, None, 3))
    first, second = (_outputs_and_grads(layer, x, upstream) for _ in range(2))
    np.testing.assert_array_equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        np.testing.assert_array_equal(a, b)


def test_fallback_gives_the_same_results(monkeypatch):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(4, 6, 3)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(4, 6, 5)).astype(np.float32))
    layer = FusedLSTM(5)
    layer.build((None, None, 3))
    h_kernel, g_kernel = _outputs_and_grads(layer, x, upstream)
    _forced_fallback(monkeypatch)
    assert native.status() == "BlockLSTM (forced by the test)"
    h_block, g_block = _outputs_and_grads(layer, x, upstream)
    np.testing.assert_allclose(h_block, h_kernel, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_block, g_kernel):
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
    x = tf.zeros((2, 3, 4))
    with pytest.raises(tf.errors.InvalidArgumentError, match="wx must be"):
        kernels.seqmask_lstm(x, tf.zeros((5, 8)), tf.zeros((2, 8)), tf.zeros(8), 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 step or `time` steps"):
        kernels.seqmask_lstm(x, tf.zeros((4, 8)), tf.zeros((2, 8)), tf.zeros(8), 5)


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
    from seqmask.train import Reporter, train

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, 20)
    np.savez(tmp_path / "d.npz", values=rng.normal(size=(lengths.sum(), 2)).astype(np.float32), lengths=lengths)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(
        {"data": {"train": "d.npz", **(data or {})}, "model": {"units": 4, "latent_dim": 2, **(model or {})},
         "train": {"epochs": 1, "batch_size": 8, "device": "cpu"}}))
    heard = []

    class Recorder(Reporter):
        def building_kernel(self):
            heard.append("building")

        def start(self, info):
            heard.append(info["lstm_kernel"])

    monkeypatch.setattr(native, "needs_build", lambda: True)  # as on a machine with no build yet
    train(load_config(tmp_path / "c.yaml"), tmp_path / "run", reporter=Recorder())
    return heard


def test_training_says_when_it_builds_the_kernel_and_which_kernel_runs(monkeypatch, tmp_path):
    """The first CPU training on a machine compiles the kernel (~25 s): the reporter hears
    of it before the pause, and the start line names the kernel in use."""
    assert _kernel_messages(monkeypatch, tmp_path) == ["building", "seqmask kernel"]


def test_pre_padding_neither_builds_nor_claims_the_kernel(monkeypatch, tmp_path):
    """With pre padding every LSTM is Keras's masked one: no build, and the start line
    says so instead of naming a kernel that does not run."""
    heard = _kernel_messages(monkeypatch, tmp_path, data={"padding": "pre"}, model={"decoder": "remask"})
    assert heard == ["Keras (masked, for pre padding)"]
