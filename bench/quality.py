"""Quality benchmark: are seqmask's latent vectors and reconstructions any good on real data?

What is measured
----------------
For each dataset and each seed, in one process, one after another:

* ``seqmask``        seqmask with the default config at a fixed budget: ``train.epochs`` =
                     ``--epochs`` (60), ``train.patience: 0`` (never stops early).
* ``seqmask_early``  seqmask with the default config as it is: early stopping (patience 20)
                     under the default ceiling of 200 epochs.
* ``naive``          the seed-style Keras autoencoder a user writes first: every sequence
                     padded with zeros to the longest, ``Masking(0.0)``, LSTM(64) ->
                     Dense(32) (the latent vector) -> ``RepeatVector`` -> LSTM(64, return
                     sequences) -> Dense(features), ``model.fit`` for ``--epochs`` epochs,
                     batch 32, Adam at 0.002, MSE (over padded steps too, as Keras computes it).
* ``stats``          summary statistics: mean, std, min and max of each feature over the
                     real steps of a sequence.
* ``minirocket``     sktime's ``MiniRocketMultivariateVariable`` (the variable-length
                     MiniRocket, 10 000 kernels asked for, 9 996 used, a multiple of 84;
                     ``random_state`` = seed), on the standardized data, fitted on the
                     training split; sequences shorter than its minimum of 9 steps are
                     padded with 0.0 by its own ``pad_value_short_series``.

Every method's features go through one **linear probe**: scikit-learn's
``LogisticRegression`` (lbfgs, C = 1, ``max_iter`` 5000) on ``StandardScaler``-ed features,
both fitted on the training split (all of it) and scored as accuracy on the test split. The
autoencoders' features are their latent vectors (seqmask: ``encode`` on the ``best``
checkpoint; naive: the Dense(32) output).

**Reconstruction R²** (the three autoencoders) = 1 - MSE over the real steps of the test
split, in standardized units. Both seqmask and the naive model see the data standardized
per feature with the mean and population std over the real steps of the same training
part, so one unit of every feature is its training standard deviation and a model that
predicts the training mean everywhere scores about 0. seqmask standardizes by itself (its
default ``data.normalize: standard``) and its R² is ``1 - evaluate(run, test).loss``, the
exact masked MSE; the naive model gets the same statistics computed here, and its MSE is
taken over the same real test steps only (never the padding).

**Training seconds** are the wall-clock time of ``seqmask.train.train`` or of
``model.fit``; for MiniRocket, of fitting and transforming; the probe is not counted.

The data
--------
Every dataset is a UCR/UEA classification set bundled inside the installed sktime package
(``sktime/datasets/data``), read from its ``.ts`` files: nothing is downloaded. The train
and test splits are the archive's own. To make the data variable-length (so that masking
matters), every sequence of both splits is cropped to a random contiguous window: with a
generator seeded by ``(seed, crc32(dataset name))``, its length is drawn uniformly from the
integers ``ceil(L/2) .. L`` (``L``: the sequence's length after any downsampling) and its
start uniformly from the positions where it fits. Where a dataset would be too long for the
whole run's time budget its series are first downsampled by averaging ``downsample``
consecutive steps (see ``DATASETS``; the output says so). Each seed then holds out 20 % of
the training split (``round(0.2 n)`` sequences, drawn with ``numpy.random.default_rng(seed)``)
as seqmask's validation data (``data.validation``); both autoencoders train on the other
80 %, and the standardization statistics come from it.

Usage (from the repository root)::

    .venv/bin/python bench/quality.py                       # full: six datasets, seeds 0,1,2
    .venv/bin/python bench/quality.py --quick               # smoke run: 2 datasets, 1 seed, 3 epochs
    .venv/bin/python bench/quality.py --datasets GunPoint,BasicMotions --seeds 0
    .venv/bin/python bench/quality.py --only seqmask,stats --set model.units=128 --output runs/u128

Output: per table, one row per dataset with the mean ± sample std (ddof 1) over seeds, and
a mean row: the mean over datasets taken per seed first, then mean ± std over seeds.

``--set section.key=value`` (repeatable) overrides the config of both seqmask variants, as
``seqmask train --set`` does. Results: a Markdown file and a JSON file with every per-seed
number, at ``--output`` (default ``bench/quality_results``) + ``.md`` / ``.json``.

Needs the ``bench`` extras: sktime (with numba) and scikit-learn.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow

import numpy as np  # noqa: E402

METHODS = ("stats", "minirocket", "naive", "seqmask", "seqmask_early")
AUTOENCODERS = ("naive", "seqmask", "seqmask_early")
LABELS = {
    "stats": "summary stats",
    "minirocket": "MiniRocket",
    "naive": "naive Keras",
    "seqmask": "seqmask (fixed)",
    "seqmask_early": "seqmask (early stop)",
}
VALIDATION_FRACTION = 0.2
PROBE_MAX_ITER = 5000
MINIROCKET_KERNELS = 10_000
# The naive model, as the brief's seed code writes it; seqmask's defaults have the same shape.
NAIVE_UNITS, NAIVE_LATENT, NAIVE_BATCH, NAIVE_LR = 64, 32, 32, 0.002


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    downsample: int = 1  # average this many consecutive steps into one (1: as shipped)
    max_train: int | None = None  # keep at most this many training sequences (fixed subsample)
    max_test: int | None = None


# Six bundled sets, none of them reserved: univariate and multivariate, short and long.
DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec("ItalyPowerDemand"),
        DatasetSpec("GunPoint"),
        DatasetSpec("ArrowHead"),
        DatasetSpec("BasicMotions"),
        DatasetSpec("OSULeaf"),
        DatasetSpec("ACSF1", downsample=2),
    )
}
QUICK_DATASETS = ("ItalyPowerDemand", "BasicMotions")


# --------------------------------------------------------------------------- data


@dataclass
class Split:
    """Variable-length sequences (a list of (length, features) float64 arrays) and labels."""

    seqs: list
    labels: np.ndarray

    def subset(self, idx):
        return Split([self.seqs[i] for i in idx], self.labels[idx])

    @property
    def lengths(self):
        return np.array([len(s) for s in self.seqs])


def sktime_data_dir():
    import sktime

    return Path(sktime.__file__).parent / "datasets" / "data"


def read_ts(path):
    """(list of (L, C) arrays, labels) from one bundled .ts file."""
    from sktime.datasets import load_from_tsfile

    X, y = load_from_tsfile(str(path), return_data_type="numpy3D")  # (n, C, L)
    return [np.asarray(x, np.float64).T for x in X], np.asarray(y).astype(str)


def downsample(seq, factor):
    """Means of `factor` consecutive steps (a trailing remainder is dropped)."""
    if factor == 1:
        return seq
    n = len(seq) // factor
    return seq[: n * factor].reshape(n, factor, -1).mean(axis=1)


def fixed_subsample(split, limit, name):
    """At most `limit` sequences, the same ones for every seed."""
    if limit is None or len(split.seqs) <= limit:
        return split
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return split.subset(np.sort(rng.choice(len(split.seqs), limit, replace=False)))


def load_dataset(spec):
    """(train, test) Splits of a bundled dataset, downsampled and subsampled as `spec` says."""
    folder = sktime_data_dir() / spec.name
    parts = []
    for part, limit in (("TRAIN", spec.max_train), ("TEST", spec.max_test)):
        seqs, labels = read_ts(folder / f"{spec.name}_{part}.ts")
        # Rounded to float32 once: the NPZ files hold exactly these values, so the
        # statistics computed here are the ones seqmask computes from the files.
        seqs = [downsample(s, spec.downsample).astype(np.float32).astype(np.float64) for s in seqs]
        split = Split(seqs, labels)
        parts.append(fixed_subsample(split, limit, f"{spec.name}/{part}"))
    return parts[0], parts[1]


def crop_rng(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def random_crops(split, rng):
    """Each sequence cut to a random window of ceil(L/2) .. L steps (uniform), start uniform."""
    out = []
    for seq in split.seqs:
        full = len(seq)
        length = int(rng.integers(math.ceil(full / 2), full + 1))
        start = int(rng.integers(0, full - length + 1))
        out.append(seq[start : start + length])
    return Split(out, split.labels)


def holdout(n, seed):
    """(train part, validation part) indices: round(0.2 n) held out, seeded by `seed`."""
    n_val = min(max(int(round(VALIDATION_FRACTION * n)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def standardizer(split):
    """Per-feature mean and population std over the real steps (a constant feature: std 1)."""
    x = np.concatenate(split.seqs).astype(np.float64)
    std = x.std(axis=0)
    std = np.where((x.max(axis=0) == x.min(axis=0)) | ~(std > 0), 1.0, std)
    return x.mean(axis=0), std


def standardized(split, stats):
    mean, std = stats
    return Split([(s - mean) / std for s in split.seqs], split.labels)


def write_npz(path, split):
    np.savez(
        path,
        values=np.concatenate(split.seqs).astype(np.float32),
        lengths=split.lengths.astype(np.int64),
        ids=np.array([f"s{i}" for i in range(len(split.seqs))]),
    )
    return str(path)


def describe(spec, train, test):
    lengths = np.concatenate([train.lengths, test.lengths])
    return {
        "name": spec.name,
        "package": f"sktime {importlib.metadata.version('sktime')}",
        "features": int(train.seqs[0].shape[1]),
        "classes": int(len(np.unique(train.labels))),
        "train": len(train.seqs),
        "test": len(test.seqs),
        "length": int(lengths.max()),
        "downsample": spec.downsample,
        "max_train": spec.max_train,
        "max_test": spec.max_test,
    }


# --------------------------------------------------------------------------- probe


def probe(train_features, train_labels, test_features, test_labels):
    """Test accuracy of a logistic regression on standardized features, fitted on train."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(train_features, train_labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    accuracy = float(np.mean(model.predict(test_features) == test_labels))
    return {"accuracy": accuracy, "probe_converged": converged}


