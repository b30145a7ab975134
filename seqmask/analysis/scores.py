"""The score math of anomaly detection: scores of sequences and their steps, and thresholds.

Owns: the scores' statistics and distances (`mahalanobis_squared`, `aggregate`,
`neighbours`, `knn_distance`, `density_ratio`), fitting them on calibration data
(`fit_gaussian`, `fit_reference`, `fit_length_bins`), the thresholds and how they are set
(`LengthBins`, `Threshold`), anomalous intervals (`intervals`), and `Outputs`, the model's
pass that they all read. numpy only: never TensorFlow or Keras, directly or through
`seqmask.model` (the `Scores` sums are named for type checking only). The fitted detector
and its files are `detector`; running a model to get `Outputs` is `detect`.

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

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from seqmask.data import Sequences, gather_index
from seqmask.errors import RunError

if TYPE_CHECKING:  # seqmask.model.scoring imports TensorFlow; the scores only read its sums
    from seqmask.model.scoring import Scores

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
        # The same three sums, subset: `replace` builds a new Scores without importing its module.
        sums, counts, hits = self.scores.sums[idx], self.scores.counts[idx], self.scores.hits[idx]
        scores = replace(self.scores, sums=sums, counts=counts, hits=hits)
        return Outputs(
            self.seqs.subset(idx),
            self.residuals[rows],
            self.has_target[rows],
            self.step_errors[rows],
            self.feature_errors[rows],
            scores,
            self.latent[idx],
        )


# --------------------------------------------------------------------------- thresholds


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


# --------------------------------------------------------------------------- scores


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


def robust_scale(x: np.ndarray) -> tuple[float, float]:
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


# --------------------------------------------------------------------------- intervals


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
