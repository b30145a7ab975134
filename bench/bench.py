"""Benchmark: how fast does seqmask train, evaluate and read data, next to references run beside it?

What is measured
----------------
One workload, the one in the issue: 4096 sequences of 12 float32 features with lognormal
lengths (median ≈ 50, clipped to 1..400), an LSTM autoencoder of 64 units with a latent
vector of 32 and the `repeat` decoder, batch 64, per-step MSE, a learning rate of 1e-3, no
gradient clipping. The bench sets only these; the model options (a bidirectional encoder,
mean/max pooling, the input's per-feature statistics in the latent, the decoder's step
positions, dropout, input dropout and noise, weight decay) are whatever seqmask's
defaults are, so the bench follows them as they change. `--set section.key=value` sets
one explicitly (`--set model.bidirectional=false`), for seqmask and the PyTorch reference
alike.
The options in force are printed in the header and written to the JSON. On it:

1. seqmask           `seqmask.train.train` on an NPZ file, through the public API only, so
                     whatever changes inside seqmask is what gets measured. Throughput comes
                     from the run's own history.csv; also `evaluate` and `encode` on the data.
2. PyTorch           the same architecture in plain torch, whatever the options in force:
                     the backward direction of a bidirectional encoder runs over each
                     sequence reversed by its own length, pooling is over the real steps,
                     so are the input statistics (each feature's mean, std, min and max,
                     appended last to what the latent reads), the decoder reads the same
                     step positions beside the latent, dropout and noise sit where
                     seqmask has them, AdamW when weight decay is on. Same bucketing
                     (sorted by length, cut into batches, batch order shuffled every
                     epoch; each batch padded to its own longest sequence)
                     and the same masked loss: what a careful hand-written trainer gets on
                     this CPU.
3. naive Keras       every sequence padded to 400, `Masking(0.0)`, `model.fit`: what a user
                     gets without seqmask. It computes on every padded step (and its loss
                     averages over them), which is the waste bucketing avoids. It is the
                     issue's plain model (one direction, no pooling, input statistics,
                     step positions, dropout, noise or weight decay) whatever the options, so its FLOP per
                     step is its own.
4. sgemm             a numpy float32 matrix product: this machine's practical peak, in this
                     run, so GFLOP/s figures can be read as a fraction of what the CPU can do.
5. CSV load          `seqmask.data.readers.read_sequences` against `pandas.read_csv` on one
                     long-format CSV file.

The unit is the *real step*: one unpadded time step of one sequence. Padded steps are work
a trainer chooses to do, so they do not count; a trainer that pads less is faster per real
step, which is the figure a user feels. GFLOP/s of real work = real steps/s × FLOP per real
step (computed from each contender's own model shape, see `flop_per_step`).

Why it is built this way
------------------------
* Every contender runs in its own subprocess, one after another, never concurrently: its
  peak RSS (`ru_maxrss`) is its own, TensorFlow and torch never share a process or compete
  for the cores, and one crashing does not take the others down. A child reports back as
  one JSON line on stdout, after RESULT_MARKER.
* The references are measured in the same run as seqmask, so ratios compare like with like
  on whatever machine (and whatever load) the run happens on.
* The PyTorch reference is given its architecture as seqmask resolved it (the parent reads
  it off the config it builds; the seqmask child reports the one it trained, and a mismatch
  is flagged), never from constants of its own, so the two cannot drift apart.
* The first epoch is left out of every training figure and reported on its own as
  warm-up: it holds graph tracing / compilation, which is a fixed cost, not a rate.

Usage (from the repository root)::

    .venv/bin/python bench/bench.py            # full: 4096 sequences, 4 epochs (3 timed)
    .venv/bin/python bench/bench.py --quick    # 1024 sequences, 3 epochs: a couple of minutes
    .venv/bin/python bench/bench.py --tiny     # 128 sequences, 2 epochs: smoke test only
    .venv/bin/python bench/bench.py --only seqmask,torch --json results.json
    .venv/bin/python bench/bench.py --quick --set model.bidirectional=false --set model.pooling=none

Needs the `bench` extras: `pip install -e '.[bench]'` (torch, pandas).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

RESULT_MARKER = "BENCH-RESULT "
CONTENDERS = ("sgemm", "seqmask", "torch", "keras", "csv")  # also the order they run in

# The workload of the issue. Everything below derives from these.
MAX_LEN = 400  # the longest a sequence may be; the naive Keras model pads everything to it
NUM_FEATURES = 12
UNITS = 64
LATENT = 32
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
SEED = 0
# The brief fixes torch at 2 threads: the 2 cores of the machine this was written for.
# TensorFlow and numpy keep their own defaults (every core).
TORCH_THREADS = 2
CSV_STEPS_PER_SEQUENCE = 50
SGEMM_SIZE = 2048


@dataclass(frozen=True)
class Mode:
    name: str
    sequences: int
    epochs: int  # the first one is warm-up, the rest are timed
    csv_rows: int
    repeats: int = 2  # best-of for evaluate, encode and the CSV readers


MODES = {
    "full": Mode("full", sequences=4096, epochs=4, csv_rows=1_000_000),
    "quick": Mode("quick", sequences=1024, epochs=3, csv_rows=200_000),
    "tiny": Mode("tiny", sequences=128, epochs=2, csv_rows=20_000),
}


# --------------------------------------------------------------------------- the model


def workload_config(data, epochs):
    """seqmask's config for the workload, as a raw dict for `config_from_dict`.

    It holds what defines the workload, including what the PyTorch reference implements
    and so must not move with seqmask's defaults (post padding, the repeat decoder, the
    per-step MSE of the reconstruction). The model options (bidirectional, pooling, input
    statistics, dropout, input dropout and noise, weight decay) are not written, so
    seqmask's defaults decide them; `--set` then sets any key through `apply_overrides`.
    """
    return {
        "data": {"train": str(data), "validation_split": 0.0, "normalize": "none", "padding": "post"},
        "model": {"units": UNITS, "latent_dim": LATENT, "decoder": "repeat", "num_layers": 1},
        "train": {
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "epochs": epochs,
            "patience": 0,
            "batching": "bucket",
            "clip_norm": None,
            "loss": "per_step",
            "error": "mse",
            "target": "reconstruct",
        },
    }


@dataclass(frozen=True)
class Architecture:
    """What the PyTorch reference must share with seqmask's model to be like for like.

    Each field is the seqmask config key of the same name in `MODEL_KEYS` or `TRAIN_KEYS`,
    which are also the keys `--set` takes: a key the reference cannot mirror is refused.
    """

    units: int
    num_layers: int
    latent_dim: int
    decoder_units: int  # resolved: seqmask's None means as wide as the encoder
    bidirectional: bool
    pooling: str
    input_stats: bool  # each input feature's mean, std, min and max over the real steps, into the latent
    decoder_positions: int  # sinusoids of the step index beside the latent at every decoder step
    dropout: float
    input_dropout: float
    input_noise: float
    batch_size: int
    learning_rate: float
    weight_decay: float
    clip_norm: float | None

    @classmethod
    def from_config(cls, cfg):
        values = {key: getattr(cfg.model, key) for key in MODEL_KEYS}
        values |= {key: getattr(cfg.train, key) for key in TRAIN_KEYS}
        values["decoder_units"] = cfg.model.decoder_units or cfg.model.units
        return cls(**values)

    def seed_style(self):
        """The same shape with every option off: the issue's plain model, as naive Keras builds it."""
        return replace(
            self,
            bidirectional=False,
            pooling="none",
            input_stats=False,
            decoder_positions=0,
            dropout=0.0,
            input_dropout=0.0,
            input_noise=0.0,
            weight_decay=0.0,
            clip_norm=None,
        )

    @property
    def pools(self):
        """The pooled statistics, in the order seqmask concatenates them."""
        return {"none": (), "mean": ("mean",), "max": ("max",), "mean_max": ("mean", "max")}[self.pooling]

    def describe(self):
        encoder = f"{'bidirectional' if self.bidirectional else 'unidirectional'} LSTM {self.units} units"
        optimizer = f"Adam {self.learning_rate}"
        if self.weight_decay:
            optimizer = f"AdamW {self.learning_rate} (weight decay {self.weight_decay})"
        return (
            f"{encoder} x {self.num_layers} layer(s), pooling {self.pooling}, input stats {self.input_stats}, "
            f"dropout {self.dropout}, input dropout {self.input_dropout}, input noise {self.input_noise}; "
            f"latent {self.latent_dim}; "
            f"repeat decoder {self.decoder_units} units, {self.decoder_positions} step positions; "
            f"batch {self.batch_size}, {optimizer}, "
            f"clip norm {self.clip_norm}; per-step MSE"
        )


