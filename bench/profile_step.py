"""Where one seqmask training step spends its time (the bench workload's model).

Times, on one fixed batch (64 sequences x --time steps, default 64; 12 features, LSTM 64,
latent 32, decoder repeat, fused CPU kernel, one thread per op as seqmask trains):
  1. each LSTM layer alone, in the form the model uses it (both given the lengths; the
     encoder returning the last real step and without an input gradient, the decoder on
     its repeated latent input), forward and forward + backward;
  2. the other pieces alone: the output Dense and the masked loss, forward + backward;
     padding the batch in numpy (done before every step);
  3. the whole model forward;
  4. forward + loss + backward (gradients only);
  5. the full training step (+ gradient clipping and the Adam update), and the same step
     on a batch of 2 steps: what a step costs whatever its length.
The differences say what the remaining time goes to. Run: .venv/bin/python bench/profile_step.py
(SEQMASK_NATIVE=0 for TensorFlow's BlockLSTMV2 instead of seqmask's kernel).

`--threads N` and `--shards N` reproduce the threading comparison of BENCHMARKS.md:
`--threads 2 --shards 1` is TensorFlow splitting each op over 2 threads, the default
(`--threads 1`, shards = cores) is one thread per op with the batch cut into slices.
"""

import os
import time
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seqmask.data import Sequences  # noqa: E402
from seqmask.data.batching import padded_batch  # noqa: E402
from seqmask.model.autoencoder import build_autoencoder  # noqa: E402
from seqmask.model.devices import configure_device  # noqa: E402
from seqmask.model.fused_lstm import FusedLSTM  # noqa: E402
from seqmask.model.losses import loss_terms  # noqa: E402
from seqmask.model.scoring import make_loss_fn  # noqa: E402
from seqmask.training.loop import _make_train_step  # noqa: E402

BATCH, FEATURES, UNITS, LATENT = 64, 12, 64, 32


def best_ms(fn, *args, repeats=30):
    for _ in range(3):
        tf.nest.map_structure(np.asarray, fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(np.asarray, fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))  # np.asarray: a tensor is copied out, as training does


def main():
    import argparse

    from seqmask.model import devices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads per op (intra-op)")
    parser.add_argument("--shards", type=int, default=None, help="batch slices (default: cores)")
    parser.add_argument("--time", type=int, default=64, help="steps in the batch (default 64)")
    args = parser.parse_args()
    time_len = args.time
    configure_device("cpu")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.shards is not None:
        devices._cpu_shards = args.shards
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, time_len, FEATURES)).astype(np.float32))
    lengths = tf.constant(rng.integers(time_len // 2, time_len + 1, BATCH).astype(np.int32))
    rows = []

    reference = tf.zeros((BATCH, time_len, 1))  # the repeated decoder input's time length
    encoder = FusedLSTM(UNITS, input_gradient=False, use_lengths=True, return_sequences=False)
    layers = (
        ("encoder LSTM (12 -> 64)", encoder, (BATCH, time_len, FEATURES)),
        ("decoder LSTM (32 -> 64)", FusedLSTM(UNITS, repeat_input=True, use_lengths=True), (BATCH, LATENT)),
    )
    for name, layer, shape in layers:
        inp = tf.constant(rng.normal(size=shape).astype(np.float32))
        inputs = (inp, reference) if layer.repeat_input else (inp,)

        def call(v, r=None, layer=layer):
            return layer([v, r, lengths]) if layer.repeat_input else layer([v, lengths])

        @tf.function
        def fwd(*a, call=call):
            return call(*a)

        @tf.function
        def fwd_bwd(*a, call=call, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(a[0])
                out = tf.reduce_sum(call(*a) ** 2)
            return tape.gradient(out, [a[0], *layer.trainable_variables])

        rows.append((f"{name}: forward", best_ms(fwd, *inputs)))
        rows.append((f"{name}: forward + backward", best_ms(fwd_bwd, *inputs)))

    h = tf.constant(rng.normal(size=(BATCH, time_len, UNITS)).astype(np.float32))
    dense = keras.layers.Dense(FEATURES)
    dense.build((None, None, UNITS))

    @tf.function
    def dense_fb(h):
        with tf.GradientTape() as tape:
            tape.watch(h)
            out = tf.reduce_sum(dense(h) ** 2)
        return tape.gradient(out, [h, *dense.trainable_variables])

    @tf.function
    def loss_fb(v, n, p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            s, c, _ = loss_terms(v, n, p, loss="per_step", error="mse", target="reconstruct", padding="post")
            loss = tf.reduce_sum(s) / tf.reduce_sum(c)
        return tape.gradient(loss, p)

    rows.append(("output Dense (64 -> 12): forward + backward", best_ms(dense_fb, h)))
    rows.append(("masked loss: forward + backward", best_ms(loss_fb, x, lengths, x)))
    seqs = Sequences(
        np.concatenate([x.numpy()[i, :n] for i, n in enumerate(lengths.numpy())]),
        lengths.numpy(),
        np.arange(BATCH).astype(str),
    )
    rows.append(
        ("padding the batch (numpy)", best_ms(lambda: padded_batch(seqs, np.arange(BATCH), "bucket", time_len, "post")))
    )

    model_cfg = SimpleNamespace(units=UNITS, num_layers=1, latent_dim=LATENT, decoder="repeat", decoder_units=None)
    cfg = SimpleNamespace(
        train=SimpleNamespace(loss="per_step", error="mse", target="reconstruct"),
        data=SimpleNamespace(padding="post"),
        input=SimpleNamespace(kind="values"),
    )
    model = build_autoencoder(model_cfg, FEATURES, "post", fused=True)
    loss_fn = make_loss_fn(cfg)

    @tf.function
    def forward(v, n):
        return model([v, n], training=True)

    @tf.function
    def gradients(v, n):
        with tf.GradientTape() as tape:
            s, c, _ = loss_fn(v, n, model([v, n], training=True))
            loss = tf.reduce_sum(s) / tf.reduce_sum(c)
        return tape.gradient(loss, model.trainable_variables)

    optimizer = keras.optimizers.Adam(1e-3, global_clipnorm=1.0)
    model.compile(optimizer=optimizer)
    step = _make_train_step(model, optimizer, loss_fn)
    rows.append(("whole model: forward", best_ms(forward, x, lengths)))
    rows.append(("whole model: forward + loss + backward", best_ms(gradients, x, lengths)))
    rows.append(("full training step (+ clip + Adam)", best_ms(step, x, lengths)))
    full_step_ms = rows[-1][1]
    tiny = tf.constant(rng.normal(size=(BATCH, 2, FEATURES)).astype(np.float32))
    rows.append(("the same step on 64 x 2 steps (fixed cost)", best_ms(step, tiny, tf.fill([BATCH], 2))))

    real = int(lengths.numpy().sum())
    print(f"batch {BATCH} x {time_len} steps ({real} real), {FEATURES} features, LSTM {UNITS}, latent {LATENT}")
    for name, ms in rows:
        print(f"  {name:50s} {ms:7.2f} ms")
    print(f"  full step: {real / full_step_ms * 1e3:,.0f} real steps/s")


if __name__ == "__main__":
    main()
