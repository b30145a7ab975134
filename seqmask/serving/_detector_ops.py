"""A fitted detector (detect.py) re-expressed as TensorFlow ops on a batch: the step and
sequence scores, their aggregation over a sequence, and the per-length thresholds, its
fitted arrays as constants, float64 where detect.py is float64."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqmask.analysis.detect import SELF_DISTANCE, Detector


def _aggregate(steps: tf.Tensor, scored: tf.Tensor, how: str, top_fraction: float) -> tf.Tensor:
    """detect.aggregate: (batch, time) float64 step scores -> (batch,) mean / max / top-fraction
    mean of the scored finite ones, NaN where there is none."""
    keep = tf.logical_and(scored, tf.math.is_finite(steps))  # (batch, time)
    n = tf.reduce_sum(tf.cast(keep, tf.float64), axis=1)  # (batch,)
    if how == "mean":
        out = tf.reduce_sum(tf.where(keep, steps, 0.0), axis=1) / tf.maximum(n, 1.0)
    elif how == "max":
        out = tf.reduce_max(tf.where(keep, steps, -np.inf), axis=1)
    else:  # top: the mean of the k = max(1, ⌈f·n⌉) largest
        k = tf.maximum(tf.math.ceil(top_fraction * n - 1e-9), 1.0)  # (batch,)
        ranked = tf.sort(tf.where(keep, steps, -np.inf), axis=1, direction="DESCENDING")  # (batch, time)
        rank = tf.cast(tf.range(tf.shape(steps)[1]), tf.float64)[None, :]  # (1, time)
        out = tf.reduce_sum(tf.where(rank < k[:, None], ranked, 0.0), axis=1) / k
    return tf.where(n > 0, out, np.nan)  # (batch,)


class _DetectorOps:
    """detect.Detector's sequence score and thresholds, as TensorFlow ops on a batch."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        d = detector
        if d.mean is not None and d.cov is not None:
            eigenvalues, vectors = np.linalg.eigh(d.cov)  # as detect.mahalanobis_squared does
            self.gauss_mean = np.asarray(d.mean, np.float64)  # (R,)
            self.vectors = np.asarray(vectors, np.float64)  # (R, R)
            self.root = np.sqrt(eigenvalues)  # (R,)
        if d.reference is not None:
            assert d.latent_mean is not None and d.latent_scale is not None
            reference = np.asarray(d.reference, np.float64)
            self.latent_mean = np.asarray(d.latent_mean, np.float64)  # (latent_dim,)
            self.latent_scale = np.asarray(d.latent_scale, np.float64)  # (latent_dim,)
            self.reference = reference  # (m, latent_dim)
            self.reference_sq = np.einsum("ij,ij->i", reference, reference)  # (m,)
            # detect.neighbours: k nearest, after skipping the query itself (k + 1 candidates).
            self.k = max(1, min(d.settings.neighbors, len(reference) - 1))
        if d.reference_knn is not None:
            self.reference_knn = np.asarray(d.reference_knn, np.float64)  # (m,)

    def step_scores(self, residuals: tf.Tensor, has_target: tf.Tensor) -> tf.Tensor:
        """detect.mahalanobis_squared: (batch, time, R) float64 -> (batch, time) d²_t, NaN
        where not scored: d² = |((r - μ) V) / √λ|², Σ = V diag(λ) Vᵀ."""
        centred = residuals - tf.constant(self.gauss_mean)  # (batch, time, R)
        if self.detector.one_sided:
            centred = tf.maximum(centred, 0.0)
        shape = tf.shape(centred)
        flat = tf.reshape(centred, (-1, shape[2]))  # (batch * time, R)
        whitened = tf.matmul(flat, tf.constant(self.vectors)) / tf.constant(self.root)  # (batch * time, R)
        d2 = tf.reshape(tf.reduce_sum(whitened * whitened, axis=1), shape[:2])  # (batch, time)
        return tf.where(has_target, d2, np.nan)

    def _neighbours(self, latent: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """detect.neighbours of the standardized latent vectors: distances and indices
        (batch, k) of the k nearest reference rows, skipping one at distance < SELF_DISTANCE."""
        q = (latent - tf.constant(self.latent_mean)) / tf.constant(self.latent_scale)  # (batch, latent_dim)
        # |q - r|² = |q|² - 2 q·r + |r|², clipped: rounding can make it slightly negative.
        d2 = (
            tf.reduce_sum(q * q, axis=1)[:, None]
            - tf.matmul(2.0 * q, tf.constant(self.reference), transpose_b=True)
            + tf.constant(self.reference_sq)[None, :]
        )  # (batch, m)
        dist = tf.sqrt(tf.maximum(d2, 0.0))  # (batch, m)
        negated, index = tf.math.top_k(-dist, k=self.k + 1)  # (batch, k + 1) each, nearest first
        near = -negated
        # The nearest candidate is the query itself: take candidates 1..k, else 0..k-1.
        itself = (near[:, 0] < SELF_DISTANCE)[:, None]  # (batch, 1)
        dist_k = tf.where(itself, near[:, 1:], near[:, :-1])  # (batch, k)
        index_k = tf.where(itself, index[:, 1:], index[:, :-1])  # (batch, k)
        return dist_k, index_k

    def _density(self, dist_k: tf.Tensor, index_k: tf.Tensor) -> tf.Tensor:
        """detect.density_ratio: mean distance / the same figure of those neighbours."""
        theirs = tf.reduce_mean(tf.gather(tf.constant(self.reference_knn), index_k), axis=1)  # (batch,)
        return tf.reduce_mean(dist_k, axis=1) / tf.maximum(theirs, 1e-12)

    def sequence_scores(
        self, error: tf.Tensor, residuals: tf.Tensor, has_target: tf.Tensor, latent: tf.Tensor
    ) -> tf.Tensor:
        """Detector.sequence_scores: (batch,) float64 from the batch's per-sequence error
        (batch,), residuals (batch, time, R) float64, has_target (batch, time) and latent
        (batch, latent_dim) float64."""
        d = self.detector
        score = d.score
        if score == "error":
            return error
        if score == "latent":
            dist_k, _ = self._neighbours(latent)
            return tf.reduce_mean(dist_k, axis=1)
        if score == "density":
            return self._density(*self._neighbours(latent))
        steps = self.step_scores(residuals, has_target)  # (batch, time)
        errors = _aggregate(steps, has_target, d.settings.aggregate, d.settings.top_fraction)  # (batch,)
        if score == "mahalanobis":
            return errors
        assert d.parts_location is not None and d.parts_scale is not None
        density = self._density(*self._neighbours(latent))  # (batch,)
        loc, scale = d.parts_location, d.parts_scale
        return (errors - float(loc[0])) / float(scale[0]) + (density - float(loc[1])) / float(scale[1])

    def thresholds(self, lengths: tf.Tensor) -> tf.Tensor:
        """LengthBins.thresholds: range b = the number of edges <= the length."""
        bins = self.detector.bins
        per_range = tf.constant(bins.per_range, tf.float64)  # (ranges,)
        if not bins.edges:
            return tf.fill(tf.shape(lengths), per_range[0])  # (batch,)
        edges = tf.constant(bins.edges, tf.float64)  # (ranges - 1,)
        at = tf.cast(lengths, tf.float64)[:, None] >= edges[None, :]  # (batch, ranges - 1)
        return tf.gather(per_range, tf.reduce_sum(tf.cast(at, tf.int32), axis=1))  # (batch,)
