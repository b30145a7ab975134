"""Anomaly-detection benchmark: do seqmask's anomaly scores (seqmask/analysis/scores.py) find novel sequences?

What is measured
----------------
Every task has normal training sequences and a test set whose sequences are labelled 0
(normal) or 1 (anomalous). For each task and seed, in one process, one after another:

* ``seqmask``  one model trained with seqmask's default config on the task's normal data:
               ``data.train`` = its fit part, ``data.validation`` = its validation part,
               ``train.epochs`` = ``--epochs`` (40), ``train.patience: 0`` (no early stop),
               ``train.seed`` = seed. The ``best`` checkpoint then scores the test set under
               every detector variant of ``VARIANTS``, each fitted by
               ``seqmask.analysis.detect.fit_detector`` on the run's validation split (level 0.99)
               with the training split's latent vectors as the reference set:

               ==================  =====================================================
               ``error``           evaluate's per-sequence error
               ``maha mean/max``   Mahalanobis d² of the step error vectors, mean / max
               ``maha top``        ... the mean of the top 10 % of steps
               ``latent k1/5/10``  mean distance to the k nearest training latent vectors
               ``density k5/10``   that distance over its neighbours' own (a local outlier factor)
               ``combined mean``   mahalanobis (mean) + density, each standardized
               ``combined top``    mahalanobis (top 10 %) + density, each standardized
               ``default``         the run's ``detect`` section: ``DetectConfig()``
                                   unless ``--set detect.key=value`` changes it
               ==================  =====================================================

               A variant whose fit raises (``DetectError``, e.g. a singular covariance)
               gets NaN for that task; the report lists every such error with its place.
* ``iforest``  scikit-learn's ``IsolationForest(n_estimators=200, random_state=seed)`` on
               per-sequence summary statistics; score = ``-score_samples``.
* ``knn``      the mean Euclidean distance from a test sequence's summary statistics to
               those of its 5 nearest normal training sequences.

The summary statistics are, per feature, the mean, std, min, max, first and last value over
the real steps, and the length; they are standardized with the mean and std over the
normal training sequences (all of them: seqmask's training and validation parts), which
are also the baselines' training set.

**AUROC** and **average precision** (``seqmask.data.labels``, equal to scikit-learn's) per task, with
label 1 = anomalous and higher scores = more anomalous; a NaN score (a sequence with
nothing scored) counts as the lowest score.

**Score and length**: on the normal test sequences of every task, the Spearman correlation
between length and the default score, and the share flagged (score > the detector's
threshold for the length) among the shortest and the longest third of them, for the
default detector with ``length_bins: 1`` and as it is. "ranges" is the number of length
ranges the default fit used: it needs 20 validation sequences per range.

The tasks
---------
*Leave one class out* on UCR/UEA classification sets bundled inside sktime
(``sktime/datasets/data``; nothing is downloaded), read with bench/quality.py's
``load_dataset`` (downsampled as ``DATASETS`` says). The archive's two splits are pooled
(they come from one distribution; the TRAIN splits alone hold 20 to 70 sequences, too few
to fit or to validate anything) and every sequence is cut to its first ``ceil(L/2) .. L``
steps (uniform, seeded by ``(seed, crc32(name))``): recordings of varying duration that
all start at the start, as whole recordings do (a random window instead would cut away
the part of a shape that defines its class). Then for each class c the normal sequences
(every other class) are split with a generator seeded by ``(seed, crc32(name/c))``: 60 %
fit, 15 % validation, 25 % normal test sequences; the test set is those plus every
sequence of class c (label 1). One model per (dataset, left-out class, seed).

*mitdb*: sktime's ``datasets/data/mitdb/mitdb.csv``, 7 500 steps of one ECG record with
one labelled anomalous region (steps 6 936 .. 7 287). The first 60 % of the record
(steps 0 .. 4 499) gives the training windows, the rest the test windows: windows of 128
steps at a stride of 32 within each part (137 and 90 windows), each then cut to a prefix
like the UCR sequences (seeded by ``(seed, crc32("mitdb"))``: 64 .. 128 steps). A window
is anomalous (1) if any of its steps after cropping is labelled anomalous; the training
part has none, so all of its windows are normal and 20 % of them are held out as
validation data. The test set is all test windows (13 to 15 of the 90 anomalous).

Usage (from the repository root)::

    .venv/bin/python bench/detect.py                        # full: every dataset, seeds 0,1,2
    .venv/bin/python bench/detect.py --quick                # smoke run: 2 datasets, 1 seed, 3 epochs
    .venv/bin/python bench/detect.py --datasets GunPoint,mitdb --seeds 0
    .venv/bin/python bench/detect.py --set detect.neighbors=10 --output runs/k10

Output: AUROC and average precision tables with one row per dataset, the mean over its
left-out classes, as mean ± sample std (ddof 1) over seeds, and a mean row (the mean over
datasets per seed first, mitdb included); whether the default beats both baselines per
dataset; for the tasks where some method reaches 0.95, whether the default reaches 0.97;
the score-and-length table. Results: a Markdown file and a JSON file with every per-task
number (``raw``: dataset -> seed -> left-out class -> method), at ``--output`` (default
``bench/detect_results``) + ``.md`` / ``.json``. ``--set section.key=value`` (repeatable)
overrides seqmask's config as ``seqmask train --set`` does.

Needs the ``bench`` extras: sktime and scikit-learn.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow

import numpy as np  # noqa: E402

from seqmask.analysis import metrics as metrics_lib  # noqa: E402  (numpy only)
from seqmask.config import DetectConfig  # noqa: E402  (no TensorFlow)


def _load_quality():
    """bench/quality.py (not a package) as a module, once."""
    name = "bench_quality"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "quality.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


quality = _load_quality()
Split, DatasetSpec = quality.Split, quality.DatasetSpec

LEVEL = 0.99  # the detectors' threshold quantile (only the score-and-length table reads it)
# The detector variants: one column each; None is the run's own `detect` section.
VARIANTS = {
    "error": DetectConfig(score="error"),
    "maha_mean": DetectConfig(score="mahalanobis", aggregate="mean"),
    "maha_max": DetectConfig(score="mahalanobis", aggregate="max"),
    "maha_top": DetectConfig(score="mahalanobis", aggregate="top", top_fraction=0.1),
    "latent_k1": DetectConfig(score="latent", neighbors=1),
    "latent_k5": DetectConfig(score="latent", neighbors=5),
    "latent_k10": DetectConfig(score="latent", neighbors=10),
    "density_k5": DetectConfig(score="density", neighbors=5),
    "density_k10": DetectConfig(score="density", neighbors=10),
    "combined_mean": DetectConfig(score="combined", aggregate="mean"),
    "combined_top": DetectConfig(score="combined", aggregate="top"),
    "default": None,
}
BASELINES = ("iforest", "knn")
METHODS = (*BASELINES, *VARIANTS)
LABELS = {
    "iforest": "isolation forest",
    "knn": "kNN (k=5)",
    "error": "error",
    "maha_mean": "maha mean",
    "maha_max": "maha max",
    "maha_top": "maha top 0.1",
    "latent_k1": "latent k1",
    "latent_k5": "latent k5",
    "latent_k10": "latent k10",
    "density_k5": "density k5",
    "density_k10": "density k10",
    "combined_mean": "combined mean",
    "combined_top": "combined top",
    "default": "default",
}
KNN_K = 5
IFOREST_TREES = 200
HIGH, TARGET = 0.95, 0.97  # tasks some method solves (>= HIGH): does the default reach TARGET?

DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec("ItalyPowerDemand"),
        DatasetSpec("GunPoint"),
        DatasetSpec("ArrowHead"),
        DatasetSpec("BasicMotions"),
        DatasetSpec("OSULeaf", downsample=4),
        DatasetSpec("ACSF1", downsample=8),
    )
}
MITDB = "mitdb"
ALL_DATASETS = (*DATASETS, MITDB)
QUICK_DATASETS = ("ItalyPowerDemand", MITDB)
# mitdb: windows of WINDOW steps every STRIDE; the first TRAIN_FRACTION of the record trains.
WINDOW, STRIDE, TRAIN_FRACTION = 128, 32, 0.6
# UCR tasks: the shares of the normal sequences that train, validate and are tested.
FIT, VAL = 0.6, 0.15


# --------------------------------------------------------------------------- tasks


@dataclass
class Task:
    dataset: str
    seed: int
    left_out: str  # the anomalous class ("anomaly" for mitdb)
    fit: Split  # seqmask's training part of the normal data
    val: Split  # seqmask's validation part
    test: Split
    labels: np.ndarray  # (len(test),) int: 1 anomalous


def prefix_crops(split, rng):
    """Each sequence cut to its first ceil(L/2) .. L steps (uniform): recordings of varying
    duration that all start at the start, as whole recordings do."""
    out = []
    for seq in split.seqs:
        full = len(seq)
        out.append(seq[: int(rng.integers(math.ceil(full / 2), full + 1))])
    return Split(out, split.labels)


def ucr_tasks(name, seed, train, test):
    """One task per class: the archive's two splits pooled and cropped, the normal
    sequences (every other class) split FIT / VAL / TEST_NORMAL, the class left out all
    anomalous test sequences."""
    rng = quality.crop_rng(seed, name)
    pooled = prefix_crops(Split(train.seqs + test.seqs, np.concatenate([train.labels, test.labels])), rng)
    for c in sorted(np.unique(pooled.labels)):
        normal = np.flatnonzero(pooled.labels != c)
        perm = np.random.default_rng([seed, zlib.crc32(f"{name}/{c}".encode())]).permutation(normal)
        n_fit, n_val = int(round(FIT * len(perm))), int(round(VAL * len(perm)))
        fit, val, rest = np.sort(perm[:n_fit]), np.sort(perm[n_fit : n_fit + n_val]), perm[n_fit + n_val :]
        test_idx = np.sort(np.concatenate([rest, np.flatnonzero(pooled.labels == c)]))
        labels = (pooled.labels[test_idx] == c).astype(np.int64)
        yield Task(name, seed, str(c), pooled.subset(fit), pooled.subset(val), pooled.subset(test_idx), labels)


def load_mitdb():
    """(values (n, 1) float64, step labels (n,) int) of the bundled ECG record."""
    import pandas as pd

    frame = pd.read_csv(quality.sktime_data_dir() / "mitdb" / "mitdb.csv")
    values = frame["data"].to_numpy(np.float64).astype(np.float32).astype(np.float64)[:, None]
    return values, frame["label"].to_numpy(np.int64)


def window_indices(lo, hi):
    """(WINDOW, 1) step-index arrays of the windows that fit in [lo, hi)."""
    return [np.arange(s, s + WINDOW)[:, None] for s in range(lo, hi - WINDOW + 1, STRIDE)]


def mitdb_split(record, seed):
    """(normal training windows, test windows, test labels), cropped and labelled."""
    values, step_labels = record
    cut = int(round(TRAIN_FRACTION * len(values)))
    rng = quality.crop_rng(seed, MITDB)
    parts = []
    for lo, hi in ((0, cut), (cut, len(values))):
        index = window_indices(lo, hi)
        # random_crops cuts the index arrays: the crops are the windows' steps, whose labels are known.
        index = prefix_crops(Split(index, np.zeros(len(index), np.int64)), rng).seqs
        labels = np.array([int(step_labels[ix[:, 0]].max()) for ix in index], np.int64)
        parts.append((Split([values[ix[:, 0]] for ix in index], labels.astype(str)), labels))
    (train, train_labels), (test, test_labels) = parts
    return train.subset(np.flatnonzero(train_labels == 0)), test, test_labels


def mitdb_tasks(seed, record):
    normal, test, labels = mitdb_split(record, seed)
    fit_idx, val_idx = quality.holdout(len(normal.seqs), seed)
    yield Task(MITDB, seed, "anomaly", normal.subset(fit_idx), normal.subset(val_idx), test, labels)


def mitdb_info(record):
    normal, test, labels = mitdb_split(record, 0)
    return {
        "name": MITDB,
        "package": f"sktime {importlib.metadata.version('sktime')}",
        "features": 1,
        "classes": 2,
        "train": len(normal.seqs),
        "test": len(test.seqs),
        "length": WINDOW,
        "downsample": 1,
        "max_train": None,
        "max_test": None,
        "test_anomalous": int(labels.sum()),
        "construction": f"windows of {WINDOW} every {STRIDE}; first {TRAIN_FRACTION:.0%} of the record trains",
    }


# --------------------------------------------------------------------------- metrics


def finite_scores(scores):
    """NaN (nothing scored) becomes the lowest score."""
    scores = np.asarray(scores, np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        low = scores[~bad].min() - 1.0 if (~bad).any() else 0.0
        scores = np.where(bad, low, scores)
    return scores


def metrics(labels, scores):
    # seqmask's own AUROC and average precision (the ones `detect --labels` prints; tests/
    # test_labels.py checks them against scikit-learn), so this needs no bench extra.
    if scores is None:
        return {"auroc": math.nan, "ap": math.nan}
    s = finite_scores(scores)
    return {"auroc": metrics_lib.auroc(labels, s), "ap": metrics_lib.average_precision(labels, s)}


# --------------------------------------------------------------------------- baselines


def summary_features(split):
    """(n, 6 * features + 1): per feature mean, std, min, max, first, last; and the length."""
    return np.stack(
        [np.concatenate([s.mean(0), s.std(0), s.min(0), s.max(0), s[0], s[-1], [len(s)]]) for s in split.seqs]
    )


def run_baselines(task):
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import NearestNeighbors

    train_x = summary_features(Split(task.fit.seqs + task.val.seqs, None))
    test_x = summary_features(task.test)
    mean, std = train_x.mean(0), train_x.std(0)
    std = np.where(std > 0, std, 1.0)
    train_z, test_z = (train_x - mean) / std, (test_x - mean) / std
    forest = IsolationForest(n_estimators=IFOREST_TREES, random_state=task.seed).fit(train_z)
    knn = NearestNeighbors(n_neighbors=min(KNN_K, len(train_z))).fit(train_z)
    distances, _ = knn.kneighbors(test_z)
    return {"iforest": -forest.score_samples(test_z), "knn": distances.mean(axis=1)}


# --------------------------------------------------------------------------- seqmask


def seqmask_config(task, files, opts):
    from seqmask.config import apply_overrides, config_from_dict

    raw = {
        "data": {"train": files["fit"], "validation": files["val"]},
        "train": {"epochs": opts.epochs, "patience": 0, "seed": task.seed},
    }
    return config_from_dict(apply_overrides(raw, opts.set), source="bench/detect.py")


def error_note(e):
    """'file:line in function: Type: message' of the innermost frame, and the traceback."""
    frame = traceback.extract_tb(e.__traceback__)[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
    return {
        "error": f"{where}: {type(e).__name__}: {e}",
        "traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__)),
    }


def length_stats(detector, outputs, scores, normal):
    """Spearman(length, score) and flag rates of the shortest / longest third (normal only)."""
    from scipy.stats import spearmanr

    lengths = outputs.seqs.lengths[normal]
    s = scores[normal]
    flags = np.nan_to_num(s, nan=-np.inf) > detector.thresholds(lengths)
    order = np.argsort(lengths, kind="stable")
    third = len(order) // 3
    constant = len(np.unique(lengths)) < 2 or not np.isfinite(s).any()
    return {
        "spearman": math.nan if constant else float(spearmanr(lengths, finite_scores(s)).statistic),
        "short": float(flags[order[:third]].mean()) if third else math.nan,
        "long": float(flags[order[-third:]].mean()) if third else math.nan,
        "all": float(flags.mean()),
        "ranges": len(detector.bins.edges) + 1,
    }


def run_seqmask(task, files, opts, work):
    """(scores per variant (None where it failed), extra facts: errors, seconds, length stats)."""
    from seqmask.analysis.detect import fit_detector, model_outputs, reference_latent
    from seqmask.run.loaded import load_run, run_data
    from seqmask.training.loop import train

    cfg = seqmask_config(task, files, opts)
    run_dir = work / "run"
    started = time.perf_counter()
    trained = train(cfg, run_dir, overwrite=True)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    run = load_run(run_dir, "best")
    val = model_outputs(run, run_data(run, None))
    test = model_outputs(run, run_data(run, files["test"]))
    if not np.array_equal(test.seqs.lengths, task.test.lengths):
        raise RuntimeError(f"{files['test']}: seqmask read other sequences than were written")
    ref = reference_latent(run)
    scores, errors, detectors = {}, {}, {}
    for name, settings in VARIANTS.items():
        settings = run.cfg.detect if settings is None else settings
        try:
            detectors[name] = fit_detector(settings, val, ref, level=LEVEL, how="bench", seed=task.seed)
            scores[name] = detectors[name].sequence_scores(test)
        except Exception as e:  # DetectError by design; anything else is reported, not fatal
            scores[name] = None
            errors[name] = error_note(e)
    extra = {
        "train_seconds": train_seconds,
        "score_seconds": time.perf_counter() - started,
        "epochs_run": trained["epochs_run"],
        "best_epoch": trained["best_epoch"],
        "lstm_kernel": trained.get("lstm_kernel"),
        "default_settings": asdict(run.cfg.detect),
        "errors": errors,
        "cache": {"val": val, "test": test, "ref": ref},
    }
    if "default" in detectors:
        normal = task.labels == 0
        length = {"default": length_stats(detectors["default"], test, scores["default"], normal)}
        try:
            one = fit_detector(replace(run.cfg.detect, length_bins=1), val, ref, level=LEVEL, how="bench")
            length["bins1"] = length_stats(one, test, one.sequence_scores(test), normal)
        except Exception as e:
            errors["default length_bins 1"] = error_note(e)
        extra["length"] = length
    return scores, extra


def run_task(task, opts, work):
    work.mkdir(parents=True, exist_ok=True)
    files = {
        "fit": quality.write_npz(work / "fit.npz", task.fit),
        "val": quality.write_npz(work / "val.npz", task.val),
        "test": quality.write_npz(work / "test.npz", task.test),
    }
    scores = run_baselines(task)
    seqmask_scores, extra = run_seqmask(task, files, opts, work)
    scores.update(seqmask_scores)
    if opts.cache:  # every array the scores came from, to try other scores without training
        import pickle

        cache = Path(opts.cache) / f"{task.dataset}_{task.seed}_{task.left_out}.pkl"
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps({"task": task, "scores": scores, **extra.pop("cache")}))
    else:
        extra.pop("cache")
    result = {m: metrics(task.labels, scores[m]) for m in METHODS}
    result.update(
        {
            "test": len(task.test.seqs),
            "anomalous": int(task.labels.sum()),
            "fit": len(task.fit.seqs),
            "validation": len(task.val.seqs),
            **extra,
        }
    )
    shutil.rmtree(work, ignore_errors=True)
    return result


def print_task(task, result):
    cells = " ".join(f"{LABELS[m].split(' (')[0]} {result[m]['auroc']:.3f}" for m in METHODS)
    print(
        f"  {task.dataset} seed {task.seed} class {task.left_out} ({result['anomalous']}/{result['test']} anomalous): "
        f"AUROC {cells}; {result['train_seconds']:.1f} s training, {result['score_seconds']:.1f} s scoring",
        flush=True,
    )
    for name, note in result["errors"].items():
        print(f"    {name}: {note['error']}", flush=True)


# --------------------------------------------------------------------------- report


def by_seed(raw):
    """dataset -> seed -> method -> {auroc, ap}: the means over left-out classes."""
    out = {}
    for d, seeds in raw.items():
        out[d] = {}
        for s, classes in seeds.items():
            out[d][s] = {
                m: {k: float(np.mean([c[m][k] for c in classes.values()])) for k in ("auroc", "ap")} for m in METHODS
            }
    return out


def length_by_seed(raw):
    """dataset -> seed -> {key: mean over classes} of the score-and-length statistics."""
    out = {}
    for d, seeds in raw.items():
        out[d] = {}
        for s, classes in seeds.items():
            rows = [c["length"] for c in classes.values() if "length" in c]
            out[d][s] = {
                f"{v}_{k}": float(np.mean([r[v][k] for r in rows])) if rows and all(v in r for r in rows) else None
                for v in ("bins1", "default")
                for k in ("spearman", "short", "long", "all", "ranges")
            }
    return out


def seed_values(agg, d, m, key):
    return [agg[d][s][m][key] for s in sorted(agg[d], key=int)]


def fmt(values, digits=3):
    ms = quality.mean_std([v for v in values if v is not None])
    return quality.fmt(ms, digits)


def metric_table(agg, datasets, key):
    head = ["dataset", *(LABELS[m] for m in METHODS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in datasets:
        lines.append("| " + " | ".join([d, *(fmt(seed_values(agg, d, m, key)) for m in METHODS)]) + " |")
    if len(datasets) > 1:
        cells = [fmt(quality.over_datasets(agg, datasets, m, key)) for m in METHODS]
        lines.append("| **mean** | " + " | ".join(cells) + " |")
    return lines


def mean_over_seeds(agg, d, m, key="auroc"):
    return float(np.mean(seed_values(agg, d, m, key)))


def verdicts(raw, agg):
    """Per dataset: does the default beat both baselines; per solved task: does it reach TARGET."""
    beats = {}
    for d in agg:
        default = mean_over_seeds(agg, d, "default")
        base = {b: mean_over_seeds(agg, d, b) for b in BASELINES}
        beats[d] = {"default": default, **base, "beats_both": bool(default > max(base.values()))}
    solved = []
    for d, seeds in raw.items():
        for c in next(iter(seeds.values())):
            means = {m: float(np.mean([seeds[s][c][m]["auroc"] for s in seeds])) for m in METHODS}
            finite = {m: v for m, v in means.items() if np.isfinite(v)}
            best = max(finite, key=finite.get) if finite else None
            if best is not None and finite[best] >= HIGH:
                solved.append(
                    {
                        "dataset": d,
                        "class": c,
                        "best": best,
                        "best_auroc": finite[best],
                        "default": means["default"],
                        "reaches": bool(means["default"] >= TARGET),
                    }
                )
    return beats, solved


def length_table(lagg, datasets):
    cols = [
        ("default_spearman", "Spearman ρ (length, score)", 3),
        ("default_ranges", "ranges (default)", 1),
        ("bins1_short", "flagged, shortest third (bins 1)", 3),
        ("bins1_long", "longest third (bins 1)", 3),
        ("default_short", "shortest third (default)", 3),
        ("default_long", "longest third (default)", 3),
    ]
    lines = ["| dataset | " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for d in datasets:
        seeds = sorted(lagg[d], key=int)
        cells = [fmt([lagg[d][s][k] for s in seeds], digits) for k, _, digits in cols]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def markdown(report):
    raw, opts = report["raw"], report["options"]
    datasets = list(raw)
    agg, lagg = by_seed(raw), length_by_seed(raw)
    beats, solved = verdicts(raw, agg)
    tasks = {d: len(next(iter(raw[d].values()))) for d in datasets}
    defaults = sorted({json.dumps(c["default_settings"]) for d in raw.values() for s in d.values() for c in s.values()})
    lines = [
        f"Seeds {opts['seeds']}; seqmask's default config, {opts['epochs']} epochs, no early stopping"
        + (f"; --set {' '.join(opts['set'])}" if opts["set"] else "")
        + f". Detectors fitted on the validation split at level {LEVEL}. Per dataset the mean over its "
        "left-out classes (tasks: " + ", ".join(f"{d} {n}" for d, n in tasks.items()) + "), as mean ± std "
        "over seeds; the mean row averages over datasets per seed first.",
        "",
        f"`default` is {'; '.join(defaults)}.",
        "",
        "AUROC:",
        "",
        *metric_table(agg, datasets, "auroc"),
        "",
        "Average precision:",
        "",
        *metric_table(agg, datasets, "ap"),
        "",
        "Does the default beat both baselines (mean AUROC over classes and seeds)?",
        "",
        "| dataset | default | isolation forest | kNN | beats both |",
        "|---|---|---|---|---|",
    ]
    for d, b in beats.items():
        lines.append(
            f"| {d} | {b['default']:.3f} | {b['iforest']:.3f} | {b['knn']:.3f} | {'yes' if b['beats_both'] else 'no'} |"
        )
    lines += [
        "",
        f"Tasks where some method reaches AUROC {HIGH} (mean over seeds): does the default reach {TARGET}?",
        "",
    ]
    if solved:
        lines += [
            "| dataset | left-out class | best method | its AUROC | default | ≥ 0.97 |",
            "|---|---|---|---|---|---|",
        ]
        for t in solved:
            lines.append(
                f"| {t['dataset']} | {t['class']} | {LABELS[t['best']]} | {t['best_auroc']:.3f} | "
                f"{t['default']:.3f} | {'yes' if t['reaches'] else 'no'} |"
            )
        lines += ["", f"{sum(t['reaches'] for t in solved)} of {len(solved)} reach it."]
    else:
        lines.append("None.")
    lines += [
        "",
        "Score and length, on the normal test sequences (mean over classes, then mean ± std over seeds): "
        "the Spearman correlation of the default score with the length, and the share flagged among the "
        "shortest and the longest third, for the default detector with `length_bins: 1` and as it is.",
        "",
        *length_table(lagg, datasets),
    ]
    errors = [
        (d, s, c, m, note["error"])
        for d, seeds in raw.items()
        for s, classes in seeds.items()
        for c, r in classes.items()
        for m, note in r["errors"].items()
    ]
    lines += ["", "Detector errors (NaN in the tables):" if errors else "Detector errors: none."]
    lines += [""] * bool(errors) + [f"- {d} seed {s} class {c}, {m}: `{e}`" for d, s, c, m, e in errors]
    infos = report["datasets"]
    lines += ["", "Datasets (after caps; lengths before cropping):", "", *quality.dataset_table(infos)]
    for i in infos:
        if "construction" in i:
            lines.append(f"\n{i['name']}: {i['construction']}; {i['test_anomalous']} anomalous test windows (seed 0).")
    seconds = {
        d: sum(c["train_seconds"] + c["score_seconds"] for s in raw[d].values() for c in s.values()) for d in datasets
    }
    kernels = sorted({c["lstm_kernel"] for d in raw.values() for s in d.values() for c in s.values()} - {None})
    lines += [
        "",
        f"Seconds (training + scoring, all seeds): {', '.join(f'{d} {v:.0f}' for d, v in seconds.items())}; "
        f"whole run {report['wall_seconds']:.0f} s.",
        "",
        f"Command: `{report['command']}`",
        f"Environment: {report['environment']}",
    ]
    if kernels:
        lines.append(f"seqmask's LSTM: {'; '.join(kernels)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- driver


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"smoke run: {', '.join(QUICK_DATASETS)}, seed 0, 3 epochs")
    p.add_argument("--datasets", help=f"comma-separated, from {', '.join(ALL_DATASETS)}")
    p.add_argument("--seeds", default=None, help="comma-separated integers (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None, help="seqmask's train.epochs (default 40)")
    p.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="seqmask config override (repeatable)"
    )
    p.add_argument("--output", default="bench/detect_results", help="writes OUTPUT.md and OUTPUT.json")
    p.add_argument("--cache", help="also pickle each task's model outputs into this directory (for experiments)")
    opts = p.parse_args(argv)
    opts.datasets = (
        quality.parse_list(opts.datasets, ALL_DATASETS, "dataset")
        if opts.datasets
        else list(QUICK_DATASETS if opts.quick else ALL_DATASETS)
    )
    opts.seeds = [int(s) for s in quality.parse_list(opts.seeds)] if opts.seeds else ([0] if opts.quick else [0, 1, 2])
    opts.epochs = opts.epochs or (3 if opts.quick else 40)
    return opts


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    opts = parse_args(argv)
    print(f"bench/detect.py: {', '.join(opts.datasets)}; seeds {opts.seeds}; {opts.epochs} epochs", flush=True)
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras's retracing notes: every task builds a new model
    work_root = Path(tempfile.mkdtemp(prefix="seqmask-detect-"))
    raw, infos, started = {}, [], time.perf_counter()
    try:
        for name in opts.datasets:
            if name == MITDB:
                record = load_mitdb()
                infos.append(mitdb_info(record))
            else:
                spec = DATASETS[name]
                train, test = quality.load_dataset(spec)
                infos.append(quality.describe(spec, train, test))
            print(f"{name}: {infos[-1]}", flush=True)
            raw[name] = {}
            for seed in opts.seeds:
                tasks = mitdb_tasks(seed, record) if name == MITDB else ucr_tasks(name, seed, train, test)
                raw[name][str(seed)] = {}
                for task in tasks:
                    result = run_task(task, opts, work_root / name / f"seed{seed}" / task.left_out)
                    raw[name][str(seed)][task.left_out] = result
                    print_task(task, result)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    report = {
        "command": "python bench/detect.py " + " ".join(argv),
        "environment": quality.environment(),
        "options": {k: v for k, v in vars(opts).items() if k not in ("output", "quick")},
        "datasets": infos,
        "wall_seconds": time.perf_counter() - started,
        "raw": raw,
    }
    agg = by_seed(raw)
    beats, solved = verdicts(raw, agg)
    report["summary"] = {"by_seed": agg, "length_by_seed": length_by_seed(raw), "beats": beats, "solved": solved}
    text = markdown(report)
    print("\n" + text)
    for d, b in beats.items():
        print(f"{d}: default {'beats' if b['beats_both'] else 'does not beat'} both baselines", flush=True)
    for t in solved:
        print(
            f"{t['dataset']} class {t['class']}: best {LABELS[t['best']]} {t['best_auroc']:.3f}, "
            f"default {t['default']:.3f} ({'≥' if t['reaches'] else '<'} {TARGET})"
        )
    quality.write_report(opts.output, text, report)


if __name__ == "__main__":
    main()