# The keys of each section that Architecture holds; "model.decoder" stays "repeat".
MODEL_KEYS = (
    "units",
    "num_layers",
    "latent_dim",
    "decoder_units",
    "bidirectional",
    "pooling",
    "input_stats",
    "decoder_positions",
    "dropout",
    "input_dropout",
    "input_noise",
)
TRAIN_KEYS = ("batch_size", "learning_rate", "weight_decay", "clip_norm")
SETTABLE = tuple(f"model.{k}" for k in MODEL_KEYS) + tuple(f"train.{k}" for k in TRAIN_KEYS)
# The options the bench leaves to seqmask's defaults (the rest of SETTABLE it sets itself).
OPTIONS = (
    "model.bidirectional",
    "model.pooling",
    "model.input_stats",
    "model.decoder_positions",
    "model.dropout",
    "model.input_dropout",
    "model.input_noise",
    "train.weight_decay",
)


def resolve(data, epochs, overrides):
    """seqmask's Config for the workload with `overrides` applied (a ConfigError if one is bad)."""
    from seqmask.config import apply_overrides, config_from_dict

    return config_from_dict(apply_overrides(workload_config(data, epochs), overrides))


def seqmask_defaults():
    """The default of each option, read off seqmask's own config classes."""
    from seqmask.config import ModelConfig, TrainConfig

    sections = {"model": ModelConfig(), "train": TrainConfig()}
    return {key: getattr(sections[key.split(".")[0]], key.split(".")[1]) for key in OPTIONS}


# --------------------------------------------------------------------------- cost model


