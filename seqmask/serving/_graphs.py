"""The graphs an export traces: the run's autoencoder rebuilt from Keras's own layers
(`portable_model`), and `_Graphs`, its exported functions with the run's normalization,
per-sequence error and anomaly score folded in (values, lengths -> named outputs)."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from seqmask.analysis.detect import Detector
from seqmask.data import Normalizer
from seqmask.data.vocab import Vocabulary
from seqmask.model.autoencoder import LATENT, build_autoencoder
from seqmask.model.losses import step_weights, targets_and_mask, token_errors
from seqmask.model.masks import length_mask_ops
from seqmask.model.scoring import make_loss_fn
from seqmask.run.loaded import LoadedRun
from seqmask.serving._detector_ops import _DetectorOps
from seqmask.serving._layout import ANOMALY_OUTPUTS, ExportError, Tensors

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
