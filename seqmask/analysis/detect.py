"""Anomaly detection as a run does it: its model run over data, scored by its detector.

Owns: the model's pass over sequences (`model_outputs`: residuals, step errors, latent
vectors, evaluate's sums), calibration of a run (`calibrate`, `calibrate_on`, and the
samples a streamed run calibrates on), and detection of data (`detect`, `detect_parts`).

The scores themselves, their thresholds and what they mean are `scores` (numpy only); the
fitted detector and its files in the run directory are `detector`; a detection's result
and totals are `_detection`. Their names are re-exported here, where callers import them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqmask.analysis import scores as score_math
from seqmask.analysis._detection import Detection, DetectionTotals, detect_outputs, summary
from seqmask.analysis.detector import (
    DETECTOR,
    Detector,
    arrays_name,
    checkpoint_digest,
    fit_detector,
    load_detector,
    save_detector,
)
from seqmask.analysis.scores import (
    MIN_PER_BIN,
    SELF_DISTANCE,
    DetectError,
    LengthBins,
    Outputs,
    Threshold,
    aggregate,
    density_ratio,
    fit_gaussian,
    fit_length_bins,
    fit_reference,
    intervals,
    knn_distance,
    mahalanobis_squared,
    neighbours,
)
from seqmask.config import AnomalyScore, check_choice
from seqmask.data import Sequences, gather_index, length_mask_np
from seqmask.data.batching import inference_batch_size, inference_batches, padded_batch
from seqmask.data.inputs import Data
from seqmask.data.labels import read_labels
from seqmask.data.streaming import ShardedSequences, should_stream
from seqmask.errors import RunError
from seqmask.model.autoencoder import LATENT
from seqmask.model.losses import targets_and_mask, token_errors
from seqmask.model.scoring import Scores, batch_signature, make_loss_fn
from seqmask.run.directory import claim
from seqmask.run.loaded import LoadedRun, run_data
from seqmask.run.splits import Splits, apply_transform, raw_splits, saved_index, sharded_splits

# --------------------------------------------------------------------------- model outputs


def model_outputs(run: LoadedRun, seqs: Sequences, batch_size: int | None = None) -> Outputs:
    """Runs `run`'s model and encoder over `seqs` (transformed, as `run_data` gives them)."""
    cfg = run.cfg
    tokens = cfg.input.kind == "tokens"
    step = _output_step(run)
    width = 1 if tokens else seqs.num_features
    residuals = np.zeros((seqs.num_steps, width))
    has_target = np.zeros(seqs.num_steps, bool)
    latent = np.zeros((len(seqs), run.model.get_layer(LATENT).output.shape[-1]))
    sums, counts, hits = (np.zeros(len(seqs)) for _ in range(3))
    size = batch_size or inference_batch_size(cfg.train.batch_size)
    for indices in inference_batches(seqs.lengths, size):
        values, lengths = padded_batch(seqs, indices, "bucket", None, cfg.data.padding)
        r, t, z, s, c, h = (x.numpy() for x in step(values, lengths))
        real = length_mask_np(seqs.lengths[indices], values.shape[1], cfg.data.padding)  # (batch, time)
        # Row-major order of the real positions is each sequence's steps in order, batch
        # row after batch row: exactly the concatenated rows of these sequences.
        rows = gather_index(seqs.offsets[indices], seqs.lengths[indices])
        residuals[rows], has_target[rows] = r[real], t[real]
        latent[indices], sums[indices], counts[indices], hits[indices] = z, s, c, h
    if tokens:
        feature_errors = residuals.copy()
    elif cfg.train.error == "mse":
        feature_errors = np.square(residuals)
    else:
        feature_errors = np.abs(residuals)
    step_errors = np.where(has_target, feature_errors.mean(axis=1), np.nan)
    feature_errors[~has_target] = np.nan
    return Outputs(seqs, residuals, has_target, step_errors, feature_errors, Scores(sums, counts, hits), latent)


# One traced step per model: tracing costs more than scoring a validation split.
_STEPS: weakref.WeakKeyDictionary[keras.Model, Callable[..., Any]] = weakref.WeakKeyDictionary()