def flop_per_step(arch, features=NUM_FEATURES):
    """FLOP per real step of `arch`'s model, from its shape (1 multiply-add = 2 FLOP).

    An LSTM step computes its 4 gates as one (inputs + units) -> 4·units matrix product.
    For the issue's plain model (f = 12 features, u = 64 units, latent 32, one layer):
        encoder LSTM   2 · 4·u · (f + u)        = 38,912
        decoder LSTM   2 · 4·u · (latent + u)   = 49,152
        output Dense   2 · u · f                =  1,536
        forward                                 = 89,600
    A bidirectional encoder runs two encoder LSTMs (77,824, forward 128,512), and past the
    first layer each reads both directions' outputs, 2·u wide. Training ≈ 3 × forward (the
    backward pass costs about twice the forward: one product for the gradient of the
    inputs, one for the gradient of the weights): 268,800 FLOP for the plain model; the
    issue's "≈ 264 kFLOP" is its two LSTMs alone. Left out as small: the latent Dense (once
    per sequence, not per step), pooling, dropout, noise and gate nonlinearities
    (elementwise), and the optimizer update (once per batch). So are the input statistics
    (`input_stats`): a few elementwise ops per feature per step (sum; difference, square
    and sum; min; max: about 8 FLOP × 12 features, under 0.1% of the forward pass), plus
    4 · features more inputs to the latent Dense, once per sequence. Step positions
    (`decoder_positions` = P) widen the decoder's input to latent + P, as counted.
    """
    directions = 2 if arch.bidirectional else 1
    encoder, width = 0, features
    for _ in range(arch.num_layers):
        encoder += directions * 2 * 4 * arch.units * (width + arch.units)
        width = directions * arch.units
    decoder, width = 0, arch.latent_dim + arch.decoder_positions
    for _ in range(arch.num_layers):
        decoder += 2 * 4 * arch.decoder_units * (width + arch.decoder_units)
        width = arch.decoder_units
    output = 2 * arch.decoder_units * features
    forward = encoder + decoder + output
    return {"train": 3 * forward, "forward": forward, "encoder": encoder}


# --------------------------------------------------------------------------- the workload


def make_workload(num_sequences, seed=SEED):
    """(values (total_steps, 12) float32, lengths (n,) int64, ids (n,) str), deterministic.

    Each feature of each sequence is a sum of two sinusoids with its own period (10..100
    steps), phase and amplitude, plus a little noise: smooth enough to be learnable,
    different enough between sequences that the latent vector has something to hold.
    """
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(50), 0.7, num_sequences)), 1, MAX_LEN).astype(np.int64)
    seq = np.repeat(np.arange(num_sequences), lengths)  # the sequence of each step
    t = (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))[:, None]
    values = np.zeros((int(lengths.sum()), NUM_FEATURES))
    for _ in range(2):
        period = rng.uniform(10, 100, (num_sequences, NUM_FEATURES))
        phase = rng.uniform(0, 2 * np.pi, (num_sequences, NUM_FEATURES))
        amplitude = rng.uniform(0.5, 1.5, (num_sequences, NUM_FEATURES))
        values += amplitude[seq] * np.sin(2 * np.pi * t / period[seq] + phase[seq])
    values += 0.1 * rng.standard_normal(values.shape)
    ids = np.array([f"seq-{i:05d}" for i in range(num_sequences)])
    return values.astype(np.float32), lengths, ids


def write_workload(path, num_sequences):
    values, lengths, ids = make_workload(num_sequences)
    np.savez(path, values=values, lengths=lengths, ids=ids)
    return int(lengths.sum())


def read_workload(path):
    with np.load(path) as f:
        return f["values"], f["lengths"]


def write_long_csv(path, rows, seed=SEED):
    """A long-format CSV (id, step, f0..f11), sequences of 50 steps; written with pyarrow (fast)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    num_sequences = rows // CSV_STEPS_PER_SEQUENCE
    rows = num_sequences * CSV_STEPS_PER_SEQUENCE
    columns = {
        "id": np.repeat(np.arange(num_sequences), CSV_STEPS_PER_SEQUENCE),
        "step": np.tile(np.arange(CSV_STEPS_PER_SEQUENCE), num_sequences),
    }
    for j in range(NUM_FEATURES):
        columns[f"f{j}"] = rng.standard_normal(rows).astype(np.float32)
    pacsv.write_csv(pa.table(columns), str(path))
    return rows, num_sequences


# --------------------------------------------------------------------------- child helpers


def peak_rss_mib():
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_rate(real_steps, epoch_seconds):
    """Real steps/s over the timed epochs: every epoch but the first (warm-up).

    `real_steps` is one count per epoch, or one count that every epoch shares.
    """
    if isinstance(real_steps, int):
        real_steps = [real_steps] * len(epoch_seconds)
    timed = sum(epoch_seconds[1:])
    return {
        "warmup_seconds": epoch_seconds[0],
        "timed_seconds": timed,
        "epoch_seconds": epoch_seconds,
        "real_steps_per_epoch": real_steps[0],
        "real_steps_per_s": sum(real_steps[1:]) / timed if timed else None,
    }


def bucket_batches(lengths, batch_size, seed, epoch):
    """seqmask's `bucket` batching, written out again so the reference does not import seqmask.

    A random tie-break among equal lengths, a stable sort by length, cut into batches, the
    batch order shuffled; everything random comes from (seed, epoch).
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(values, offsets, lengths, indices):
    """(batch, its own longest length, features) float32, real steps first (post padding)."""
    batch_lengths = lengths[indices]
    out = np.zeros((len(indices), int(batch_lengths.max()), values.shape[1]), np.float32)
    for row, i in enumerate(indices):
        out[row, : lengths[i]] = values[offsets[i] : offsets[i + 1]]
    return out, batch_lengths


# --------------------------------------------------------------------------- the contenders
# Each `child_*` runs inside its own subprocess and returns a JSON-able dict.


def child_sgemm(spec):
    """Best of a few float32 n×n @ n×n products: the CPU's practical peak for dense math."""
    n = spec["size"]
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: BLAS thread pool start, page faults on the output
    times = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return {"gflop_per_s": 2 * n**3 / min(times) / 1e9, "seconds": times, "size": n}


