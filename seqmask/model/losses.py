"""The masked loss, exactly normalized.

Both loss modes are one weighted sum. For each sequence b and step t let

    e[b, t] = mean over features of (y - ŷ)²   (mse)   or   |y - ŷ|   (mae)
            = -log softmax(ŷ[b, t])[y]            (cross_entropy: tokens; ŷ are logits)
    w[b, t] = 1 where (b, t) is a scored step, else 0

    per_step:   scored = every real step that has a target
    last_step:  scored = the last real step that has a target (one per sequence)

    loss = Σ w·e / Σ w

Over a dataset, Σ w·e and Σ w are summed over all batches before the one division, so the
figure is the mean over the real steps (or sequences) of the whole dataset, not a mean of
batch means, and does not depend on the batch size or on how much padding a batch has.

Targets: `reconstruct` scores ŷ[t] against x[t]; `next_step` scores ŷ[t] against x[t+1], so
a step has a target only if it and the step after it are both real: the last real step has
none, and a length-1 sequence has none at all. `reverse` scores ŷ[t] against the real step
that mirrors t, x[s + e - t] (s, e: the sequence's first and last real step). `composite`
scores as `reconstruct`: what differs is the model's input in training (the encoder sees
only a prefix, model.build_autoencoder's `future_fraction`).
"""

from typing import Literal

from keras import ops

from seqmask.config import Loss, Padding, StepError, Target, check_choice
from seqmask.model.masks import Tensor, length_mask_ops, reverse_by_length_ops

# The errors loss_terms scores: the config's `train.error` choices for numeric values, plus
# cross_entropy, which token input (input.kind: tokens) always uses: it is the error of the
# input kind, not a config choice (scoring.py picks it).
ScoredError = Literal[StepError, "cross_entropy"]


def token_errors(labels: Tensor, logits: Tensor, has_target: Tensor) -> tuple[Tensor, Tensor]:
    """labels (batch, time, 1) int, logits (batch, time, vocab) -> cross-entropy and hits,
    each (batch, time), 0 where there is no target."""
    labels = ops.cast(labels[:, :, 0], "int32")  # (batch, time); padded steps hold id 0
    ce = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)  # (batch, time)
    hits = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels), "float32")
    return ops.where(has_target, ce, 0.0), ops.where(has_target, hits, 0.0)


def step_errors(y_true: Tensor, y_pred: Tensor, error: StepError, has_target: Tensor) -> Tensor:
    """(batch, time, features) x2 -> (batch, time): the error of each scored step, else 0.

    The difference is zeroed *before* the error, not after: a padded label may hold any
    value (inf included), and inf * 0 or a where() over an inf branch gives NaN gradients.
    """
    check_choice("error", error, StepError)
    diff = ops.where(has_target[:, :, None], y_pred - y_true, 0.0)  # (batch, time, features)
    if error == "mse":
        return ops.mean(ops.square(diff), axis=-1)
    return ops.mean(ops.abs(diff), axis=-1)  # mae


def targets_and_mask(values: Tensor, lengths: Tensor, target: Target, padding: Padding) -> tuple[Tensor, Tensor]:
    """What each step is scored against, and which steps have a target.

    values: (batch, time, features), lengths: (batch,) -> labels (batch, time, features),
    has_target (batch, time) bool.
    """
    check_choice("target", target, Target)
    time_len = ops.shape(values)[1]
    real = length_mask_ops(lengths, time_len, padding)  # (batch, time)
    if target in ("reconstruct", "composite"):  # composite: the model hides the future, not the loss
        return values, real
    if target == "reverse":
        # labels[t] = the real step that mirrors t within the sequence: the decoder's first
        # output is scored against the last real step. Padded labels stay padding.
        return reverse_by_length_ops(values, lengths, padding), real
    # next_step: labels[t] = values[t + 1]; the appended zero step is never scored, because
    # has_target[t] needs step t + 1 to be real too.
    labels = ops.concatenate([values[:, 1:], ops.zeros_like(values[:, :1])], axis=1)  # (batch, time, features)
    next_real = ops.concatenate([real[:, 1:], ops.zeros_like(real[:, :1])], axis=1)  # (batch, time)
    return labels, ops.logical_and(real, next_real)


def step_weights(has_target: Tensor, loss: Loss) -> Tensor:
    """(batch, time) bool -> (batch, time) float32 weights w of the module docstring."""
    check_choice("loss", loss, Loss)
    w = ops.cast(has_target, "float32")  # (batch, time)
    if loss == "per_step":
        return w
    # last_step: the last scored step is the largest t with has_target; a sequence with no
    # target at all (next_step on a length-1 sequence) gets no weight.
    time_len = ops.shape(w)[1]
    steps = ops.arange(time_len, dtype="int32")[None, :]  # (1, time)
    last = ops.max(ops.where(has_target, steps, -1), axis=1, keepdims=True)  # (batch, 1)
    return ops.cast(ops.equal(steps, last), "float32") * w  # (batch, time)


def loss_terms(
    values: Tensor,
    lengths: Tensor,
    y_pred: Tensor,
    *,
    loss: Loss,
    error: ScoredError,
    target: Target,
    padding: Padding,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sequence (Σ w·e, Σ w, Σ w·hit), each (batch,): add these up, then divide once.

    hit (tokens only, else 0) is 1 where the most likely token is the target token.
    """
    check_choice("error", error, ScoredError)
    labels, has_target = targets_and_mask(values, lengths, target, padding)
    w = step_weights(has_target, loss)  # (batch, time)
    y_pred = ops.cast(y_pred, "float32")
    if error == "cross_entropy":
        e, hits = token_errors(labels, y_pred, has_target)  # (batch, time) x2
    else:
        e = step_errors(labels, y_pred, error, has_target)  # (batch, time)
        hits = ops.zeros_like(e)
    return ops.sum(e * w, axis=1), ops.sum(w, axis=1), ops.sum(hits * w, axis=1)  # (batch,) x3