# --------------------------------------------------------------------------- methods


@dataclass
class Trial:
    """Everything one (dataset, seed) gives every method."""

    name: str
    seed: int
    train: Split  # the whole (cropped) training split: the probe's fitting data
    test: Split
    fit_idx: np.ndarray  # the autoencoders' training part of `train`
    val_idx: np.ndarray  # seqmask's validation part
    stats: tuple  # standardization of the training part
    files: dict  # NPZ paths: fit, val, train, test (raw cropped values)
    work: Path


def run_stats(trial, opts):
    started = time.perf_counter()

    def features(split):
        return np.stack([np.concatenate([s.mean(0), s.std(0), s.min(0), s.max(0)]) for s in split.seqs])

    train_x, test_x = features(trial.train), features(trial.test)
    seconds = time.perf_counter() - started
    return {**probe(train_x, trial.train.labels, test_x, trial.test.labels), "seconds": seconds}


def _df_list(split):
    import pandas as pd

    return [pd.DataFrame(s) for s in split.seqs]


def warm_up_minirocket():
    """Compile MiniRocket's numba functions once, so no dataset's time includes it."""
    from sktime.transformations.rocket import MiniRocketMultivariateVariable

    rng = np.random.default_rng(0)
    toy = Split([rng.normal(size=(n, 2)) for n in (20, 30, 25)], np.zeros(3))
    transform = MiniRocketMultivariateVariable(num_kernels=84, pad_value_short_series=0.0, random_state=0)
    transform.fit(_df_list(toy))
    transform.transform(_df_list(toy))