def child_seqmask(spec):
    """Train through the public API, then evaluate and encode the same data with the run."""
    from seqmask.analysis.evaluate import encode, evaluate
    from seqmask.run.loaded import load_run
    from seqmask.training.loop import train

    import_rss = peak_rss_mib()
    cfg = resolve(spec["data"], spec["epochs"], spec["overrides"])
    run_dir = Path(spec["run_dir"])
    metrics = train(cfg, run_dir, overwrite=True)
    train_rss = peak_rss_mib()

    # The run's own record, excluding epoch 1 (tracing happens there).
    with open(run_dir / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    seconds = [float(row["seconds"]) for row in history]
    real_steps = [int(row["train_real_steps"]) for row in history]
    result = timed_rate(real_steps, seconds)
    result.update(
        final_loss=float(history[-1]["loss"]),
        padding_fraction=metrics.get("padding_fraction"),
        device=metrics.get("device"),
        lstm_kernel=metrics.get("lstm_kernel"),
        architecture=asdict(Architecture.from_config(cfg)),  # what was trained, for the parent to check
        import_rss_mib=import_rss,
        peak_rss_mib=train_rss,
    )

    # Inference: each call builds (and traces) its own step function, so its seconds
    # include that; best of `repeats` calls, the first call is reported as warm-up.
    run = load_run(run_dir)
    evaluations = [evaluate(run, spec["data"]) for _ in range(spec["repeats"])]
    encodings = [encode(run, spec["data"]) for _ in range(spec["repeats"])]
    eval_steps = evaluations[0].data.num_steps
    encode_steps = encodings[0][0].num_steps
    result["evaluate"] = _inference_result(eval_steps, [e.seconds for e in evaluations])
    result["encode"] = _inference_result(encode_steps, [e[2] for e in encodings])
    result["peak_rss_with_inference_mib"] = peak_rss_mib()
    return result


def _inference_result(real_steps, seconds):
    return {
        "real_steps": real_steps,
        "seconds": seconds,
        "warmup_seconds": seconds[0],
        "timed_seconds": min(seconds),
        "real_steps_per_s": real_steps / min(seconds),
    }


def torch_autoencoder(arch):
    """seqmask's autoencoder for `arch` in plain torch: (x, lengths, real) -> reconstruction.

    x (batch, time, features) post-padded, lengths (batch,) int64, real (batch, time) bool.
    The backward direction of a bidirectional encoder is an ordinary LSTM run over each
    sequence reversed by its own length (a gather), as seqmask's is. The stock alternative,
    `nn.LSTM(bidirectional=True)` on a `pack_padded_sequence(enforce_sorted=False)`, is as
    exact but several times slower on CPU: packed input takes torch's step-by-step native
    kernel instead of oneDNN's. Unpacked `bidirectional=True` is fast but wrong here: its
    backward direction would start in the padding. With post padding a forward LSTM's
    state at the last real step never sees a padded step, so both directions run on padded
    tensors and the padding needs no clearing; pooling and the input statistics mask it out.
    """
    import torch
    from torch import nn

    def dropout(rate):  # no layer at all at rate 0, as seqmask builds none
        return nn.Dropout(rate) if rate else nn.Identity()

    def take(x, index):  # x (batch, time, d) reordered along time by index (batch, time)
        return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    def reverse_index(lengths, time):  # (batch, time): each sequence's real steps reversed
        t = torch.arange(time).unsqueeze(0)
        last = (lengths - 1).unsqueeze(1)
        return torch.where(t <= last, last - t, t)  # padded steps stay where they are

    def pooled(h, real):  # h (batch, time, units), real (batch, time) -> each (batch, units)
        padded = ~real.unsqueeze(-1)
        stats = []
        if "mean" in arch.pools:
            stats.append(h.masked_fill(padded, 0.0).sum(1) / real.sum(1, keepdim=True))
        if "max" in arch.pools:
            stats.append(h.masked_fill(padded, float("-inf")).amax(1))
        return stats

    def step_positions(time, size):  # (1, time, size): seqmask's StepPositions for post padding
        # ω_k = π · 5000^(-k / (size/2 - 1)); [sin(ω t), cos(ω t)] (padded steps: the loss ignores them)
        half = size // 2
        omega = torch.pi * torch.exp(-math.log(5000.0) * torch.arange(half) / max(half - 1, 1))
        angle = torch.arange(time, dtype=torch.float32)[:, None] * omega  # (time, half)
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).unsqueeze(0)

    def input_statistics(x, real):  # x (batch, time, f) -> (batch, 4 f): [mean, std, min, max] per feature
        # seqmask's MaskedPooling(("mean", "std", "min", "max")) on the encoder input: over
        # the real steps, std = sqrt(population variance + 1e-6).
        padded = ~real.unsqueeze(-1)
        count = real.sum(1, keepdim=True).to(x.dtype)  # (batch, 1), at least 1
        mean = x.masked_fill(padded, 0.0).sum(1) / count
        variance = (x - mean.unsqueeze(1)).square().masked_fill(padded, 0.0).sum(1) / count
        return torch.cat(
            [
                mean,
                torch.sqrt(variance + 1e-6),
                x.masked_fill(padded, float("inf")).amin(1),
                x.masked_fill(padded, float("-inf")).amax(1),
            ],
            dim=-1,
        )

    directions = 2 if arch.bidirectional else 1

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            # One unidirectional LSTM per layer and direction; past layer 0 each reads
            # [forward, backward] at every step, in its own order, as in seqmask.
            widths = [NUM_FEATURES] + [directions * arch.units] * (arch.num_layers - 1)
            self.layers = nn.ModuleList(
                nn.ModuleList(nn.LSTM(w, arch.units, batch_first=True) for _ in range(directions)) for w in widths
            )
            self.input_dropout = dropout(arch.input_dropout)
            # One layer object serves every place it is applied: each call draws its own mask,
            # so each direction's input gets its own, as seqmask's per-direction layers do.
            self.between = dropout(arch.dropout)
            self.summary_dropout = dropout(arch.dropout)

        def forward(self, x, lengths, real):
            x = self.input_dropout(x)
            if self.training and arch.input_noise:
                x = x + arch.input_noise * torch.randn_like(x)
            reverse = reverse_index(lengths, x.shape[1]) if arch.bidirectional else None
            inputs = [x, take(x, reverse)] if arch.bidirectional else [x]
            for i, lstms in enumerate(self.layers):
                outputs = [lstm(h)[0] for lstm, h in zip(lstms, inputs, strict=True)]  # each (batch, time, units)
                if i == arch.num_layers - 1:
                    break
                if arch.bidirectional:
                    both = torch.cat([outputs[0], take(outputs[1], reverse)], dim=-1)  # (batch, time, 2 units)
                    outputs = [both, take(both, reverse)]
                inputs = [self.between(h) for h in outputs]
            rows = torch.arange(x.shape[0])
            # Each direction's state at its last real step; the backward one has read back to step 0.
            summary = [h[rows, lengths - 1] for h in outputs]  # each (batch, units)
            for h in outputs:  # the backward outputs are in reversed order; a pool does not care
                summary += pooled(h, real)
            if arch.input_stats:  # last, of the input as the LSTMs read it (after input dropout and noise)
                summary.append(input_statistics(x, real))
            return self.summary_dropout(torch.cat(summary, dim=-1))  # (batch, k * units)

    class Autoencoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()
            summary_width = directions * arch.units * (1 + len(arch.pools))
            summary_width += 4 * NUM_FEATURES if arch.input_stats else 0  # [mean, std, min, max] per feature
            self.latent = nn.Linear(summary_width, arch.latent_dim)
            self.decoder = nn.LSTM(
                arch.latent_dim + arch.decoder_positions,
                arch.decoder_units,
                num_layers=arch.num_layers,
                batch_first=True,
            )
            self.output = nn.Linear(arch.decoder_units, NUM_FEATURES)

        def forward(self, x, lengths, real):
            latent = self.latent(self.encoder(x, lengths, real))  # (batch, latent)
            repeated = latent.unsqueeze(1).expand(-1, x.shape[1], -1)  # (batch, time, latent)
            if arch.decoder_positions:
                positions = step_positions(x.shape[1], arch.decoder_positions).expand(x.shape[0], -1, -1)
                repeated = torch.cat([repeated, positions], dim=-1)  # (batch, time, latent + P)
            decoded, _ = self.decoder(repeated)  # (batch, time, decoder units)
            return self.output(decoded)  # (batch, time, features)

    return Autoencoder()


