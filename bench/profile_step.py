"""Where one seqmask training step spends its time (the bench workload's model).

Times, on one fixed batch (64 sequences x 64 steps, 12 features, LSTM 64, latent 32,
decoder repeat, fused CPU kernel, one thread per op as seqmask trains):
  1. each fused LSTM layer alone, forward and forward + backward;
  2. the whole model forward;
  3. forward + loss + backward (gradients only);
  4. the full training step (+ gradient clipping and the Adam update).
The differences say what the remaining time goes to. Run: .venv/bin/python bench/profile_step.py

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

from seqmask.devices import configure_device  # noqa: E402
from seqmask.fused_lstm import FusedLSTM  # noqa: E402
from seqmask.model import build_autoencoder  # noqa: E402
from seqmask.scoring import make_loss_fn  # noqa: E402
from seqmask.train import _make_train_step  # noqa: E402

BATCH, TIME, FEATURES, UNITS, LATENT = 64, 64, 12, 64, 32


def best_ms(fn, *args, repeats=30):
    for _ in range(3):
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main():
    import argparse

    from seqmask import devices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads per op (intra-op)")
    parser.add_argument("--shards", type=int, default=None, help="batch slices (default: cores)")
    args = parser.parse_args()
    configure_device("cpu")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.shards is not None:
        devices._cpu_shards = args.shards
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, TIME, FEATURES)).astype(np.float32))
    lengths = tf.constant(rng.integers(TIME // 2, TIME + 1, BATCH).astype(np.int32))
    rows = []

    for name, in_dim in (("encoder LSTM (12 -> 64)", FEATURES), ("decoder LSTM (32 -> 64)", LATENT)):
        layer = FusedLSTM(UNITS)
        layer.build((None, None, in_dim))
        inp = tf.constant(rng.normal(size=(BATCH, TIME, in_dim)).astype(np.float32))

        @tf.function
        def fwd(v, layer=layer):
            return layer(v)

        @tf.function
        def fwd_bwd(v, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(v)
                out = tf.reduce_sum(layer(v) ** 2)
            return tape.gradient(out, [v, *layer.trainable_variables])

        rows.append((f"{name}: forward", best_ms(fwd, inp)))
        rows.append((f"{name}: forward + backward", best_ms(fwd_bwd, inp)))

    model_cfg = SimpleNamespace(units=UNITS, num_layers=1, latent_dim=LATENT, decoder="repeat", decoder_units=None)
    cfg = SimpleNamespace(train=SimpleNamespace(loss="per_step", error="mse", target="reconstruct"),
                          data=SimpleNamespace(padding="post"), input=SimpleNamespace(kind="values"))
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

    real = int(lengths.numpy().sum())
    print(f"batch {BATCH} x {TIME} steps ({real} real), {FEATURES} features, LSTM {UNITS}, latent {LATENT}")
    for name, ms in rows:
        print(f"  {name:45s} {ms:7.2f} ms")
    print(f"  full step: {real / rows[-1][1] * 1e3:,.0f} real steps/s")


if __name__ == "__main__":
    main()