def warm_up_tensorflow(work, opts):
    """Import TensorFlow, load seqmask's kernel and trace Keras once, outside every timing."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras's retracing notes: every trial builds new models
    rng = np.random.default_rng(0)
    toy = Split(
        [rng.normal(size=(n, 2)).astype(np.float32).astype(np.float64) for n in (12, 20, 16, 9)],
        np.array(["a", "b", "a", "b"]),
    )
    work.mkdir(parents=True, exist_ok=True)
    files = {"fit": write_npz(work / "fit.npz", toy), "val": write_npz(work / "val.npz", toy)}
    files["train"] = files["test"] = files["fit"]
    trial = Trial("warm-up", 0, toy, toy, np.arange(4), np.arange(4), standardizer(toy), files, work)
    quiet = argparse.Namespace(**{**vars(opts), "epochs": 1, "set": []})
    if "naive" in opts.only:
        run_naive(trial, quiet)
    if {"seqmask", "seqmask_early"} & set(opts.only):
        run_seqmask(trial, quiet)
    shutil.rmtree(work, ignore_errors=True)


def run_minirocket(trial, opts):
    from sktime.transformations.rocket import MiniRocketMultivariateVariable

    train, test = standardized(trial.train, trial.stats), standardized(trial.test, trial.stats)
    transform = MiniRocketMultivariateVariable(
        num_kernels=MINIROCKET_KERNELS, pad_value_short_series=0.0, random_state=trial.seed, n_jobs=-1
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "X is univariate, consider MiniRocket"
        transform.fit(_df_list(train))
        train_x = transform.transform(_df_list(train)).to_numpy()
        test_x = transform.transform(_df_list(test)).to_numpy()
    seconds = time.perf_counter() - started
    return {**probe(train_x, train.labels, test_x, test.labels), "seconds": seconds}


def padded(split, length):
    """(n, length, features) float32, zeros after each sequence's real steps."""
    out = np.zeros((len(split.seqs), length, split.seqs[0].shape[1]), np.float32)
    for i, s in enumerate(split.seqs):
        out[i, : len(s)] = s
    return out