def torch_optimizer(model, arch):
    """Adam, or AdamW (decoupled weight decay) when weight decay is on, as seqmask picks."""
    import torch

    if arch.weight_decay:
        return torch.optim.AdamW(model.parameters(), lr=arch.learning_rate, weight_decay=arch.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=arch.learning_rate)


def child_torch(spec):
    """The same autoencoder and loss in torch, bucketed like seqmask."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(SEED)
    import_rss = peak_rss_mib()
    arch = Architecture(**spec["architecture"])

    values, lengths = read_workload(spec["data"])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    # Batches are padded to their exact longest length; seqmask rounds up to a multiple of
    # 8 (fewer distinct shapes to trace), so it does slightly more padded work than this.
    model = torch_autoencoder(arch)
    optimizer = torch_optimizer(model, arch)

    epoch_seconds, epoch_loss = [], None
    for epoch in range(1, spec["epochs"] + 1):
        started = time.perf_counter()
        total, count = 0.0, 0.0
        # Padding happens inside the timed loop, as it does in seqmask's.
        for indices in bucket_batches(lengths, arch.batch_size, SEED, epoch):
            x, batch_lengths = pad_batch(values, offsets, lengths, indices)
            x, batch_lengths = torch.from_numpy(x), torch.from_numpy(batch_lengths)
            real = torch.arange(x.shape[1]).unsqueeze(0) < batch_lengths.unsqueeze(1)  # (batch, time)
            mask = real.float()
            # The target is the clean input: any input noise is added inside the model.
            errors = ((model(x, batch_lengths, real) - x) ** 2).mean(dim=-1)  # (batch, time)
            batch_total, batch_count = (errors * mask).sum(), mask.sum()
            loss = batch_total / batch_count  # the batch's exact mean over its real steps
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if arch.clip_norm is not None:  # seqmask clips the global norm (Keras's global_clipnorm)
                torch.nn.utils.clip_grad_norm_(model.parameters(), arch.clip_norm)
            optimizer.step()
            total, count = total + batch_total.item(), count + batch_count.item()
        epoch_seconds.append(time.perf_counter() - started)
        epoch_loss = total / count

    result = timed_rate(int(lengths.sum()), epoch_seconds)
    result.update(
        final_loss=epoch_loss,
        threads=torch.get_num_threads(),
        import_rss_mib=import_rss,
        peak_rss_mib=peak_rss_mib(),
    )
    return result


def child_keras(spec):
    """What a user writes without seqmask: pad to 400, Masking(0.0), model.fit.

    The issue's plain model (`spec["architecture"]` is already `seed_style()`): its shape
    follows the workload's, none of the options apply.
    """
    import keras

    keras.utils.set_random_seed(SEED)
    import_rss = peak_rss_mib()
    arch = Architecture(**spec["architecture"])
    values, lengths = read_workload(spec["data"])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    x, _ = pad_batch(values, offsets, lengths, np.arange(len(lengths)))
    x = np.pad(x, ((0, 0), (0, MAX_LEN - x.shape[1]), (0, 0)))  # everything to 400, post

    last = arch.num_layers - 1
    model = keras.Sequential(
        [
            keras.Input((MAX_LEN, NUM_FEATURES)),
            keras.layers.Masking(0.0),
            *(keras.layers.LSTM(arch.units, return_sequences=i < last) for i in range(arch.num_layers)),
            keras.layers.Dense(arch.latent_dim),
            keras.layers.RepeatVector(MAX_LEN),  # drops the mask: the decoder runs over padding
            *(keras.layers.LSTM(arch.decoder_units, return_sequences=True) for _ in range(arch.num_layers)),
            keras.layers.Dense(NUM_FEATURES),  # on the 3-D tensor, not TimeDistributed
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(arch.learning_rate), loss="mse")

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    timer = EpochTimer()
    history = model.fit(
        x, x, batch_size=arch.batch_size, epochs=spec["epochs"], shuffle=True, verbose=0, callbacks=[timer]
    )
    result = timed_rate(int(lengths.sum()), timer.seconds)
    result.update(
        final_loss=float(history.history["loss"][-1]),  # averaged over padded steps too
        jit_compile=bool(model.jit_compile),  # what Keras's default ("auto") chose
        import_rss_mib=import_rss,
        peak_rss_mib=peak_rss_mib(),
    )
    return result


def child_csv(spec):
    """One reader on the CSV, best of `repeats`; the module is imported before timing."""
    if spec["reader"] == "seqmask":
        from seqmask.data.readers import read_sequences

        def read():
            return read_sequences(spec["path"], format="csv", id_column="id", step_column="step")

        def size(seqs):
            return len(seqs), seqs.num_steps
    else:
        import pandas

        def read():
            return pandas.read_csv(spec["path"])

        def size(frame):  # pandas does not group rows into sequences: counted outside the timing
            return frame["id"].nunique(), len(frame)

    times = []
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        loaded = read()
        times.append(time.perf_counter() - started)
    sequences, rows = size(loaded)
    return {
        "seconds": times,
        "best_seconds": min(times),
        "sequences": int(sequences),
        "rows": int(rows),
        "peak_rss_mib": peak_rss_mib(),
    }


CHILDREN = {
    "sgemm": child_sgemm,
    "seqmask": child_seqmask,
    "torch": child_torch,
    "keras": child_keras,
    "csv": child_csv,
}


# --------------------------------------------------------------------------- the parent


def run_child(name, spec):
    """Runs `CHILDREN[name](spec)` in a fresh interpreter; its dict, or {"error": ...}."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--spec", json.dumps(spec)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        print(f"    FAILED (exit {proc.returncode}) after {wall:.1f} s:\n{_indent(tail)}", flush=True)
        return {"error": f"exit {proc.returncode}", "stderr_tail": tail, "wall_seconds": wall}
    result = json.loads(lines[-1][len(RESULT_MARKER) :])
    # The 1-minute load average before and after: other work on the machine shows up here.
    result.update(wall_seconds=wall, load_before=load_before, load_after=os.getloadavg()[0])
    print(f"    done in {wall:.1f} s (load average {load_before:.2f} -> {result['load_after']:.2f})", flush=True)
    return result


