"""Anomaly scores for sequences and their steps, calibrated on data known to be normal.

A finished run scores a sequence in one of five ways (`detect.score`):

    error        s = Σ w·e / Σ w, evaluate's per-sequence error (losses.py): the same numbers.
    mahalanobis  r_t = y_t - ŷ_t, the error vector of scored step t (one error per feature;
                 token runs: r_t = [NLL_t], the step's negative log-likelihood);
                 d²_t = (r_t - μ)ᵀ Σ⁻¹ (r_t - μ), with μ and Σ the mean and (population)
                 covariance of r over the calibration steps (Malhotra et al. 2016);
                 s = mean, max or "top" (the mean of the ⌈f·n⌉ largest) of d²_t.
    latent       z' = (z - m) / sd, with m and sd over the reference (training) latent
                 vectors; s = the mean Euclidean distance from z' to its k nearest
                 reference vectors. A reference vector at distance ~0 (the sequence itself,
                 when the training data is scored) is skipped once, so training and new
                 sequences are scored alike.
    density      latent's distance over the mean of the same distance of those k reference
                 vectors among the reference set: a simplified local outlier factor
                 (Breunig et al. 2000), ~1 inside the data whether that part of it is dense
                 or sparse.
    combined     (m - median m) / IQR m + (d - median d) / IQR d, m the mahalanobis score
                 and d the density score, medians and interquartile ranges over the
                 calibration data: far from the training data in the latent space, or
                 reconstructed unlike it, or both.

A step's score (for localisation and `--steps`) is d²_t under mahalanobis and combined,
and e_t, the loss's step error, otherwise.

Thresholds are quantiles of the calibration data's scores: the validation split at the end
of `train` (level `detect.quantile`), or what `seqmask calibrate` is given (--quantile,
--contamination C: level 1 - C of data holding anomalies, --fpr F: level 1 - F of the
sequences labelled normal). The sequence threshold depends on the length range (see
`LengthBins`); the step threshold is one quantile of the calibration steps' scores. An
anomalous interval is a run of consecutive steps whose score is above the step threshold.

Every score is a function of one sequence alone: batches, neighbours and padding change
nothing (the model's outputs do not depend on them, and the statistics are fixed).
"""

from __future__ import annotations

import hashlib
import io
import math
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqmask import atomic
from seqmask.config import AnomalyScore, DetectConfig, check_choice
from seqmask.data import Sequences, gather_index, length_mask_np
from seqmask.data.batching import inference_batch_size, inference_batches, padded_batch
from seqmask.data.inputs import Data
from seqmask.data.labels import LabelFile, label_metrics, read_labels
from seqmask.data.streaming import ShardedSequences, should_stream
from seqmask.errors import RunError
from seqmask.model.autoencoder import LATENT
from seqmask.model.losses import targets_and_mask, token_errors
from seqmask.model.scoring import Scores, batch_signature, make_loss_fn
from seqmask.run.directory import Checkpoint, RunDir, claim
from seqmask.run.loaded import LoadedRun, run_data
from seqmask.run.splits import Splits, apply_transform, raw_splits, saved_index, sharded_splits

DETECTOR = "detector.json"
# The sequences of each length range a sequence threshold is fitted on, at least: fewer,
# and a 0.99 quantile is little more than the range's largest score.
MIN_PER_BIN = 20
# The training latent vectors kept as the reference set (a seeded sample beyond this):
# enough for a kNN score to be stable, small enough to score fast and store in the run.
MAX_REFERENCE = 10_000
# Distances below this (in standardized latent units) are the sequence itself.
SELF_DISTANCE = 1e-4
# Σ is treated as singular when its smallest eigenvalue is below this share of its largest.
SINGULAR = 1e-10


class DetectError(RunError):
    """The detector cannot be fitted or used as asked (exit code 1)."""


# --------------------------------------------------------------------------- model outputs