def real_step_mse(predicted, split):
    """Mean over the real steps (and features) of the squared error; padding never counts."""
    total, steps = 0.0, 0
    for p, s in zip(predicted, split.seqs, strict=True):
        total += float(np.sum((p[: len(s)].astype(np.float64) - s) ** 2) / s.shape[1])
        steps += len(s)
    return total / steps


def build_naive(length, features):
    import keras

    inputs = keras.Input((length, features))
    x = keras.layers.Masking(0.0)(inputs)
    x = keras.layers.LSTM(NAIVE_UNITS)(x)
    latent = keras.layers.Dense(NAIVE_LATENT)(x)
    x = keras.layers.RepeatVector(length)(latent)  # drops the mask: the decoder runs over padding
    x = keras.layers.LSTM(NAIVE_UNITS, return_sequences=True)(x)
    outputs = keras.layers.Dense(features)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(NAIVE_LR), loss="mse")
    return model, keras.Model(inputs, latent)


def run_naive(trial, opts):
    import keras

    train, test = standardized(trial.train, trial.stats), standardized(trial.test, trial.stats)
    fit_part = train.subset(trial.fit_idx)
    length = int(max(train.lengths.max(), test.lengths.max()))
    keras.backend.clear_session()
    keras.utils.set_random_seed(trial.seed)
    model, encoder = build_naive(length, train.seqs[0].shape[1])
    x_fit = padded(fit_part, length)
    started = time.perf_counter()
    model.fit(x_fit, x_fit, epochs=opts.epochs, batch_size=NAIVE_BATCH, verbose=0)
    seconds = time.perf_counter() - started
    x_train, x_test = padded(train, length), padded(test, length)
    r2 = 1.0 - real_step_mse(model.predict(x_test, batch_size=256, verbose=0), test)
    train_z = encoder.predict(x_train, batch_size=256, verbose=0)
    test_z = encoder.predict(x_test, batch_size=256, verbose=0)
    result = {**probe(train_z, train.labels, test_z, test.labels), "r2": r2, "seconds": seconds}
    keras.backend.clear_session()
    return {**result, "epochs_run": opts.epochs, "padded_length": length}


def seqmask_config(trial, train_overrides, opts):
    from seqmask.config import apply_overrides, config_from_dict

    raw = {
        "data": {"train": trial.files["fit"], "validation": trial.files["val"]},
        "train": {"seed": trial.seed, **train_overrides},
    }
    return config_from_dict(apply_overrides(raw, opts.set), source="bench/quality.py")


def run_seqmask_variant(trial, opts, name, train_overrides):
    from seqmask.analysis.evaluate import encode, evaluate
    from seqmask.run.loaded import load_run
    from seqmask.training.loop import train

    cfg = seqmask_config(trial, train_overrides, opts)
    run_dir = trial.work / f"run_{name}"
    started = time.perf_counter()
    metrics = train(cfg, run_dir, overwrite=True)
    seconds = time.perf_counter() - started
    run = load_run(run_dir, "best")
    check_same_units(run_dir, trial.stats)
    _, train_z, _ = encode(run, trial.files["train"])
    _, test_z, _ = encode(run, trial.files["test"])
    r2 = 1.0 - float(evaluate(run, trial.files["test"]).loss)
    result = probe(train_z, trial.train.labels, test_z, trial.test.labels)
    return {
        **result,
        "r2": r2,
        "seconds": seconds,
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "best_val_loss": metrics["best_val_loss"],
        "train_seconds_in_epochs": metrics["train_seconds"],
        "lstm_kernel": metrics["lstm_kernel"],
    }


def check_same_units(run_dir, stats):
    """seqmask's saved standardization must be the one the naive model gets."""
    saved = json.loads((Path(run_dir) / "normalization.json").read_text())
    close = {"rtol": 1e-9, "atol": 1e-12}
    if not (np.allclose(saved["mean"], stats[0], **close) and np.allclose(saved["std"], stats[1], **close)):
        raise RuntimeError(f"{run_dir}: seqmask standardized with other statistics than this script")


def run_seqmask(trial, opts):
    return run_seqmask_variant(trial, opts, "fixed", {"epochs": opts.epochs, "patience": 0})