def _indent(text, prefix="      "):
    return "\n".join(prefix + line for line in text.splitlines())


THREAD_SETTINGS = ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def environment(mode):
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "mode": mode.name,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "torch": version("torch"),
        "pandas": version("pandas"),
        "pyarrow": version("pyarrow"),
        "seqmask": version("seqmask"),
        "torch_threads": TORCH_THREADS,
        "load_average_1min": os.getloadavg()[0],
        # Deliberate settings of the machine, shown so a reader knows they were in force.
        "env": {k: os.environ[k] for k in THREAD_SETTINGS if k in os.environ},
    }


def run_all(mode, only, workdir, arch, overrides):
    """Runs the selected contenders one after another; returns {name: result}.

    seqmask gets the `--set` overrides and resolves its own config from them; the PyTorch
    reference gets the architecture that resolves to, naive Keras its plain version.
    """
    results = {}
    data = workdir / "workload.npz"
    total_steps = None
    if {"seqmask", "torch", "keras"} & only:
        total_steps = write_workload(data, mode.sequences)
        print(f"workload: {mode.sequences} sequences, {total_steps} real steps, {data}", flush=True)
    training = {"data": str(data), "epochs": mode.epochs}

    steps = [
        ("sgemm", f"sgemm peak ({SGEMM_SIZE}x{SGEMM_SIZE} float32, numpy)", {"size": SGEMM_SIZE, "repeats": 5}),
        (
            "seqmask",
            f"seqmask train ({mode.epochs} epochs) + evaluate + encode",
            {**training, "run_dir": str(workdir / "run"), "repeats": mode.repeats, "overrides": overrides},
        ),
        (
            "torch",
            f"PyTorch reference ({mode.epochs} epochs, {TORCH_THREADS} threads)",
            {**training, "architecture": asdict(arch)},
        ),
        (
            "keras",
            f"naive Keras, padded to {MAX_LEN} ({mode.epochs} epochs)",
            {**training, "architecture": asdict(arch.seed_style())},
        ),
    ]
    for name, title, spec in steps:
        if name in only:
            print(f"  running {title} ...", flush=True)
            results[name] = run_child(name, spec)

    if "csv" in only:
        path = workdir / "long.csv"
        rows, sequences = write_long_csv(path, mode.csv_rows)
        print(f"  CSV: {rows} rows, {sequences} sequences, {path.stat().st_size / 2**20:.1f} MiB", flush=True)
        results["csv"] = {}
        for reader in ("seqmask", "pandas"):
            print(f"  running CSV load with {reader} (best of {mode.repeats}) ...", flush=True)
            results["csv"][reader] = run_child("csv", {"path": str(path), "reader": reader, "repeats": mode.repeats})
        results["csv"]["rows"] = rows
    return results


