"""Scoring a model on a whole dataset: the one place the reported loss is computed.

Training's validation loss, `evaluate` and the per-sequence errors all come from
`score`, so they are the same number by construction.
"""

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from seqmask.config import Config, Padding
from seqmask.data import Sequences
from seqmask.data.batching import padded_batch, scoring_batches
from seqmask.data.streaming import ShardedSequences
from seqmask.model.losses import ScoredError, loss_terms
from seqmask.model.masks import Tensor

# values, lengths, predictions -> per-sequence (Σ w·e, Σ w, Σ w·hit), each (batch,).
LossFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
# values, lengths -> per-sequence (Σ w·e, Σ w, Σ w·hit): a batch through the model and LossFn.
EvalStep = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


@dataclass(frozen=True)
class Scores:
    sums: np.ndarray  # (num_sequences,) float64: Σ w·e of each sequence
    counts: np.ndarray  # (num_sequences,) float64: Σ w of each sequence (scored steps)
    hits: np.ndarray  # (num_sequences,) float64: Σ w·hit (tokens: correctly predicted steps)

    @property
    def loss(self) -> float:
        """Σ over the dataset of w·e ÷ Σ w: the exact dataset mean, not a mean of batch means."""
        return _ratio(self.sums.sum(), self.counts.sum())

    @property
    def accuracy(self) -> float:
        """Tokens: the fraction of scored steps whose most likely token is the target."""
        return _ratio(self.hits.sum(), self.counts.sum())

    @property
    def per_sequence(self) -> np.ndarray:
        """Each sequence's own mean error (NaN for a sequence with nothing scored)."""
        return _ratios(self.sums, self.counts)

    @property
    def per_sequence_accuracy(self) -> np.ndarray:
        return _ratios(self.hits, self.counts)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def _ratios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / b, np.nan)


def error_of(cfg: Config) -> ScoredError:
    """Token runs are scored by cross-entropy whatever `train.error` says."""
    return "cross_entropy" if cfg.input.kind == "tokens" else cfg.train.error


def make_loss_fn(cfg: Config) -> LossFn:
    """values, lengths, predictions -> per-sequence (Σ w·e, Σ w, Σ w·hit), for this run."""
    train_cfg, padding, error = cfg.train, cfg.data.padding, error_of(cfg)

    def fn(values: Tensor, lengths: Tensor, predictions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return loss_terms(
            values,
            lengths,
            predictions,
            loss=train_cfg.loss,
            error=error,
            target=train_cfg.target,
            padding=padding,
        )

    return fn


def batch_signature(
    num_features: int | None, dtype: tf.DType | str = tf.float32
) -> tuple[tf.TensorSpec, tf.TensorSpec]:
    return (
        tf.TensorSpec((None, None, num_features), dtype),  # values (batch, time, features)
        tf.TensorSpec((None,), tf.int32),  # lengths (batch,)
    )


def make_eval_step(model: keras.Model, loss_fn: LossFn) -> EvalStep:
    values_spec = model.inputs[0]

    @tf.function(input_signature=batch_signature(values_spec.shape[-1], values_spec.dtype))
    def eval_step(values: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        predictions = model([values, lengths], training=False)  # (batch, time, features)
        return loss_fn(values, lengths, predictions)

    return eval_step


def score(eval_step: EvalStep, seqs: Sequences | ShardedSequences, batch_size: int, padding: Padding) -> Scores:
    """Scores every sequence of `seqs`, in order, with float64 accumulation."""
    sums, counts, hits = (np.zeros(len(seqs)) for _ in range(3))
    for indices in scoring_batches(seqs, batch_size):
        values, lengths = padded_batch(seqs, indices, "bucket", None, padding)
        s, c, h = eval_step(values, lengths)
        sums[indices], counts[indices], hits[indices] = s.numpy(), c.numpy(), h.numpy()
    return Scores(sums, counts, hits)