def _output_step(run: LoadedRun) -> Callable[..., Any]:
    """values, lengths -> (residual, has_target, latent, Σ w·e, Σ w, Σ w·hit) of a batch."""
    if run.model in _STEPS:
        return _STEPS[run.model]
    cfg = run.cfg
    tokens = cfg.input.kind == "tokens"
    # The autoencoder with its latent vector as a second output: one graph, one pass.
    model = keras.Model(run.model.inputs, [run.model.outputs[0], run.model.get_layer(LATENT).output])
    loss_fn = make_loss_fn(cfg)
    target, padding = cfg.train.target, cfg.data.padding
    spec = model.inputs[0]

    @tf.function(input_signature=batch_signature(spec.shape[-1], spec.dtype))
    def step(values: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, ...]:
        predictions, latent = model(
            [values, lengths], training=False
        )  # (batch, time, features | vocab), (batch, latent_dim)
        sums, counts, hits = loss_fn(values, lengths, predictions)  # (batch,) x3
        labels, has_target = targets_and_mask(values, lengths, target, padding)  # (batch, time, f), (batch, time)
        if tokens:
            nll, _ = token_errors(labels, tf.cast(predictions, tf.float32), has_target)  # (batch, time)
            residual = nll[:, :, None]  # (batch, time, 1)
        else:
            diff = tf.cast(labels, tf.float32) - tf.cast(predictions, tf.float32)
            residual = tf.where(has_target[:, :, None], diff, 0.0)  # (batch, time, features)
        return residual, has_target, latent, sums, counts, hits

    _STEPS[run.model] = step
    return step


# --------------------------------------------------------------------------- calibrate


def calibrate(
    run: LoadedRun,
    data: Data = None,
    *,
    threshold: Threshold = Threshold(),  # noqa: B008 (frozen: one shared default is safe)
    labels: str | Path | None = None,
    score: AnomalyScore | None = None,
    save: bool = True,
) -> Detector:
    """Fits the detector of `run` on `data` (default: the run's validation split) and saves it.

    With `threshold.fpr`, the `labels` file (id,label; 1 = anomaly) says which sequences of
    `data` are normal: the statistics and thresholds come from those only.
    """
    streamed = _streamed_splits(run)
    if streamed is not None:  # too large to read whole: samples of it, read from the shards
        assert isinstance(streamed.train, ShardedSequences)
        reference = reference_sample(streamed.train, run.cfg.train.seed)
        if data is not None:
            seqs, where = run_data(run, data), ""
        elif len(streamed.validation):
            seqs, where = calibration_sample(streamed.validation, run.cfg.train.seed)
        else:
            raise RunError(
                f"{run.run_dir} was trained without validation data, so there is nothing to calibrate its detector "
                f"on: run 'seqmask calibrate {run.run_dir} --data FILE' with sequences known to be normal"
            )
        known = read_labels(labels, seqs) if labels is not None else None
        where = where or seqs.source
        return calibrate_on(run, seqs, reference, where, threshold=threshold, labels=known, score=score, save=save)
    # The run's data files are read once: the validation split (unless `data` replaces it)
    # and the training split, the latent scores' reference set.
    train, validation = raw_splits(run.cfg, run.run_dir)
    if data is not None:
        seqs = run_data(run, data)
    elif len(validation):
        seqs = apply_transform(run.transform, validation)
    else:
        raise RunError(
            f"{run.run_dir} was trained without validation data, so there is nothing to calibrate its detector on: "
            f"run 'seqmask calibrate {run.run_dir} --data FILE' with sequences known to be normal"
        )
    known = read_labels(labels, seqs) if labels is not None else None
    where = seqs.source if data is not None else "the validation split"  # the file, or inputs.py's name
    reference = apply_transform(run.transform, train)
    return calibrate_on(run, seqs, reference, where, threshold=threshold, labels=known, score=score, save=save)


def calibrate_on(
    run: LoadedRun,
    seqs: Sequences,
    train: Sequences | None,
    where: str,
    *,
    threshold: Threshold = Threshold(),  # noqa: B008 (frozen: one shared default is safe)
    labels: np.ndarray | None = None,
    score: AnomalyScore | None = None,
    save: bool = True,
) -> Detector:
    """`calibrate` on sequences already read and transformed; `train` (transformed) is the
    latent score's reference set, read from the run's training data when None."""
    settings = run.cfg.detect if score is None else replace(run.cfg.detect, score=score)
    check_choice("score", settings.score, AnomalyScore)
    out = model_outputs(run, seqs)
    normal = np.ones(len(seqs), bool) if labels is None or threshold.fpr is None else labels == 0
    if threshold.fpr is not None and not normal.any():
        raise DetectError("--fpr needs sequences labelled normal (0) in the labels file; it has none")
    if not normal.all():
        out = out.subset(np.flatnonzero(normal))
    reference = np.zeros((0, 0))
    if settings.score in ("latent", "density", "combined"):
        reference = model_outputs(run, train).latent if train is not None else reference_latent(run)
    level = threshold.level(settings.quantile)
    if threshold.contamination is not None:
        how = f"contamination {threshold.contamination:g} of {where} ({len(out.seqs)} sequences)"
    elif threshold.fpr is not None:
        how = f"false-positive rate {threshold.fpr:g} on the {len(out.seqs)} normal sequences of {where}"
    else:
        how = f"quantile {level:g} of {where} ({len(out.seqs)} sequences)"
    path = run.run_dir.require_checkpoint(run.checkpoint)
    detector = fit_detector(settings, out, reference, level=level, how=how, seed=run.cfg.train.seed)
    detector = replace(detector, checkpoint=run.checkpoint, checkpoint_digest=checkpoint_digest(path))
    if save:
        save_detector(run.run_dir, detector)
    return detector