def run_seqmask_early(trial, opts):
    overrides = {} if opts.early_epochs is None else {"epochs": opts.early_epochs}
    return run_seqmask_variant(trial, opts, "early", overrides)


RUNNERS = {
    "stats": run_stats,
    "minirocket": run_minirocket,
    "naive": run_naive,
    "seqmask": run_seqmask,
    "seqmask_early": run_seqmask_early,
}


# --------------------------------------------------------------------------- driver


def make_trial(spec, seed, train, test, work):
    rng = crop_rng(seed, spec.name)
    train, test = random_crops(train, rng), random_crops(test, rng)
    fit_idx, val_idx = holdout(len(train.seqs), seed)
    work.mkdir(parents=True, exist_ok=True)
    files = {
        "fit": write_npz(work / "fit.npz", train.subset(fit_idx)),
        "val": write_npz(work / "val.npz", train.subset(val_idx)),
        "train": write_npz(work / "train.npz", train),
        "test": write_npz(work / "test.npz", test),
    }
    return Trial(spec.name, seed, train, test, fit_idx, val_idx, standardizer(train.subset(fit_idx)), files, work)


def run_trial(trial, opts):
    results = {}
    for method in opts.only:
        result = RUNNERS[method](trial, opts)
        results[method] = result
        extra = f", R² {result['r2']:.3f}" if "r2" in result else ""
        epochs = f", {result['epochs_run']} epochs" if "epochs_run" in result else ""
        print(
            f"  {trial.name} seed {trial.seed} {LABELS[method]:<21} accuracy {result['accuracy']:.3f}"
            f"{extra}, {result['seconds']:.1f} s{epochs}",
            flush=True,
        )
    return results


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def fmt(ms, digits=3):
    if ms is None:
        return "–"
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def per_seed(raw, dataset, method, key):
    return [raw[dataset][str(s)][method].get(key) for s in sorted(map(int, raw[dataset]))]


def over_datasets(raw, datasets, method, key):
    """Per seed, the mean over datasets: one number per seed for the mean row."""
    seeds = sorted(map(int, raw[datasets[0]]))
    return [float(np.mean([raw[d][str(s)][method][key] for d in datasets])) for s in seeds]


def table(raw, datasets, methods, columns, key, digits):
    head = ["dataset"] + [LABELS[m] for m in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in datasets:
        lines.append("| " + " | ".join([d] + [fmt(mean_std(per_seed(raw, d, m, key)), digits) for m in columns]) + " |")
    if len(datasets) > 1:
        cells = [fmt(mean_std(over_datasets(raw, datasets, m, key)), digits) for m in columns]
        lines.append("| **mean** | " + " | ".join(cells) + " |")
    return lines


def dataset_table(infos):
    lines = [
        "| dataset | package | features | classes | train | test | length L | crop | downsample | subsample |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in infos:
        caps = ", ".join(f"{k} {i[k]}" for k in ("max_train", "max_test") if i[k]) or "none"
        down = f"mean of {i['downsample']}" if i["downsample"] > 1 else "none"
        lines.append(
            f"| {i['name']} | {i['package']} | {i['features']} | {i['classes']} | {i['train']} | {i['test']} "
            f"| {i['length']} | ceil(L/2)..L | {down} | {caps} |"
        )
    return lines


def markdown(report):
    raw, opts, methods = report["raw"], report["options"], report["options"]["only"]
    datasets = list(raw)
    ae = [m for m in AUTOENCODERS if m in methods]
    seconds_cols = [m for m in ("minirocket", *AUTOENCODERS) if m in methods]
    lines = [
        f"Seeds {opts['seeds']}; fixed budget {opts['epochs']} epochs (seqmask and naive Keras); "
        f"early stopping: seqmask's defaults"
        + (f" with epochs {opts['early_epochs']}" if opts["early_epochs"] else "")
        + (f"; --set {' '.join(opts['set'])}" if opts["set"] else "")
        + ". Mean ± std over seeds; the mean row averages over datasets per seed first.",
        "",
        "Linear-probe test accuracy:",
        "",
        *table(raw, datasets, methods, list(methods), "accuracy", 3),
    ]
    if ae:
        lines += ["", "Reconstruction R² on the real test steps (standardized units):", ""]
        lines += table(raw, datasets, methods, ae, "r2", 3)
    if seconds_cols:
        lines += ["", "Training seconds (MiniRocket: fit + transform):", ""]
        lines += table(raw, datasets, methods, seconds_cols, "seconds", 1)
    if "seqmask_early" in methods:
        lines += ["", "Epochs run by seqmask with early stopping:", ""]
        lines += table(raw, datasets, methods, ["seqmask_early"], "epochs_run", 0)
    lines += ["", "Datasets (after caps; lengths before cropping):", "", *dataset_table(report["datasets"])]
    kernels = sorted(
        {r[m]["lstm_kernel"] for d in raw.values() for r in d.values() for m in r if "lstm_kernel" in r[m]}
    )
    lines += ["", f"Command: `{report['command']}`", f"Environment: {report['environment']}"]
    if kernels:
        lines.append(f"seqmask's LSTM: {'; '.join(kernels)}")
    return "\n".join(lines) + "\n"


def write_report(output, text, report):
    """OUTPUT.md (the Markdown `text`) and OUTPUT.json (every number in `report`)."""
    print(f"whole run: {report['wall_seconds']:.0f} s", flush=True)
    md, js = Path(output + ".md"), Path(output + ".json")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)
    js.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {md} and {js}")


def environment():
    names = ("seqmask", "tensorflow", "keras", "numpy", "sktime", "scikit-learn", "numba")
    versions = ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)
    return f"{versions}; python {platform.python_version()}; {os.cpu_count()} CPU cores"


