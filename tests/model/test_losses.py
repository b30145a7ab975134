"""Loss parity: seqmask's masked loss equals a plain numpy computation over real steps."""

import itertools
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import pytest
from helpers import make_sequences, tiny_model_cfg

from seqmask.config import Decoder, Loss, Padding, StepError, Target, choices_of
from seqmask.data import Sequences, length_mask_np
from seqmask.data.batching import inference_batches, padded_batch
from seqmask.model.autoencoder import build_autoencoder
from seqmask.model.losses import loss_terms, step_errors, step_weights
from seqmask.model.scoring import make_eval_step, make_loss_fn, score


def numpy_loss_terms(
    values: np.ndarray,
    lengths: np.ndarray,
    preds: np.ndarray,
    loss: Loss,
    error: StepError,
    target: Target,
    padding: Padding,
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: unpad each sequence, score it in plain numpy."""
    sums: list[float] = []
    counts: list[float] = []
    time_len = values.shape[1]
    for b, length in enumerate(lengths):
        real = length_mask_np(np.array([length]), time_len, padding)[0]
        x, y = values[b][real].astype(np.float64), preds[b][real].astype(np.float64)  # (length, features)
        if target == "next_step":
            x, y = x[1:], y[:-1]  # ŷ[t] is scored against x[t + 1]
        elif target == "reverse":
            x = x[::-1]  # ŷ[t] is scored against x[L - 1 - t] (the real steps, reversed)
        diff = y - x
        e = (diff**2).mean(axis=1) if error == "mse" else np.abs(diff).mean(axis=1)
        if len(e) == 0:
            total, count = 0.0, 0.0
        elif loss == "per_step":
            total, count = float(e.sum()), float(len(e))
        else:
            total, count = float(e[-1]), 1.0
        sums.append(total)
        counts.append(count)
    return np.array(sums), np.array(counts)


COMBOS = list(
    itertools.product(
        ("repeat", "remask", "crop"), ("per_step", "last_step"), ("mse", "mae"), choices_of(Target), ("post", "pre")
    )
)


Models = dict[tuple[Decoder, Padding], keras.Model]


@pytest.fixture(scope="module")
def models() -> Models:
    built: Models = {}
    for decoder, padding in itertools.product(("repeat", "remask", "crop"), ("post", "pre")):
        keras.utils.set_random_seed(1)
        # Post padding: the fast fused kernel (what training on CPU uses); pre: Keras's masked LSTM.
        built[decoder, padding] = build_autoencoder(
            tiny_model_cfg(decoder, num_layers=2), 2, padding, fused=padding == "post"
        )
    return built


def _sequences_and_loss(
    loss: Loss, error: StepError, target: Target, padding: Padding
) -> tuple[Sequences, Callable[..., Any]]:
    # Lengths include 1 (no next-step target) and a last step of all zeros.
    lengths = [1, 4, 7, 2, 9, 3, 5, 1, 8, 6, 2]
    seqs = make_sequences(lengths, seed=3)
    seqs.values[seqs.offsets[2] + 6] = 0.0  # sequence 2's last real step is all zeros
    cfg = SimpleNamespace(
        train=SimpleNamespace(loss=loss, error=error, target=target),
        data=SimpleNamespace(padding=padding),
        input=SimpleNamespace(kind="values"),
    )
    return seqs, make_loss_fn(cfg)


@pytest.mark.parametrize("decoder,loss,error,target,padding", COMBOS)
def test_parity_one_batch(
    models: Models, decoder: Decoder, loss: Loss, error: StepError, target: Target, padding: Padding
) -> None:
    model = models[decoder, padding]
    seqs, loss_fn = _sequences_and_loss(loss, error, target, padding)
    # One batch, padded with garbage beyond the real steps.
    values, lens = padded_batch(seqs, np.arange(len(seqs)), "pad_to_max", 11, padding)
    values[~length_mask_np(lens, 11, padding)] = 7.5
    preds = np.asarray(model([values, lens]))
    s, c, _ = loss_fn(values, lens, preds)
    ref_s, ref_c = numpy_loss_terms(values, lens, preds, loss, error, target, padding)
    np.testing.assert_allclose(np.asarray(c), ref_c)
    np.testing.assert_allclose(np.asarray(s), ref_s, rtol=1e-5, atol=1e-7)


# The epoch's sum over batches does not depend on the decoder (it only makes the
# predictions), and each combo traces an eval step: every loss, error, target and padding
# with the decoder that takes both paddings, and every decoder with one loss.
EPOCH_COMBOS = [c for c in COMBOS if c[0] == "remask" or c[1:4] == ("per_step", "mse", "reconstruct")]


@pytest.mark.parametrize("decoder,loss,error,target,padding", EPOCH_COMBOS)
def test_parity_over_an_epoch(
    models: Models, decoder: Decoder, loss: Loss, error: StepError, target: Target, padding: Padding
) -> None:
    model = models[decoder, padding]
    seqs, loss_fn = _sequences_and_loss(loss, error, target, padding)
    # A whole multi-batch epoch: the evaluate figure is Σ sums / Σ counts over all batches.
    scores = score(make_eval_step(model, loss_fn), seqs, 3, padding)
    all_s, all_c = [], []
    for indices in inference_batches(seqs.lengths, 3):
        v, ln = padded_batch(seqs, indices, "bucket", None, padding)
        rs, rc = numpy_loss_terms(v, ln, np.asarray(model([v, ln])), loss, error, target, padding)
        all_s.append(rs), all_c.append(rc)
    expected = np.concatenate(all_s).sum() / np.concatenate(all_c).sum()
    np.testing.assert_allclose(scores.loss, expected, rtol=1e-5)
    # ... which is not the mean of the batch means (the number Keras would report).
    batch_means = [a.sum() / max(b.sum(), 1) for a, b in zip(all_s, all_c, strict=True) if b.sum() > 0]
    assert not np.isclose(np.mean(batch_means), expected, rtol=1e-6)


def test_last_step_weights_hand_checked() -> None:
    # post padding, time 4: lengths 1, 3, 4 -> the last real steps are t = 0, 2, 3.
    has_target = length_mask_np(np.array([1, 3, 4]), 4, "post")
    w = np.asarray(step_weights(has_target, "last_step"))
    np.testing.assert_array_equal(w, [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_last_step_finds_all_zero_last_step_and_length_one() -> None:
    # The prediction is 1 everywhere; the last real step of sequence 0 (length 1) and of
    # sequence 1 (length 3, last step all zeros) are scored, nothing else.
    values = np.zeros((2, 5, 2), np.float32)
    values[1, :2] = 4.0  # sequence 1: [4, 4, 0] then padding
    values[:, 3:] = 9.0  # padding garbage
    preds = np.ones_like(values)
    s, c, _ = loss_terms(
        values, np.array([1, 3]), preds, loss="last_step", error="mse", target="reconstruct", padding="post"
    )
    np.testing.assert_allclose(np.asarray(s), [1.0, 1.0])  # (1 - 0)² at t=0 and at t=2
    np.testing.assert_allclose(np.asarray(c), [1.0, 1.0])


def test_next_step_length_one_has_no_target() -> None:
    values = np.arange(8, dtype=np.float32).reshape(2, 4, 1)
    s, c, _ = loss_terms(
        values, np.array([1, 3]), np.zeros_like(values), loss="per_step", error="mae", target="next_step", padding="pre"
    )
    # sequence 1 (pre padding, time 4): real steps t = 1..3 hold 5, 6, 7; targets are 6, 7.
    np.testing.assert_allclose(np.asarray(c), [0.0, 2.0])
    np.testing.assert_allclose(np.asarray(s), [0.0, 13.0])


def test_infinite_padding_gives_finite_loss_and_gradient() -> None:
    import tensorflow as tf

    values = np.full((1, 4, 2), np.inf, np.float32)
    values[0, :2] = 1.0
    preds = tf.zeros((1, 4, 2))
    with tf.GradientTape() as tape:
        tape.watch(preds)
        s, c, _ = loss_terms(
            values, np.array([2]), preds, loss="per_step", error="mse", target="reconstruct", padding="post"
        )
        total = tf.reduce_sum(s)
    grad = tape.gradient(total, preds).numpy()
    assert np.isfinite(float(s[0])) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[0, 2:], 0.0)


@pytest.mark.parametrize("loss", ["per_step", "last_step"])
@pytest.mark.parametrize("target", choices_of(Target))
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_token_cross_entropy_parity(loss: Loss, target: Target, padding: Padding) -> None:
    """Masked sparse cross-entropy and token accuracy against plain numpy."""
    rng = np.random.default_rng(0)
    lengths = np.array([1, 5, 3, 6])
    time_len, vocab = 7, 9
    real = length_mask_np(lengths, time_len, padding)
    ids = np.where(real, rng.integers(1, vocab, (4, time_len)), 0).astype(np.int32)[:, :, None]
    logits = rng.normal(size=(4, time_len, vocab)).astype(np.float32)
    s, c, h = (
        np.asarray(t)
        for t in loss_terms(ids, lengths, logits, loss=loss, error="cross_entropy", target=target, padding=padding)
    )
    for b in range(len(lengths)):
        y, z = ids[b, real[b], 0], logits[b][real[b]].astype(np.float64)  # (length,), (length, vocab)
        if target == "next_step":
            y, z = y[1:], z[:-1]
        elif target == "reverse":
            y = y[::-1]
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        ce = -logp[np.arange(len(y)), y]
        hit = (z.argmax(axis=1) == y).astype(float)
        if loss == "last_step":
            ce, hit = ce[-1:], hit[-1:]
        np.testing.assert_allclose(s[b], ce.sum(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c[b], len(ce))
        np.testing.assert_allclose(h[b], hit.sum())


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("loss", "loss must be one of ('per_step', 'last_step'), got 'x'"),
        ("error", "error must be one of ('mse', 'mae', 'cross_entropy'), got 'x'"),
        ("target", "target must be one of ('reconstruct', 'next_step', 'reverse', 'composite'), got 'x'"),
        ("padding", "padding must be one of ('post', 'pre'), got 'x'"),
    ],
)
def test_a_bad_choice_is_a_value_error_naming_the_choices(key: str, expected: str) -> None:
    values = np.zeros((1, 2, 1), np.float32)
    choices = {"loss": "per_step", "error": "mse", "target": "reconstruct", "padding": "post", key: "x"}
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        loss_terms(values, np.array([2]), values, **choices)


def test_step_errors_take_the_config_errors_only() -> None:
    # cross_entropy is the token error: loss_terms scores it with token_errors instead.
    values, has_target = np.zeros((1, 2, 1), np.float32), np.ones((1, 2), bool)
    with pytest.raises(ValueError, match=re.escape("error must be one of ('mse', 'mae'), got 'cross_entropy'")):
        step_errors(values, values, "cross_entropy", has_target)