@dataclass(frozen=True)
class Outputs:
    """One pass of a run's model over some sequences: all that the scores read.

    Step arrays are concatenated like `Sequences.values`: rows offsets[i]:offsets[i + 1]
    are sequence i's real steps, in order, whatever the padding.
    """

    seqs: Sequences  # the scored sequences, transformed
    residuals: np.ndarray  # (num_steps, R) float64: y - ŷ at scored steps, 0 elsewhere (tokens: NLL, R = 1)
    has_target: np.ndarray  # (num_steps,) bool: the step is scored (next_step: not the last)
    step_errors: np.ndarray  # (num_steps,) float64: e_t of losses.py, NaN where not scored
    feature_errors: np.ndarray  # (num_steps, R) float64: e_t per feature (squared / absolute / NLL)
    scores: Scores  # evaluate's per-sequence sums
    latent: np.ndarray  # (num_sequences, latent_dim) float64

    def subset(self, indices: np.ndarray) -> Outputs:
        idx = np.asarray(indices, dtype=np.int64)
        rows = gather_index(self.seqs.offsets[idx], self.seqs.lengths[idx])
        scores = Scores(self.scores.sums[idx], self.scores.counts[idx], self.scores.hits[idx])
        return Outputs(
            self.seqs.subset(idx),
            self.residuals[rows],
            self.has_target[rows],
            self.step_errors[rows],
            self.feature_errors[rows],
            scores,
            self.latent[idx],
        )


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


# --------------------------------------------------------------------------- the detector


@dataclass(frozen=True)
class LengthBins:
    """Sequence thresholds that follow the length: one per length range.

    The calibration sequences are cut into length ranges of about equal count (edges:
    range b holds lengths in [edges[b-1], edges[b])), each with at least MIN_PER_BIN.
    Each range's scores are centred on their median and scaled by their interquartile
    range, and `cut` is the wanted quantile of these standardized scores over all ranges;
    range b's threshold is median_b + cut·IQR_b. Every range is then flagged at about the
    same rate, where a single threshold would flag mostly the lengths whose scores spread
    most. With one range the threshold is the quantile of the scores itself.
    """

    edges: tuple[float, ...]  # (ranges - 1,) lengths where a range starts
    per_range: tuple[float, ...]  # (ranges,) the threshold of each range

    def index(self, lengths: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.edges, float), lengths, side="right")

    def thresholds(self, lengths: np.ndarray) -> np.ndarray:
        return np.asarray(self.per_range)[self.index(np.asarray(lengths))]