def parse_list(text, allowed=None, what="item"):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if allowed is not None:
        unknown = [t for t in items if t not in allowed]
        if unknown:
            raise SystemExit(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"smoke run: {', '.join(QUICK_DATASETS)}, seed 0, 3 epochs")
    p.add_argument("--datasets", help=f"comma-separated, from {', '.join(DATASETS)}")
    p.add_argument("--seeds", default=None, help="comma-separated integers (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None, help="fixed budget of seqmask and naive Keras (default 60)")
    p.add_argument("--early-epochs", type=int, default=None, help="ceiling for seqmask_early (default: the config's)")
    p.add_argument("--only", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="seqmask config override for both seqmask variants (repeatable)",
    )
    p.add_argument("--output", default="bench/quality_results", help="writes OUTPUT.md and OUTPUT.json")
    p.add_argument("--keep-runs", default=None, help="keep the run directories under this folder")
    opts = p.parse_args(argv)
    opts.datasets = (
        parse_list(opts.datasets, DATASETS, "dataset")
        if opts.datasets
        else (list(QUICK_DATASETS) if opts.quick else list(DATASETS))
    )
    opts.seeds = [int(s) for s in parse_list(opts.seeds)] if opts.seeds else ([0] if opts.quick else [0, 1, 2])
    opts.epochs = opts.epochs or (3 if opts.quick else 60)
    if opts.quick and opts.early_epochs is None:
        opts.early_epochs = 5
    opts.only = [m for m in METHODS if m in parse_list(opts.only, METHODS, "method")]
    return opts


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python bench/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(
        f"bench/quality.py: {', '.join(opts.datasets)}; seeds {opts.seeds}; methods {', '.join(opts.only)}", flush=True
    )
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    if "minirocket" in opts.only:
        warm_up_minirocket()
    work_root = Path(opts.keep_runs) if opts.keep_runs else Path(tempfile.mkdtemp(prefix="seqmask-quality-"))
    if set(AUTOENCODERS) & set(opts.only):
        warm_up_tensorflow(work_root / "warm-up", opts)
    raw, infos, started = {}, [], time.perf_counter()
    try:
        for name in opts.datasets:
            spec = DATASETS[name]
            train, test = load_dataset(spec)
            infos.append(describe(spec, train, test))
            print(f"{name}: {infos[-1]}", flush=True)
            raw[name] = {}
            for seed in opts.seeds:
                trial = make_trial(spec, seed, train, test, work_root / name / f"seed{seed}")
                raw[name][str(seed)] = run_trial(trial, opts)
                if not opts.keep_runs:
                    shutil.rmtree(trial.work, ignore_errors=True)
    finally:
        if not opts.keep_runs:
            shutil.rmtree(work_root, ignore_errors=True)
    report = {
        "command": command,
        "environment": environment(),
        "options": {k: v for k, v in vars(opts).items() if k not in ("output", "keep_runs", "quick")},
        "datasets": infos,
        "wall_seconds": time.perf_counter() - started,
        "raw": raw,
    }
    text = markdown(report)
    print("\n" + text)
    write_report(opts.output, text, report)


if __name__ == "__main__":
    main()
