"""Scoring a model on a whole dataset: the one place the reported loss is computed.

Training's validation loss, `evaluate` and the per-sequence errors all come from
`score`, so they are the same number by construction.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from seqmask.batching import inference_batches, padded_batch
from seqmask.losses import loss_terms


@dataclass(frozen=True)
class Scores:
    sums: np.ndarray  # (num_sequences,) float64: Σ w·e of each sequence
    counts: np.ndarray  # (num_sequences,) float64: Σ w of each sequence (scored steps)

    @property
    def loss(self):
        """Σ over the dataset of w·e ÷ Σ w: the exact dataset mean, not a mean of batch means."""
        total = self.counts.sum()
        return float(self.sums.sum() / total) if total > 0 else float("nan")

    @property
    def per_sequence(self):
        """Each sequence's own mean error (NaN for a sequence with nothing scored)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / self.counts, np.nan)


def make_loss_fn(train_cfg, padding):
    """values, lengths, predictions -> per-sequence (Σ w·e, Σ w), for this run's loss."""

    def fn(values, lengths, predictions):
        return loss_terms(
            values,
            lengths,
            predictions,
            loss=train_cfg.loss,
            error=train_cfg.error,
            target=train_cfg.target,
            padding=padding,
        )

    return fn


def batch_signature(num_features):
    return (
        tf.TensorSpec((None, None, num_features), tf.float32),  # values (batch, time, features)
        tf.TensorSpec((None,), tf.int32),  # lengths (batch,)
    )


def make_eval_step(model, loss_fn, num_features):
    @tf.function(input_signature=batch_signature(num_features))
    def eval_step(values, lengths):
        predictions = model([values, lengths], training=False)  # (batch, time, features)
        return loss_fn(values, lengths, predictions)

    return eval_step


def score(eval_step, seqs, batch_size, max_len, padding):
    """Scores every sequence of `seqs`, in order, with float64 accumulation."""
    sums = np.zeros(len(seqs))
    counts = np.zeros(len(seqs))
    for indices in inference_batches(seqs.lengths, batch_size):
        values, lengths = padded_batch(seqs, indices, "bucket", max_len, padding)
        s, c = eval_step(values, lengths)
        sums[indices] = s.numpy()
        counts[indices] = c.numpy()
    return Scores(sums, counts)