def fit_length_bins(lengths: np.ndarray, scores: np.ndarray, max_bins: int, level: float) -> LengthBins:
    keep = np.isfinite(scores)
    lengths, scores = np.asarray(lengths)[keep], scores[keep]
    if not len(scores):
        raise DetectError("no calibration sequence has a score (nothing was scored)")
    ranges = max(1, min(max_bins, len(scores) // MIN_PER_BIN))
    cuts = np.unique(np.quantile(lengths, np.arange(1, ranges) / ranges, method="higher"))
    edges: list[float] = [float(e) for e in cuts if e > lengths.min()]
    # Merge the smallest range into its neighbour until every range is big enough
    # (ties in the lengths can leave ranges small or empty).
    while edges:
        counts = np.bincount(np.searchsorted(edges, lengths, side="right"), minlength=len(edges) + 1)
        if counts.min() >= MIN_PER_BIN:
            break
        small = int(np.argmin(counts))
        drop = small - 1 if small == len(edges) or (small > 0 and counts[small - 1] < counts[small + 1]) else small
        del edges[drop]
    if not edges:  # exactly the quantile: median + cut·IQR can miss it by a rounding error
        return LengthBins((), (float(np.quantile(scores, level)),))
    b = np.searchsorted(edges, lengths, side="right")
    overall = _iqr(scores) or 1.0
    location, scale = [], []
    for k in range(len(edges) + 1):
        part = scores[b == k]
        location.append(float(np.median(part)))
        scale.append(_iqr(part) or overall)
    z = (scores - np.asarray(location)[b]) / np.asarray(scale)[b]
    cut = float(np.quantile(z, level))
    return LengthBins(tuple(edges), tuple(loc + cut * sc for loc, sc in zip(location, scale, strict=True)))


def _iqr(x: np.ndarray) -> float:
    q25, q75 = np.quantile(x, [0.25, 0.75])
    return float(q75 - q25)


@dataclass(frozen=True)
class Detector:
    """A fitted score and its thresholds. Saved as detector.json + detector_<checkpoint>.npz."""

    settings: DetectConfig
    bins: LengthBins  # the sequence thresholds
    step_threshold: float
    how: str  # how the thresholds were set, in words
    calibration_sequences: int
    # mahalanobis: the error vectors' Gaussian.
    mean: np.ndarray | None = None  # (R,)
    cov: np.ndarray | None = None  # (R, R)
    # latent, density, combined: the standardized reference set.
    latent_mean: np.ndarray | None = None  # (latent_dim,)
    latent_scale: np.ndarray | None = None  # (latent_dim,)
    reference: np.ndarray | None = None  # (m, latent_dim), standardized
    reference_knn: np.ndarray | None = None  # (m,): density's denominator
    # combined: the median and interquartile range of each part over the calibration data.
    parts_location: np.ndarray | None = None  # (2,): mahalanobis, density
    parts_scale: np.ndarray | None = None  # (2,)
    one_sided: bool = False  # token runs: see mahalanobis_squared
    checkpoint: Checkpoint = "best"
    checkpoint_digest: str = ""

    @property
    def score(self) -> AnomalyScore:
        return self.settings.score

    # -- scoring ---------------------------------------------------------------------

    def step_scores(self, out: Outputs) -> np.ndarray:
        """(num_steps,) float64: d²_t (mahalanobis, combined) or e_t; NaN at steps not scored."""
        if self.score not in ("mahalanobis", "combined"):
            return out.step_errors
        assert self.mean is not None and self.cov is not None
        return mahalanobis_squared(out.residuals, self.mean, self.cov, out.has_target, self.one_sided)

    def sequence_scores(self, out: Outputs, step_scores: np.ndarray | None = None) -> np.ndarray:
        """(num_sequences,) float64; NaN for a sequence with no scored step (error, mahalanobis)."""
        if self.score == "error":
            return out.scores.per_sequence
        if self.score == "latent":
            return knn_distance(self._query(out), self._reference(), self.settings.neighbors)
        if self.score == "density":
            return self._density(out)
        steps = self.step_scores(out) if step_scores is None else step_scores
        errors = aggregate(steps, out.seqs.offsets, self.settings.aggregate, self.settings.top_fraction)
        if self.score == "mahalanobis":
            return errors
        return self.combine(errors, self._density(out))

    def combine(self, errors: np.ndarray, density: np.ndarray) -> np.ndarray:
        """combined = Σ over the two parts of (part - median) / IQR, both over the calibration data."""
        assert self.parts_location is not None and self.parts_scale is not None
        loc, scale = self.parts_location, self.parts_scale
        return (errors - loc[0]) / scale[0] + (density - loc[1]) / scale[1]

    def _query(self, out: Outputs) -> np.ndarray:
        assert self.latent_mean is not None and self.latent_scale is not None
        return (out.latent - self.latent_mean) / self.latent_scale  # (num_sequences, latent_dim)

    def _reference(self) -> np.ndarray:
        assert self.reference is not None
        return self.reference

    def _density(self, out: Outputs) -> np.ndarray:
        assert self.reference_knn is not None
        return density_ratio(self._query(out), self._reference(), self.reference_knn, self.settings.neighbors)

    def thresholds(self, lengths: np.ndarray) -> np.ndarray:
        return self.bins.thresholds(lengths)

    # -- files -----------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        named = {
            "mean": self.mean,
            "cov": self.cov,
            "latent_mean": self.latent_mean,
            "latent_scale": self.latent_scale,
            "reference": self.reference,
            "reference_knn": self.reference_knn,
            "parts_location": self.parts_location,
            "parts_scale": self.parts_scale,
        }
        return {k: v for k, v in named.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "bins": asdict(self.bins),
            "step_threshold": self.step_threshold,
            "how": self.how,
            "calibration_sequences": self.calibration_sequences,
            "one_sided": self.one_sided,
            "checkpoint": self.checkpoint,
            "checkpoint_digest": self.checkpoint_digest,
        }


def mahalanobis_squared(
    residuals: np.ndarray, mean: np.ndarray, cov: np.ndarray, has_target: np.ndarray, one_sided: bool = False
) -> np.ndarray:
    """(num_steps, R) -> (num_steps,) (r - μ)ᵀ Σ⁻¹ (r - μ); NaN where not scored.

    `one_sided` (token runs, R = 1: r is the NLL): only an NLL above its mean counts, so a
    token predicted better than usual is not an anomaly: d² = max(r - μ, 0)² / σ².
    """
    centred = residuals - mean  # (num_steps, R)
    if one_sided:
        centred = np.maximum(centred, 0.0)
    values, vectors = np.linalg.eigh(cov)
    whitened = (centred @ vectors) / np.sqrt(values)  # (num_steps, R)
    return np.where(has_target, np.einsum("ij,ij->i", whitened, whitened), np.nan)


def aggregate(step_scores: np.ndarray, offsets: np.ndarray, how: str, top_fraction: float) -> np.ndarray:
    """Per-sequence mean / max / top-fraction mean of the finite step scores (NaN if none)."""
    out = np.full(len(offsets) - 1, np.nan)
    for i in range(len(out)):
        s = step_scores[offsets[i] : offsets[i + 1]]
        s = s[np.isfinite(s)]
        if not len(s):
            continue
        if how == "mean":
            out[i] = s.mean()
        elif how == "max":
            out[i] = s.max()
        else:  # top: the mean of the ⌈f·n⌉ largest
            k = max(1, math.ceil(top_fraction * len(s) - 1e-9))
            out[i] = np.partition(s, len(s) - k)[len(s) - k :].mean()
    return out


def neighbours(query: np.ndarray, reference: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(n, d), (m, d) -> distances and indices (n, k) of the k nearest reference rows,
    nearest first, skipping one row at distance < SELF_DISTANCE (the query itself)."""
    k = max(1, min(k, len(reference) - 1))
    ref_sq = np.einsum("ij,ij->i", reference, reference)  # (m,)
    dist_out, idx_out = np.empty((len(query), k)), np.empty((len(query), k), np.int64)
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk]
        # |q - r|² = |q|² - 2 q·r + |r|², clipped: rounding can make it slightly negative.
        d2 = np.einsum("ij,ij->i", q, q)[:, None] - 2.0 * q @ reference.T + ref_sq[None, :]  # (chunk, m)
        dist = np.sqrt(np.maximum(d2, 0.0))
        take = min(k + 1, dist.shape[1])
        idx = np.argpartition(dist, take - 1, axis=1)[:, :take]  # (chunk, k + 1), unordered
        near = np.take_along_axis(dist, idx, 1)
        order = np.argsort(near, axis=1, kind="stable")
        idx, near = np.take_along_axis(idx, order, 1), np.take_along_axis(near, order, 1)
        first = (near[:, 0] < SELF_DISTANCE).astype(np.int64)[:, None] + np.arange(k)[None, :]  # (chunk, k)
        first = np.minimum(first, take - 1)
        dist_out[start : start + chunk] = np.take_along_axis(near, first, 1)
        idx_out[start : start + chunk] = np.take_along_axis(idx, first, 1)
    return dist_out, idx_out


def knn_distance(query: np.ndarray, reference: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """(n, d), (m, d) -> (n,): mean distance to the k nearest reference rows (`neighbours`)."""
    return neighbours(query, reference, k, chunk)[0].mean(axis=1)


def density_ratio(query: np.ndarray, reference: np.ndarray, reference_knn: np.ndarray, k: int) -> np.ndarray:
    """(n,): a query's mean distance to its k nearest reference rows over the same figure of
    those rows among the reference set (`reference_knn`, (m,)): a simplified local outlier
    factor (Breunig et al. 2000). About 1 inside the data however dense or sparse that part
    of it is; large where a sequence is far from neighbours that are close to each other."""
    dist, idx = neighbours(query, reference, k)
    return dist.mean(axis=1) / np.maximum(reference_knn[idx].mean(axis=1), 1e-12)


# --------------------------------------------------------------------------- fitting


def fit_detector(
    settings: DetectConfig,
    calibration: Outputs,
    reference_latent: np.ndarray,
    *,
    level: float,
    how: str,
    seed: int = 0,
) -> Detector:
    """Fits `settings.score` on `calibration` (normal data, or data with a known share of
    anomalies for a contamination level) and sets its thresholds at quantile `level`."""
    check_choice("score", settings.score, AnomalyScore)
    if not len(calibration.seqs):
        raise DetectError("there are no sequences to calibrate on")
    parts: dict[str, Any] = {}
    if settings.score in ("mahalanobis", "combined"):
        parts["mean"], parts["cov"] = fit_gaussian(calibration)
    if settings.score in ("latent", "density", "combined"):
        k = settings.neighbors if settings.score != "latent" else None
        parts.update(fit_reference(reference_latent, seed, k))
    unfitted = LengthBins((), (math.inf,))
    one_sided = calibration.seqs.values.dtype.kind in "iu"  # token ids: residuals are NLLs
    partial = Detector(settings, unfitted, 0.0, how, len(calibration.seqs), one_sided=one_sided, **parts)
    steps = partial.step_scores(calibration)
    if settings.score == "combined":
        errors = aggregate(steps, calibration.seqs.offsets, settings.aggregate, settings.top_fraction)
        density = partial._density(calibration)
        location, scale = zip(_robust_scale(errors), _robust_scale(density), strict=True)
        partial = replace(partial, parts_location=np.array(location), parts_scale=np.array(scale))
    scores = partial.sequence_scores(calibration, steps)
    bins = fit_length_bins(calibration.seqs.lengths, scores, settings.length_bins, level)
    finite = steps[np.isfinite(steps)]
    step_threshold = float(np.quantile(finite, level)) if len(finite) else math.inf
    return replace(partial, bins=bins, step_threshold=step_threshold)


def _robust_scale(x: np.ndarray) -> tuple[float, float]:
    """Median and interquartile range of the finite values (IQR 1 when it is 0)."""
    x = x[np.isfinite(x)]
    if not len(x):
        raise DetectError("no calibration sequence has a score (nothing was scored)")
    return float(np.median(x)), _iqr(x) or 1.0


def fit_gaussian(calibration: Outputs) -> tuple[np.ndarray, np.ndarray]:
    """μ and population Σ of the error vectors of the scored calibration steps."""
    r = calibration.residuals[calibration.has_target]  # (steps, R)
    if len(r) <= r.shape[1]:
        raise DetectError(
            f"detect.score 'mahalanobis' needs more scored calibration steps than error features "
            f"({len(r)} steps, {r.shape[1]} features); calibrate on more data or use detect.score: latent"
        )
    mean = r.mean(axis=0)
    cov = np.cov(r, rowvar=False, ddof=0).reshape(r.shape[1], r.shape[1])
    eig = np.linalg.eigvalsh(cov)
    if not eig[-1] > 0 or eig[0] <= SINGULAR * eig[-1]:
        raise DetectError(
            f"the calibration steps' error vectors have a singular covariance (eigenvalues from {eig[0]:.3g} "
            f"to {eig[-1]:.3g} over {len(r)} steps): some feature's error is constant or a combination of "
            "the others' (a constant or duplicated feature), so the Mahalanobis distance is undefined; "
            "drop that feature, calibrate on more varied data, or use detect.score: latent or error"
        )
    return mean, cov


def fit_reference(latent: np.ndarray, seed: int, k: int | None = None) -> dict[str, np.ndarray]:
    """The standardized reference set; with `k`, also each reference row's mean distance to
    its k nearest other rows (the density score's denominator)."""
    if len(latent) < 2:
        raise DetectError("the latent scores need at least 2 training sequences as their reference set")
    if len(latent) > MAX_REFERENCE:
        keep = np.sort(np.random.default_rng(seed).choice(len(latent), MAX_REFERENCE, replace=False))
        latent = latent[keep]
    mean, scale = latent.mean(axis=0), latent.std(axis=0)
    # A latent unit that never varies carries no distance; 1 keeps it from dividing by 0.
    scale = np.where(scale > 1e-12 * max(float(scale.max()), 1e-300), scale, 1.0)
    reference = (latent - mean) / scale
    parts = {"latent_mean": mean, "latent_scale": scale, "reference": reference}
    if k is not None:
        parts["reference_knn"] = knn_distance(reference, reference, k)
    return parts


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Detection:
    outputs: Outputs
    scores: np.ndarray  # (num_sequences,)
    thresholds: np.ndarray  # (num_sequences,)
    flags: np.ndarray  # (num_sequences,) bool: score > threshold
    step_scores: np.ndarray  # (num_steps,)
    step_threshold: float
    worst: np.ndarray  # (num_sequences, 2) int64: first and last step of the worst interval, -1 if none
    step_interval: np.ndarray  # (num_steps,) int64: interval number within its sequence (1, 2, ...), 0 if none
    how: str
    detector: Detector | None = None  # what scored them
    calibrated_now: bool = False  # the run had no detector for this checkpoint: it was fitted first
    metrics: dict[str, Any] | None = None  # with known labels: AUROC, AP, precision, recall, F1

    @property
    def seqs(self) -> Sequences:
        return self.outputs.seqs

    @property
    def ids(self) -> np.ndarray:
        """(num_sequences,) str, in input order."""
        return self.outputs.seqs.ids

    def with_context(self, detector: Detector, calibrated_now: bool, metrics: dict[str, Any] | None) -> Detection:
        return replace(self, detector=detector, calibrated_now=calibrated_now, metrics=metrics)


def detect_outputs(detector: Detector, out: Outputs, threshold: float | None = None) -> Detection:
    steps = detector.step_scores(out)
    scores = detector.sequence_scores(out, steps)
    if threshold is None:
        thresholds, how = detector.thresholds(out.seqs.lengths), detector.how
    else:
        thresholds, how = np.full(len(scores), float(threshold)), f"--threshold {threshold:g}"
    flags = np.nan_to_num(scores, nan=-np.inf) > thresholds
    worst, step_interval = intervals(steps, out.seqs.offsets, detector.step_threshold)
    return Detection(out, scores, thresholds, flags, steps, detector.step_threshold, worst, step_interval, how)


def intervals(step_scores: np.ndarray, offsets: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive steps scoring above `threshold`, per sequence.

    Returns (worst (num_sequences, 2): first and last step, within the sequence, of the run
    with the largest Σ (score - threshold), -1 where there is none; step_interval
    (num_steps,): each step's run number within its sequence, 1-based, 0 outside runs).
    """
    n = len(offsets) - 1
    above = np.nan_to_num(step_scores, nan=-np.inf) > threshold  # (num_steps,)
    seq_of = np.repeat(np.arange(n), np.diff(offsets))  # (num_steps,)
    first_step = np.zeros(len(above), bool)
    first_step[offsets[:-1][np.diff(offsets) > 0]] = True
    previous = np.r_[False, above[:-1]] & ~first_step
    starts = above & ~previous
    run = np.cumsum(starts) * above  # global run number, 0 outside runs
    worst = np.full((n, 2), -1, np.int64)
    step_interval = np.zeros(len(above), np.int64)
    if not starts.any():
        return worst, step_interval
    positions = np.flatnonzero(above)
    run_ids = run[positions] - 1  # 0-based global run of each above step
    run_seq = seq_of[np.flatnonzero(starts)]  # (runs,)
    first_run_of_seq = np.searchsorted(run_seq, np.arange(n))  # runs are ordered by sequence
    step_interval[positions] = run_ids - first_run_of_seq[seq_of[positions]] + 1
    excess = np.bincount(run_ids, weights=step_scores[positions] - threshold)
    run_start = np.flatnonzero(starts)  # (runs,)
    run_last = positions[np.r_[np.flatnonzero(np.diff(run_ids)), len(run_ids) - 1]]  # (runs,)
    # The worst run of each sequence: sort runs by (sequence, -excess) and take the first.
    order = np.lexsort((-excess, run_seq))
    chosen = order[np.r_[True, np.diff(run_seq[order]) != 0]]
    s = run_seq[chosen]
    worst[s, 0] = run_start[chosen] - offsets[s]
    worst[s, 1] = run_last[chosen] - offsets[s]
    return worst, step_interval


# --------------------------------------------------------------------------- the run directory


def checkpoint_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def arrays_name(checkpoint: str) -> str:
    return f"detector_{checkpoint}.npz"


def save_detector(run_dir: RunDir, detector: Detector) -> None:
    """detector_<checkpoint>.npz (allow_pickle=False) first, then detector.json naming its
    digest: a kill in between leaves a json whose digest no longer matches, never a
    detector mixing two fits."""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **detector.arrays())
    data = buffer.getvalue()
    name = arrays_name(detector.checkpoint)
    atomic.write_bytes(run_dir.file(name), data)
    entries = _read_entries(run_dir)
    entries[detector.checkpoint] = {**detector.to_dict(), "arrays": name, "arrays_sha256": _sha(data)}
    run_dir.write_json(DETECTOR, entries)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_entries(run_dir: RunDir) -> dict[str, Any]:
    path = run_dir.file(DETECTOR)
    if not path.is_file():
        return {}
    entries = run_dir.read_json(DETECTOR)
    if not isinstance(entries, dict):
        raise RunError(f"{path} is damaged (expected an object per checkpoint); run 'seqmask calibrate {run_dir}'")
    return entries


def load_detector(run_dir: RunDir, checkpoint: Checkpoint) -> Detector | None:
    """The saved detector for `checkpoint`, or None if there is none yet. A detector fitted
    on another version of the checkpoint (the run was trained on since) is an error."""
    entry = _read_entries(run_dir).get(checkpoint)
    if entry is None:
        return None
    fix = f"run 'seqmask calibrate {run_dir}" + ("" if checkpoint == "best" else f" --checkpoint {checkpoint}") + "'"
    try:
        data = run_dir.file(entry["arrays"]).read_bytes()
        if _sha(data) != entry["arrays_sha256"]:
            raise RunError(f"{run_dir.file(entry['arrays'])} does not match {run_dir.file(DETECTOR)}; {fix}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        settings = DetectConfig(**entry["settings"])
        check_choice("score", settings.score, AnomalyScore)
        raw_bins = entry["bins"]
        bins = LengthBins(tuple(map(float, raw_bins["edges"])), tuple(map(float, raw_bins["per_range"])))
        detector = Detector(
            settings,
            bins,
            float(entry["step_threshold"]),
            str(entry["how"]),
            int(entry["calibration_sequences"]),
            one_sided=bool(entry.get("one_sided", False)),
            checkpoint=checkpoint,
            checkpoint_digest=str(entry["checkpoint_digest"]),
            **arrays,
        )
    except RunError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise RunError(f"{run_dir.file(DETECTOR)} is damaged ({e}); {fix}") from e
    if detector.checkpoint_digest != checkpoint_digest(run_dir.require_checkpoint(checkpoint)):
        raise RunError(
            f"{run_dir.file(DETECTOR)} was calibrated on an earlier version of the {checkpoint} checkpoint "
            f"(the run has been trained on since); {fix}"
        )
    return detector


# --------------------------------------------------------------------------- calibrate


@dataclass(frozen=True)
class Threshold:
    """How `calibrate` sets the thresholds: exactly one of the three."""

    quantile: float | None = None
    contamination: float | None = None
    fpr: float | None = None

    def level(self, default: float) -> float:
        if self.contamination is not None:
            return 1.0 - self.contamination
        if self.fpr is not None:
            return 1.0 - self.fpr
        return self.quantile if self.quantile is not None else default


def calibrate(
    run: LoadedRun,
    data: Data = None,
    *,
    threshold: Threshold = Threshold(),
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
    threshold: Threshold = Threshold(),
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


@dataclass
class DetectionTotals:
    """What `detect` reports of data detected whole or part by part. With a labels file,
    each part's labels are looked up by id and its scores and flags kept (10 bytes a
    sequence), for AUROC and average precision over all of them."""

    labels: LabelFile | None = None
    sequences: int = 0
    flagged: int = 0
    low: float = math.inf  # the lowest and highest threshold applied
    high: float = -math.inf
    flagged_steps: int = 0
    how: str = ""
    step_threshold: float = math.nan
    _scores: list[np.ndarray] = field(default_factory=list, repr=False)
    _flags: list[np.ndarray] = field(default_factory=list, repr=False)
    _known: list[np.ndarray] = field(default_factory=list, repr=False)

    def add(self, d: Detection) -> Detection:
        self.sequences += len(d.scores)
        self.flagged += int(d.flags.sum())
        if len(d.thresholds):
            self.low, self.high = min(self.low, float(d.thresholds.min())), max(self.high, float(d.thresholds.max()))
        self.flagged_steps += int((d.step_interval > 0).sum())
        self.how, self.step_threshold = d.how, d.step_threshold
        if self.labels is not None:
            known = self.labels.lookup(d.ids)
            self.labels.check_found(known, d.ids)
            self._known.append(known.astype(np.int8))
            self._scores.append(d.scores.astype(np.float64))
            self._flags.append(d.flags)
        return d

    def metrics(self, source: str) -> dict[str, Any] | None:
        """AUROC, AP, precision, recall, F1 against the labels file (None without one);
        DataError for an id of the file that was not among the data's."""
        if self.labels is None:
            return None
        self.labels.check_all_used(source)
        known, scores, flags = (np.concatenate(x) for x in (self._known, self._scores, self._flags))
        return label_metrics(known.astype(np.int64), scores, flags)


def summary(totals: DetectionTotals, detector: Detector, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the summary file next to `detect --output` holds."""
    return {
        "sequences": totals.sequences,
        "flagged": totals.flagged,
        "score": detector.score,
        "settings": asdict(detector.settings),
        "threshold": totals.how,
        "thresholds": {"min": totals.low, "max": totals.high} if totals.sequences else None,
        "step_threshold": totals.step_threshold,
        "flagged_steps": totals.flagged_steps,
        "labels": metrics,
    }


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
    """The MAX_REFERENCE training sequences fit_reference would keep of the whole split."""
    return train.take(sample_rows(len(train), MAX_REFERENCE, seed))


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
    "Detection",
    "DetectError",
    "Detector",
    "LengthBins",
    "Outputs",
    "Threshold",
    "calibrate",
    "calibrate_on",
    "density_ratio",
    "detect",
    "detect_outputs",
    "detect_parts",
    "DetectionTotals",
    "sample_rows",
    "calibration_sample",
    "reference_sample",
    "detector_for",
    "fit_detector",
    "intervals",
    "knn_distance",
    "load_detector",
    "model_outputs",
    "reference_latent",
    "save_detector",
]