# --------------------------------------------------------------------------- reporting


def _ok(result):
    return bool(result) and "error" not in result


def contender_flops(arch):
    """FLOP per real step of each training contender's own model: naive Keras's is the plain one."""
    return {"seqmask": flop_per_step(arch), "torch": flop_per_step(arch), "keras": flop_per_step(arch.seed_style())}


def derived(results, flops):
    """GFLOP/s, % of the sgemm peak and the ratios, from the raw child results.

    `flops` is `contender_flops`: each row's GFLOP/s uses its own model's FLOP per step.
    """
    peak = results["sgemm"]["gflop_per_s"] if _ok(results.get("sgemm")) else None
    rows = []  # (label, result, FLOP per real step)
    if _ok(results.get("seqmask")):
        rows.append(("seqmask train", results["seqmask"], flops["seqmask"]["train"]))
    if _ok(results.get("torch")):
        rows.append(("PyTorch train (reference)", results["torch"], flops["torch"]["train"]))
    if _ok(results.get("keras")):
        rows.append((f"naive Keras train (pad {MAX_LEN})", results["keras"], flops["keras"]["train"]))
    if _ok(results.get("seqmask")):
        rows.append(("seqmask evaluate", results["seqmask"]["evaluate"], flops["seqmask"]["forward"]))
        rows.append(("seqmask encode", results["seqmask"]["encode"], flops["seqmask"]["encoder"]))
    table = []
    for label, result, flop in rows:
        gflops = result["real_steps_per_s"] * flop / 1e9 if result["real_steps_per_s"] else None
        table.append(
            {
                "label": label,
                "real_steps_per_s": result["real_steps_per_s"],
                "flop_per_step": flop,
                "gflop_per_s": gflops,
                "percent_of_peak": 100 * gflops / peak if gflops and peak else None,
                "warmup_seconds": result.get("warmup_seconds"),
                "timed_seconds": result.get("timed_seconds"),
                "peak_rss_mib": result.get("peak_rss_mib"),
                "final_loss": result.get("final_loss"),
            }
        )

    ratios = {}
    seqmask = results.get("seqmask")
    for name in ("torch", "keras"):
        if _ok(seqmask) and _ok(results.get(name)) and results[name]["real_steps_per_s"]:
            ratios[f"seqmask/{name}"] = seqmask["real_steps_per_s"] / results[name]["real_steps_per_s"]
    csv_results = results.get("csv", {})
    if _ok(csv_results.get("seqmask")) and _ok(csv_results.get("pandas")):
        seconds = {reader: csv_results[reader]["best_seconds"] for reader in ("seqmask", "pandas")}
        ratios["csv seqmask/pandas (time)"] = seconds["seqmask"] / seconds["pandas"]
    return {"peak_gflop_per_s": peak, "table": table, "ratios": ratios}


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_table(headers, rows):
    """Plain aligned text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for k, row in enumerate([headers, *rows]):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(map(str, row), widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_report(arch, mode, flops, results, report):
    print()
    ours, plain = flops["seqmask"], flops["keras"]
    print(
        f"FLOP per real step, seqmask and PyTorch: train {ours['train']:,} (3 x forward {ours['forward']:,}); "
        f"evaluate {ours['forward']:,}; encode {ours['encoder']:,}. Naive Keras (plain model): train {plain['train']:,}"
    )
    peak = report["peak_gflop_per_s"]
    print(f"sgemm peak (numpy float32 {SGEMM_SIZE}^3): {_fmt(peak, '.1f')} GFLOP/s")
    if _ok(results.get("seqmask")):
        s = results["seqmask"]
        print(
            f"seqmask: device {s.get('device')}, LSTM {s.get('lstm_kernel')}, "
            f"padding fraction of its batches {_fmt(s.get('padding_fraction'), '.3f')}"
        )
        if s.get("architecture") != asdict(arch):
            # The reference mirrored what the parent resolved; the child trained something else.
            print(f"WARNING: seqmask trained {s.get('architecture')}, the PyTorch reference {asdict(arch)}")
    if _ok(results.get("keras")):
        print(f"naive Keras: jit_compile {results['keras'].get('jit_compile')} (Keras's default choice)")
    for name in ("sgemm", "seqmask", "torch", "keras"):
        if name in results and not _ok(results[name]):
            print(f"{name}: FAILED ({results[name]['error']}); see the output above")

    headers = ["", "real steps/s", "kFLOP/step", "GFLOP/s", "% sgemm", "warm-up s", "timed s", "peak RSS MiB", "loss"]
    rows = [
        [
            r["label"],
            _fmt(r["real_steps_per_s"], ",.0f"),
            _fmt(r["flop_per_step"] / 1e3, ".1f"),
            _fmt(r["gflop_per_s"], ".2f"),
            _fmt(r["percent_of_peak"], ".1f"),
            _fmt(r["warmup_seconds"], ".2f"),
            _fmt(r["timed_seconds"], ".2f"),
            _fmt(r["peak_rss_mib"], ".0f"),
            _fmt(r["final_loss"], ".4f"),
        ]
        for r in report["table"]
    ]
    if rows:
        print()
        print(format_table(headers, rows))
        print(
            "  train: real steps/s over epochs 2..N (epoch 1 = warm-up); evaluate/encode: best of "
            f"{mode.repeats} calls (each call traces once; warm-up = the first call).\n"
            "  loss: the last epoch's training loss (naive Keras averages over padded steps too).\n"
            "  peak RSS: the whole subprocess, imports included (seqmask's: training only)."
        )

    if report["ratios"]:
        print()
        for key, label in (("seqmask/torch", "seqmask / PyTorch"), ("seqmask/keras", "seqmask / naive Keras")):
            if key in report["ratios"]:
                print(f"{label:<24} {report['ratios'][key]:6.2f}x  (real steps/s; > 1: seqmask faster)")
        if "seqmask/keras" in report["ratios"] and arch != arch.seed_style():
            print("  (naive Keras trains the plain model, without seqmask's options: not like for like)")

    csv_results = results.get("csv")
    if csv_results:
        print()
        print(f"CSV load, {csv_results['rows']:,} rows x {NUM_FEATURES} features (best of {mode.repeats}):")
        for reader, label in (("seqmask", "seqmask read_sequences"), ("pandas", "pandas.read_csv")):
            r = csv_results[reader]
            if _ok(r):
                print(f"  {label:<24} {r['best_seconds']:8.3f} s   peak RSS {r['peak_rss_mib']:.0f} MiB")
            else:
                print(f"  {label:<24} FAILED ({r['error']})")
        ratio = report["ratios"].get("csv seqmask/pandas (time)")
        if ratio is not None:
            print(f"  seqmask / pandas time    {ratio:8.2f}x  (< 1: seqmask faster)")


# --------------------------------------------------------------------------- entry point


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1024 sequences, 3 epochs, 200k CSV rows (a few minutes)")
    size.add_argument("--tiny", action="store_true", help="128 sequences, 2 epochs, 20k CSV rows (smoke test only)")
    names = ",".join(CONTENDERS)
    parser.add_argument("--only", default=names, help=f"comma-separated subset of {names}")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        dest="overrides",
        help=f"set a seqmask config key, mirrored by the PyTorch reference (repeatable): {', '.join(SETTABLE)}",
    )
    # Internal: how the parent starts a contender in a subprocess.
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(CONTENDERS)
    if unknown or not only:
        parser.error(f"--only takes a comma-separated subset of {','.join(CONTENDERS)}; got {args.only!r}")
    args.only = only
    if not args.child:
        args.arch = _architecture_or_exit(parser, args.overrides)
    return args


def _architecture_or_exit(parser, overrides):
    """The Architecture the overrides resolve to; a usage error for a key the reference does not
    mirror (the comparison would no longer be like for like) or a value seqmask refuses."""
    from seqmask.errors import ConfigError

    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in SETTABLE:
            parser.error(f"--set {item!r}: the PyTorch reference mirrors only {', '.join(SETTABLE)}")
    try:
        return Architecture.from_config(resolve("workload.npz", 1, overrides))
    except ConfigError as e:
        parser.error(str(e))


def print_header(env, mode, only, arch, overrides):
    contenders = ", ".join(c for c in CONTENDERS if c in only)
    print(
        f"seqmask benchmark, mode {mode.name}: {mode.sequences} sequences, {mode.epochs} epochs "
        f"(first = warm-up), CSV {mode.csv_rows:,} rows; contenders: {contenders}"
    )
    print(f"cpu: {env['cpu']} ({env['cpu_count']} CPUs, {env['usable_cpus']} usable); python {env['python']}")
    print(
        f"versions: seqmask {env['seqmask']}, tensorflow {env['tensorflow']}, keras {env['keras']}, "
        f"torch {env['torch']} ({TORCH_THREADS} threads), numpy {env['numpy']}, pandas {env['pandas']}, "
        f"pyarrow {env['pyarrow']}"
    )
    if env["env"]:
        print("environment: " + ", ".join(f"{k}={v}" for k, v in env["env"].items()))
    load, cpus = env["load_average_1min"], env["usable_cpus"]
    print(f"load average (1 min): {load:.2f}")
    if load > 0.5 * cpus:
        # Each contender runs alone, but anything else on the machine takes cores from it:
        # throughputs drop and the ratios move with whatever ran when.
        print(f"WARNING: the machine is busy (load {load:.2f} on {cpus} CPUs): figures will be low and noisy")
    print(f"architecture (seqmask and PyTorch): {arch.describe()}")
    sources = option_sources(arch, overrides)
    print("options: " + ", ".join(f"{key} {value} ({source})" for key, (value, source) in sources.items()))
    print(flush=True)


def option_sources(arch, overrides):
    """{option key: (value in force, "--set" or "seqmask default")}."""
    set_keys = {item.partition("=")[0].strip() for item in overrides}
    return {
        key: (getattr(arch, key.split(".")[1]), "--set" if key in set_keys else "seqmask default") for key in OPTIONS
    }


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # inside a contender's subprocess: run it, report one JSON line
        result = CHILDREN[args.child](json.loads(args.spec))
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0

    mode = MODES["quick" if args.quick else "tiny" if args.tiny else "full"]
    env = environment(mode)
    arch = args.arch
    flops = contender_flops(arch)
    print_header(env, mode, args.only, arch, args.overrides)

    with tempfile.TemporaryDirectory(prefix="seqmask-bench-") as tmp:
        results = run_all(mode, args.only, Path(tmp), arch, args.overrides)
    report = derived(results, flops)
    print_report(arch, mode, flops, results, report)

    if args.json:
        payload = {
            "environment": env,
            "mode": asdict(mode),
            "architecture": asdict(arch),
            "overrides": args.overrides,
            "options": {k: {"value": v, "source": src} for k, (v, src) in option_sources(arch, args.overrides).items()},
            "seqmask_option_defaults": seqmask_defaults(),
            "flop_per_step": flops,
            "results": results,
            **report,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    failed = [n for n, r in results.items() if n != "csv" and not _ok(r)]
    failed += [f"csv {n}" for n, r in results.get("csv", {}).items() if isinstance(r, dict) and not _ok(r)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
