"""A finished run as a model that needs neither seqmask nor its compiled CPU kernel.

`export` rebuilds the run's autoencoder from Keras's own layers (`keras.layers.LSTM`
where training ran seqmask's fused kernel: the same weights, the same function, see
model.py), traces it together with the run's normalization, scoring and anomaly score
into TensorFlow graphs, and writes either

    savedmodel   a TensorFlow SavedModel with three signatures (`tf.saved_model.load`
                 needs only TensorFlow), or
    onnx         one `model.onnx` (tf2onnx) holding every output of the three,

plus `seqmask_export.json`, what the export holds (`metadata`).

Inputs, for a batch of sequences padded as the run pads (`data.padding`):

    values   (batch, time, features) float32, RAW values as the user's files hold them
             (token runs: (batch, time, 1) int32 vocabulary ids, `vocabulary.txt` maps them)
    lengths  (batch,) int32, each sequence's number of real steps

Whatever sits at padded steps changes nothing: the graph replaces it by zero before the
normalization reaches the model. Signatures (each output is per sequence unless said):

    encode       latent (batch, latent_dim) float32: `seqmask encode`'s vectors
    reconstruct  reconstruction (batch, time, features) float32 in raw units, zero at
                 padded steps (tokens: int32, the most likely id per step); the model's
                 output as trained (train.target next_step: step t predicts step t + 1;
                 reverse: the step that mirrors t)
    score        error (batch,) float64: `seqmask evaluate`'s per-sequence error Σ w·e / Σ w
                 (NaN with nothing scored), scored_steps (batch,) int32: Σ w
                 [tokens: accuracy (batch,) float64]
                 [a calibrated run: anomaly_score, threshold (batch,) float64 and anomaly
                 (batch,) int32 0/1, as `seqmask detect` gives them]

The normalization is folded in: x' = (x - mean) / std at real steps (float64, cast to
float32 like data.Normalizer), and the reconstruction is mapped back, x̂ = x̂' · std + mean.
The per-sequence error and the anomaly score reuse losses.py and re-express detect.py's
numpy math in TensorFlow ops, float64 where detect.py is float64, its fitted arrays as
constants: the numbers are those of `evaluate` and `detect` to float rounding.

The SavedModel's signatures are also TF-Serving signatures (`serving_default` is
`encode`). ONNX has no signatures, so the ONNX file is one graph with every output
(latent, reconstruction, error, scored_steps [, accuracy] [, anomaly_score, threshold,
anomaly]); a runtime asked for some of them computes what those need. Two tf2onnx habits
are worked around: its `where` as `c·x + (1 - c)·y` (NaN wherever the other branch holds
inf or NaN: `_exact_selects`), and Keras's argmax, which reads the sign bit through a
Bitcast that opset 17 lacks (token accuracy uses tf.argmax). Step-level detection
(`detect --steps`: step scores, intervals) is not exported: only sequence scores.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from seqmask._version import __version__
from seqmask.analysis.detect import SELF_DISTANCE, Detector, checkpoint_digest, load_detector
from seqmask.config import check_choice
from seqmask.data import Normalizer
from seqmask.data.vocab import Vocabulary
from seqmask.errors import ConfigError, RunError
from seqmask.model.autoencoder import LATENT, build_autoencoder
from seqmask.model.masks import length_mask_ops
from seqmask.model.losses import step_weights, targets_and_mask, token_errors
from seqmask.model.scoring import error_of, make_loss_fn
from seqmask.run.directory import VOCABULARY
from seqmask.run.loaded import LoadedRun

ExportFormat = Literal["savedmodel", "onnx"]
METADATA = "seqmask_export.json"
ONNX_FILE = "model.onnx"
# ONNX opset of the converted graph: old enough for every current runtime, new enough for
# the ops the masked LSTM loop needs (Loop with dynamic trip count, TopK with dynamic k).
ONNX_OPSET = 17
SIGNATURES = ("encode", "reconstruct", "score")
ANOMALY_OUTPUTS = ("anomaly_score", "threshold", "anomaly")

Tensors = dict[str, tf.Tensor]


class ExportError(RunError):
    """The run cannot be exported as asked, or the output cannot be written (exit code 1)."""


@dataclass(frozen=True)
class ExportInfo:
    """What `export` wrote, for the CLI to print."""

    path: Path  # the export directory
    format: ExportFormat
    checkpoint: str
    signatures: dict[str, tuple[str, ...]]  # signature -> its outputs (onnx: the one graph's, under "model")
    with_anomaly_score: bool
    anomaly_score: str | None  # the detector's score (detect.score), None without a detector
    files: tuple[str, ...]  # the top-level entries of `path`
    seconds: float


# --------------------------------------------------------------------------- the portable model


def portable_model(run: LoadedRun) -> keras.Model:
    """The run's autoencoder rebuilt from Keras's own layers, with the run's weights.

    `build_autoencoder(fused=False)` is the same architecture with `keras.layers.LSTM`
    wherever training used seqmask's fused kernel; the weight lists match one to one.
    cuDNN is switched off so a graph traced on a GPU machine runs on any CPU too.
    """
    cfg = run.cfg
    vocab_size = len(run.transform) if isinstance(run.transform, Vocabulary) else None
    num_features = int(run.model.inputs[0].shape[-1])
    model = build_autoencoder(
        cfg.model,
        num_features,
        cfg.data.padding,
        fused=False,
        vocab_size=vocab_size,
        embedding_dim=cfg.input.embedding_dim,
        seed=cfg.train.seed,
        future_fraction=cfg.train.future_fraction if cfg.train.target == "composite" else 0.0,
    )
    try:
        model.set_weights(run.model.get_weights())
    except ValueError as e:
        raise ExportError(f"{run.run_dir}: the checkpoint's weights do not fit the run's config ({e})") from e
    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            layer.use_cudnn = False
    return model


# --------------------------------------------------------------------------- the detector in TF ops


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


# --------------------------------------------------------------------------- the traced graphs


class _Graphs:
    """The exported functions of one run: values, lengths -> a dict of named outputs."""

    def __init__(self, run: LoadedRun, detector: Detector | None) -> None:
        cfg = run.cfg
        self.run, self.detector = run, detector
        self.tokens = isinstance(run.transform, Vocabulary)
        self.padding, self.target, self.loss = cfg.data.padding, cfg.train.target, cfg.train.loss
        self.model = portable_model(run)
        self.num_features = int(self.model.inputs[0].shape[-1])
        latent_layer = self.model.get_layer(LATENT)
        self.latent_dim = int(latent_layer.output.shape[-1])
        self.encoder = keras.Model(self.model.inputs, latent_layer.output, name="encoder")
        # One pass for the score: the reconstruction and the latent vector together.
        self.both = keras.Model(self.model.inputs, [self.model.outputs[0], latent_layer.output], name="both")
        self.loss_fn = make_loss_fn(cfg)
        if not self.tokens:
            assert isinstance(run.transform, Normalizer)
            # numpy here, constants when traced (see _DetectorOps).
            self.mean, self.std = run.transform.mean, run.transform.std  # (features,) float64 each
        self.detector_ops = _DetectorOps(detector) if detector is not None else None

    @property
    def input_signature(self) -> tuple[tf.TensorSpec, tf.TensorSpec]:
        return (
            tf.TensorSpec((None, None, self.num_features), tf.int32 if self.tokens else tf.float32, name="values"),
            tf.TensorSpec((None,), tf.int32, name="lengths"),
        )

    def score_outputs(self) -> tuple[str, ...]:
        names = ("error", "scored_steps") + (("accuracy",) if self.tokens else ())
        return names + (ANOMALY_OUTPUTS if self.detector is not None else ())

    def outputs(self) -> dict[str, tuple[str, ...]]:
        return {"encode": ("latent",), "reconstruct": ("reconstruction",), "score": self.score_outputs()}

    # -- pieces ------------------------------------------------------------------------

    def _model_input(self, values: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Raw values -> what the model reads (normalized, zero at padded steps), and the
        (batch, time) real-step mask. Zeroing the padding first keeps garbage (inf, NaN,
        ids outside the vocabulary) away from every op, as `seqmask.data.pad` does."""
        real = length_mask_ops(lengths, tf.shape(values)[1], self.padding)  # (batch, time)
        if self.tokens:
            return tf.where(real[:, :, None], values, tf.zeros_like(values)), real  # (batch, time, 1)
        # data.Normalizer.apply: float64, then float32.
        scaled = tf.cast(
            (tf.cast(values, tf.float64) - tf.constant(self.mean)) / tf.constant(self.std), tf.float32
        )  # (batch, time, features)
        return tf.where(real[:, :, None], scaled, tf.zeros_like(scaled)), real

    def _reconstruction(self, predictions: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
        if self.tokens:
            ids = tf.argmax(predictions, axis=-1, output_type=tf.int32)[:, :, None]  # (batch, time, 1)
            return tf.where(real[:, :, None], ids, tf.zeros_like(ids))
        raw = tf.cast(
            tf.cast(predictions, tf.float64) * tf.constant(self.std) + tf.constant(self.mean), tf.float32
        )  # (batch, time, features)
        return tf.where(real[:, :, None], raw, tf.zeros_like(raw))

    def _scores(self, x: tf.Tensor, lengths: tf.Tensor, predictions: tf.Tensor, latent: tf.Tensor) -> Tensors:
        sums, counts, hits = self.loss_fn(x, lengths, predictions)  # (batch,) x3, float32
        sums64, counts64 = tf.cast(sums, tf.float64), tf.cast(counts, tf.float64)
        # scoring.Scores.per_sequence: float64 division, NaN with nothing scored.
        error = tf.where(counts64 > 0, sums64 / tf.maximum(counts64, 1.0), np.nan)  # (batch,)
        out = {"error": error, "scored_steps": tf.cast(tf.round(counts), tf.int32)}
        labels, has_target = targets_and_mask(x, lengths, self.target, self.padding)  # (b, t, f), (b, t)
        if self.tokens:
            # Σ w·hit as losses.token_errors counts it, with tf.argmax for keras.ops.argmax:
            # Keras's (which only differs when +0.0 and -0.0 tie for the largest logit) reads
            # the sign bit through a Bitcast, an op ONNX opset 17 does not have.
            predicted = tf.argmax(predictions, axis=-1, output_type=tf.int32)  # (batch, time)
            hit = tf.logical_and(tf.equal(predicted, tf.cast(labels[:, :, 0], tf.int32)), has_target)
            w = step_weights(has_target, self.loss)  # (batch, time)
            hits = tf.reduce_sum(tf.cast(hit, tf.float32) * w, axis=1)  # (batch,)
            out["accuracy"] = tf.where(counts64 > 0, tf.cast(hits, tf.float64) / tf.maximum(counts64, 1.0), np.nan)
        ops = self.detector_ops
        if ops is None:
            return out
        # detect._output_step's residuals: y - ŷ at scored steps (tokens: the step's NLL).
        if self.tokens:
            nll, _ = token_errors(labels, tf.cast(predictions, tf.float32), has_target)  # (batch, time)
            residual = nll[:, :, None]  # (batch, time, 1)
        else:
            diff = tf.cast(labels, tf.float32) - tf.cast(predictions, tf.float32)  # (batch, time, features)
            residual = tf.where(has_target[:, :, None], diff, 0.0)
        score = ops.sequence_scores(error, tf.cast(residual, tf.float64), has_target, tf.cast(latent, tf.float64))
        threshold = ops.thresholds(lengths)  # (batch,)
        # detect_outputs: nan_to_num(score, nan=-inf) > threshold.
        flag = tf.where(tf.math.is_nan(score), tf.constant(-np.inf, tf.float64), score) > threshold
        out.update(anomaly_score=score, threshold=threshold, anomaly=tf.cast(flag, tf.int32))
        return out

    # -- the exported functions -------------------------------------------------------

    def encode(self, values: tf.Tensor, lengths: tf.Tensor) -> Tensors:
        x, _ = self._model_input(values, lengths)
        return {"latent": self.encoder([x, lengths], training=False)}  # (batch, latent_dim)

    def reconstruct(self, values: tf.Tensor, lengths: tf.Tensor) -> Tensors:
        x, real = self._model_input(values, lengths)
        predictions = self.model([x, lengths], training=False)  # (batch, time, features | vocab)
        return {"reconstruction": self._reconstruction(predictions, real)}

    def score(self, values: tf.Tensor, lengths: tf.Tensor) -> Tensors:
        x, _ = self._model_input(values, lengths)
        predictions, latent = self.both([x, lengths], training=False)
        return self._scores(x, lengths, predictions, latent)

    def everything(self, values: tf.Tensor, lengths: tf.Tensor) -> Tensors:
        """Every output of the three signatures from one pass (the ONNX graph)."""
        x, real = self._model_input(values, lengths)
        predictions, latent = self.both([x, lengths], training=False)
        out = {"latent": latent, "reconstruction": self._reconstruction(predictions, real)}
        out.update(self._scores(x, lengths, predictions, latent))
        # Named identities: tf2onnx names the ONNX outputs after the graph's output tensors.
        return {name: tf.identity(t, name=name) for name, t in out.items()}

    def function(self, name: str) -> Callable[..., Tensors]:
        fn = {"encode": self.encode, "reconstruct": self.reconstruct, "score": self.score}.get(name, self.everything)
        return tf.function(fn, input_signature=self.input_signature, autograph=False)


# --------------------------------------------------------------------------- writing


def _write_savedmodel(graphs: _Graphs, target: Path) -> dict[str, tuple[str, ...]]:
    archive = keras.export.ExportArchive()
    archive.track(graphs.model)
    for name in SIGNATURES:
        archive.add_endpoint(name, graphs.function(name))
    archive.write_out(str(target), verbose=False)
    return graphs.outputs()


def _exact_selects(graph: Any, nodes: list[Any]) -> list[Any]:
    """A tf2onnx rewriter: every TensorFlow select becomes an ONNX `Where`.

    By default tf2onnx turns `where(c, x, y)` into `c·x + (1 - c)·y` (faster in onnxruntime),
    which is NaN wherever the branch not taken holds inf or NaN (inf · 0 = NaN): garbage in
    the padding, and the -inf fillers of the anomaly score, would leak into every output.
    `handles_nan` is tf2onnx's own switch for the exact form.
    """
    for node in nodes:
        if node.type in ("Select", "SelectV2"):
            node.set_attr("handles_nan", True)
        for body in (node.get_body_graphs() or {}).values():
            _exact_selects(body, body.get_nodes())
    return nodes


def _write_onnx(graphs: _Graphs, target: Path) -> dict[str, tuple[str, ...]]:
    try:
        tf2onnx = importlib.import_module("tf2onnx")
    except ImportError as e:
        raise ExportError(
            f"--format onnx needs tf2onnx and onnx, which are not installed ({e}); "
            "install them with: pip install 'seqmask[export]'"
        ) from e
    fn = graphs.function("everything")
    quiet = logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        proto, _ = tf2onnx.convert.from_function(
            fn,
            input_signature=graphs.input_signature,
            opset=ONNX_OPSET,
            custom_rewriter=[_exact_selects],
            output_path=str(target / ONNX_FILE),
        )
    except Exception as e:  # tf2onnx fails in many ways on graphs it cannot express
        raise ExportError(f"tf2onnx could not convert the run's graph to ONNX: {e}") from e
    finally:
        quiet.setLevel(level)
    try:  # tf2onnx leaves an op it cannot map in the graph (and only logs it): refuse that file
        importlib.import_module("onnx").checker.check_model(proto)
    except Exception as e:
        raise ExportError(f"tf2onnx could not express the run's graph in ONNX opset {ONNX_OPSET}: {e}") from e
    names = tuple(o.name for o in proto.graph.output)
    expected = {n for outs in graphs.outputs().values() for n in outs} | {"latent", "reconstruction"}
    if set(names) != expected:
        raise ExportError(f"tf2onnx named the ONNX outputs {names}, expected {sorted(expected)}")
    return {"model": names}


def metadata(graphs: _Graphs, format: ExportFormat, signatures: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The contents of seqmask_export.json."""
    run, cfg, detector = graphs.run, graphs.run.cfg, graphs.detector
    values_dtype = "int32" if graphs.tokens else "float32"
    meta: dict[str, Any] = {
        "seqmask_version": __version__,
        "format": format,
        "file": ONNX_FILE if format == "onnx" else ".",
        "run_dir": str(run.run_dir),
        "checkpoint": run.checkpoint,
        "checkpoint_sha256": checkpoint_digest(run.run_dir.require_checkpoint(run.checkpoint)),
        "input_kind": cfg.input.kind,
        "padding": cfg.data.padding,
        "num_features": graphs.num_features,
        "feature_names": list(cfg.data.feature_columns) if cfg.data.feature_columns else None,
        "latent_dim": graphs.latent_dim,
        "inputs": {
            "values": {"shape": ["batch", "time", graphs.num_features], "dtype": values_dtype},
            "lengths": {"shape": ["batch"], "dtype": "int32"},
        },
        "signatures": {name: list(outs) for name, outs in signatures.items()},
        "error": {"error": error_of(cfg), "loss": cfg.train.loss, "target": cfg.train.target},
    }
    if graphs.tokens:
        meta["vocabulary"] = VOCABULARY
        meta["values"] = "vocabulary ids (line i of vocabulary.txt is id i; 0 = <pad>, 1 = <unk>)"
    else:
        assert isinstance(run.transform, Normalizer)
        meta["values"] = "raw values; the model applies (x - mean) / std itself"
        meta["normalization"] = {"mean": run.transform.mean.tolist(), "std": run.transform.std.tolist()}
    if detector is None:
        meta["anomaly_score"] = None
        meta["anomaly_note"] = (
            f"the run has no detector for the {run.checkpoint} checkpoint: the score gives the error only; "
            "run 'seqmask calibrate' and export again for anomaly scores"
        )
    else:
        meta["anomaly_score"] = {
            "score": detector.score,
            "settings": asdict(detector.settings),
            "threshold_rule": detector.how,
            "length_bins": {"edges": list(detector.bins.edges), "per_range": list(detector.bins.per_range)},
            "anomaly": "anomaly_score > threshold (a NaN score is never anomalous)",
        }
    if format == "savedmodel":
        meta["serving_default"] = "encode"
    if format == "onnx":
        meta["onnx"] = {
            "opset": ONNX_OPSET,
            "note": "ONNX has no signatures: one graph computes every output; ask the runtime for the ones needed",
        }
    return meta


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_output(run: LoadedRun, output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output} exists and is not a directory")
    run_path = run.run_dir.path.resolve()
    if output.resolve() == run_path or output.resolve() in run_path.parents:
        raise ExportError(f"{output} holds the run {run.run_dir}; export to another directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ExportError(f"{output} exists and is not empty; pass --overwrite to replace it")


@contextmanager
def _building(output: Path) -> Iterator[Path]:
    """A temporary directory beside `output`, renamed onto it if the block succeeds; on
    any failure it is removed and `output` is left as it was."""
    parent = output.absolute().parent
    made = [p for p in (parent, *parent.parents) if not p.exists()]  # the parents this call creates
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        _remove_empty(made)
        raise ExportError(f"cannot write {output}: {e}") from e
    try:
        yield tmp
        old = parent / f".{output.name}.{uuid.uuid4().hex[:8]}.old"
        if output.exists():
            os.rename(output, old)
        try:
            os.rename(tmp, output)
        except OSError:
            if old.exists():
                os.rename(old, output)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise ExportError(f"cannot write {output}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise


def _remove_empty(directories: list[Path]) -> None:
    """Removes the directories a failed export created, innermost first, if still empty."""
    for d in directories:
        try:
            d.rmdir()
        except OSError:
            return


def export(
    run: LoadedRun, output: str | Path, format: ExportFormat = "savedmodel", overwrite: bool = False
) -> ExportInfo:
    """Writes `run` (at its loaded checkpoint) to the directory `output` as a model that
    needs only TensorFlow (`savedmodel`) or an ONNX runtime (`onnx`).

    Args:
        run: a loaded run (`evaluate.load_run(run_dir, checkpoint)`).
        output: the export directory; written whole or not at all.
        format: "savedmodel" or "onnx" (needs the `export` extra: tf2onnx, onnx).
        overwrite: replace `output` if it exists and is not empty.

    Returns:
        An `ExportInfo`: where, what and how long.

    Raises:
        ConfigError: an unknown format.
        ExportError: `output` exists and is not empty (without `overwrite`), holds the run,
            or cannot be written; tf2onnx is missing or cannot convert the graph.
        RunError: the run's detector is stale (`seqmask calibrate` again).
    """
    started = time.perf_counter()
    try:
        check_choice("format", format, ExportFormat)
    except ValueError as e:
        raise ConfigError(f"--format: {e}") from e
    output = Path(output)
    _check_output(run, output, overwrite)
    detector = load_detector(run.run_dir, run.checkpoint)
    graphs = _Graphs(run, detector)
    with _building(output) as tmp:
        signatures = _write_savedmodel(graphs, tmp) if format == "savedmodel" else _write_onnx(graphs, tmp)
        if graphs.tokens:
            shutil.copyfile(run.run_dir.file(VOCABULARY), tmp / VOCABULARY)
        (tmp / METADATA).write_text(json.dumps(metadata(graphs, format, signatures), indent=2) + "\n")
        files = tuple(sorted(p.name for p in tmp.iterdir()))
    return ExportInfo(
        path=output,
        format=format,
        checkpoint=run.checkpoint,
        signatures=signatures,
        with_anomaly_score=detector is not None,
        anomaly_score=detector.score if detector is not None else None,
        files=files,
        seconds=time.perf_counter() - started,
    )


__all__ = ["METADATA", "ExportError", "ExportFormat", "ExportInfo", "export", "metadata", "portable_model"]