def reference_latent(run: LoadedRun) -> np.ndarray:
    """The training split's latent vectors: the latent score's reference set."""
    train, _ = raw_splits(run.cfg, run.run_dir)
    return model_outputs(run, apply_transform(run.transform, train)).latent


def detector_for(run: LoadedRun) -> tuple[Detector, bool]:
    """The run's saved detector, or one calibrated now with the defaults (a run trained
    before detection existed, or `--checkpoint last` never calibrated). (detector, new)."""
    saved = load_detector(run.run_dir, run.checkpoint)
    if saved is not None:
        return saved, False
    with claim(run.run_dir.path, fresh=False):  # no training may write the run meanwhile
        return calibrate(run), True


# --------------------------------------------------------------------------- detect


def detect(
    run: LoadedRun, data: Data, threshold: float | None = None, *, lengths: Any = None, ids: Any = None
) -> tuple[Detection, Detector, bool]:
    """`data` (a file or an in-memory form, inputs.py) scored by the run's detector, which
    is calibrated first if the run has none for its checkpoint: (detection, detector, new)."""
    detector, new = detector_for(run)
    seqs = run_data(run, data, lengths=lengths, ids=ids)
    return detect_outputs(detector, model_outputs(run, seqs), threshold), detector, new


def detect_parts(
    run: LoadedRun, parts: Iterator[Sequences], detector: Detector, threshold: float | None = None
) -> Iterator[Detection]:
    """`detect` of data that comes part by part (streamed shards): each part scored by the
    same detector, so each sequence gets the score it would get with all the data at once."""
    for seqs in parts:
        yield detect_outputs(detector, model_outputs(run, seqs), threshold)


# --------------------------------------------------------------------------- streamed calibration

# Calibration sequences a streamed run fits its detector on: a seeded sample of the
# validation split. The outputs of every step are held while fitting (~200 bytes a step),
# so the whole split of a dataset larger than memory cannot be; a quantile from 10^4
# sequences is within about ±0.001 of the level it aims at (binomial, level 0.99).
MAX_STREAMED_CALIBRATION = 10_000


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """(min(n, size),) sorted rows of n, a seeded sample: every row when n <= size. The
    rule fit_reference subsamples a reference set by, so sampling before encoding keeps
    the very rows (and vectors) it would keep of them all."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def reference_sample(train: ShardedSequences, seed: int) -> Sequences:
    """The MAX_REFERENCE training sequences fit_reference would keep of the whole split.
    Read from `scores` when called, where fit_reference reads it: one value for both."""
    return train.take(sample_rows(len(train), score_math.MAX_REFERENCE, seed))


def calibration_sample(validation: ShardedSequences | Sequences, seed: int) -> tuple[Sequences, str]:
    """(at most MAX_STREAMED_CALIBRATION validation sequences, how to name them)."""
    rows = sample_rows(len(validation), MAX_STREAMED_CALIBRATION, seed)
    seqs = validation.take(rows) if isinstance(validation, ShardedSequences) else validation.subset(rows)
    if len(rows) < len(validation):
        return seqs, f"a sample of the validation split ({len(rows):,} of {len(validation):,})"
    return seqs, "the validation split"


def _streamed_splits(run: LoadedRun) -> Splits | None:
    """A sharded run's splits when its data streams (data.streaming), else None."""
    index = saved_index(run.run_dir)
    if index is None or not should_stream(run.cfg.data.streaming, index):
        return None
    return sharded_splits(run.cfg, run.run_dir, index)


__all__ = [
    "DETECTOR",
    "MIN_PER_BIN",
    "SELF_DISTANCE",
    "MAX_STREAMED_CALIBRATION",
    "Detection",
    "DetectError",
    "Detector",
    "LengthBins",
    "Outputs",
    "Threshold",
    "aggregate",
    "arrays_name",
    "calibrate",
    "calibrate_on",
    "calibration_sample",
    "checkpoint_digest",
    "density_ratio",
    "detect",
    "detect_outputs",
    "detect_parts",
    "DetectionTotals",
    "detector_for",
    "fit_detector",
    "fit_gaussian",
    "fit_length_bins",
    "fit_reference",
    "intervals",
    "knn_distance",
    "load_detector",
    "mahalanobis_squared",
    "model_outputs",
    "neighbours",
    "reference_latent",
    "reference_sample",
    "sample_rows",
    "save_detector",
    "summary",
]
