"""The model a run trains: built new or loaded from `last.keras`, its optimizer, which LSTM
kernel it runs, and its training and validation steps (one process or distributed)."""

from __future__ import annotations

import keras
import tensorflow as tf

from seqmask.config import Config, TrainConfig
from seqmask.data.vocab import Vocabulary
from seqmask.errors import RunError
from seqmask.model import native
from seqmask.model.autoencoder import build_autoencoder
from seqmask.model.scoring import batch_signature, make_eval_step, make_loss_fn
from seqmask.run.checkpoints import load_checkpoint
from seqmask.run.directory import RunDir
from seqmask.run.splits import Splits, load_transform, same_transform
from seqmask.run.state import TrainState
from seqmask.training import distribute
from seqmask.training._session import StepFn
from seqmask.training.distribute import Cluster
from seqmask.training.progress import Reporter


def _from_checkpoint(run: RunDir, cfg: Config, splits: Splits) -> tuple[keras.Model, TrainState]:
    if not same_transform(load_transform(run, cfg), splits.transform):
        raise RunError(
            f"cannot resume {run}: the training data changed since the run started "
            "(its normalization statistics or vocabulary differ)"
        )
    model, raw_state = load_checkpoint(run.checkpoint("last"), compile=True)
    expected = model.inputs[0].shape[-1]
    if expected != splits.train.num_features:
        raise RunError(f"{run}: the model takes {expected} features but the data has {splits.train.num_features}")
    return model, TrainState.from_dict(raw_state)


def _new_model(cfg: Config, splits: Splits, device: str) -> keras.Model:
    # The one use of global random state: the initial weights. Batches are drawn from
    # (seed, epoch) alone (batching.py) and the step itself is deterministic, so nothing
    # is re-seeded per epoch (re-seeding TensorFlow's global generator every epoch makes
    # every later step slower: BENCHMARKS.md, "Training throughput").
    keras.utils.set_random_seed(cfg.train.seed)
    vocab_size = len(splits.transform) if isinstance(splits.transform, Vocabulary) else None
    model = build_autoencoder(
        cfg.model,
        splits.train.num_features,
        cfg.data.padding,
        fused=device == "cpu",
        vocab_size=vocab_size,
        embedding_dim=cfg.input.embedding_dim,
        seed=cfg.train.seed,
        future_fraction=cfg.train.future_fraction if cfg.train.target == "composite" else 0.0,
    )
    model.compile(optimizer=_optimizer(cfg.train))  # so checkpoints carry the optimizer state
    return model


def _optimizer(train_cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam with gradient clipping on the global norm; AdamW where weight decay is asked for."""
    rate, clip = train_cfg.learning_rate, train_cfg.clip_norm
    if train_cfg.weight_decay:
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=train_cfg.weight_decay, global_clipnorm=clip)
    return keras.optimizers.Adam(learning_rate=rate, global_clipnorm=clip)


def _lstm_kernel(device: str, padding: str, reporter: Reporter) -> str:
    """Which LSTM the model runs, in words; builds seqmask's CPU kernel first if it will.

    The fused layers (the kernel) are used on CPU with post padding (model.py); pre
    padding needs Keras's masked LSTM inside the recurrence, and a GPU runs cuDNN's.
    """
    if device != "cpu":
        return "Keras (cuDNN)"
    if padding != "post":
        return "Keras (masked, for pre padding)"
    if native.needs_build():
        reporter.building_kernel()
    return native.status()


def _make_steps(cfg: Config, cluster: Cluster, model: keras.Model) -> tuple[StepFn, StepFn]:
    """The training and validation steps: one process's, or the strategy's (distribute.py)."""
    loss_fn = make_loss_fn(cfg)
    if cluster.distributed:
        train_step = distribute.make_train_step(cluster, model, model.optimizer, loss_fn)
        eval_step = distribute.make_eval_step(cluster, model, loss_fn)
    else:
        train_step, eval_step = _make_train_step(model, model.optimizer, loss_fn), make_eval_step(model, loss_fn)
    return train_step, eval_step


def _make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn: StepFn) -> StepFn:
    values_spec = model.inputs[0]

    @tf.function(input_signature=batch_signature(values_spec.shape[-1], values_spec.dtype))
    def train_step(values: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            predictions = model([values, lengths], training=True)  # (batch, time, features)
            sums, counts, hits = loss_fn(values, lengths, predictions)  # (batch,) x3
            total, count = tf.reduce_sum(sums), tf.reduce_sum(counts)
            # The batch's own exact mean; max() guards a batch with nothing scored.
            loss = total / tf.maximum(count, 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return tf.stack([total, count, tf.reduce_sum(hits)])  # one tensor: one copy out per step

    return train_step
