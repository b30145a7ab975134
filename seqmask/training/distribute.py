"""Training on several devices or machines with tf.distribute, to the one-process numbers.

`train.distribute` picks TensorFlow's strategy: `mirrored` (several GPUs, or logical CPU
devices, in one process), `multi_worker` (several processes or machines, described by the
standard `TF_CONFIG` environment variable) or `none`. Whatever the strategy, a step sees
the global batch the one-process run draws from (seed, epoch) (batching.py), and:

  * the batch is cut into R equal slices of ceil(B / R) rows, one per replica; rows a
    slice lacks are copies of the batch's first row with weight 0, so every replica takes
    part in every collective (a replica left with nothing would otherwise hang the rest);
  * the loss is L = Σ_replicas Σ w·e ÷ Σ_replicas Σ w: each replica returns the gradient of
    its own Σ w·e and its Σ w, one all-reduce sums both, and dividing once gives ∂L/∂θ,
    the one-process run's gradient up to the order of the float32 additions;
  * the optimizer then clips the global norm of that summed gradient and applies it once,
    in cross-replica context. (Calling Keras 3's `apply_gradients` on each replica would
    clip each replica's local gradient before summing: a different update.)

Validation scores each replica's slice and assembles the per-sequence sums with an
all-reduce (every other row is an exact zero), so every worker sees the same figures and
early stopping and the schedule decide alike everywhere. A stop request (Ctrl-C, SIGTERM)
on any worker rides the step's all-reduce, so all workers checkpoint at the same batch.

Waits are bounded by TensorFlow's coordination service, configured here before the strategy
(MultiWorkerMirroredStrategy keeps a configuration it finds): every task must register
within `train.startup_timeout` (a barrier, so a worker that never starts is an error on all
the others, not a hang), and a task whose heartbeats stop for `train.worker_timeout` aborts
every collective. A killed worker is found sooner, when its connection is refused. Either
way training stops with one `PeerLost` naming the worker.

The processes of a multi-worker run (TF_CONFIG, the coordination service, lost peers) are
_workers.py's; the strategy and its setup, _strategy.py's. This module holds the replica
logic: how a global batch is cut over the replicas, and the distributed steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from seqmask.model.scoring import EvalStep, LossFn, batch_signature
from seqmask.training._strategy import Cluster, setup
from seqmask.training._workers import (
    ClusterSpec,
    Mode,
    PeerLost,
    Task,
    cluster_from_env,
    is_worker_process,
    resolve,
)
from seqmask.training._workers import _missing_tasks as _missing_tasks  # tests/training/test_distribute.py
from seqmask.training._workers import _peer_message as _peer_message  # tests/training/test_distribute.py

# values (batch, time, features), lengths (batch,), stop () -> [Σ w·e, Σ w, Σ w·hit, stops]
TrainStep = Callable[[Any, Any, Any], tf.Tensor]


# --------------------------------------------------------------------------- the steps


def local_replica_ids(cluster: Cluster) -> tuple[int, ...]:
    """The ids (replica_id_in_sync_group) of this process's replicas, asked of the strategy
    itself rather than derived from TF_CONFIG's task order."""
    strategy = cluster.strategy
    ids = strategy.run(lambda: tf.distribute.get_replica_context().replica_id_in_sync_group)
    return tuple(sorted(int(x) for x in strategy.experimental_local_results(ids)))


def rows_of_replicas(n: int, replicas: int, mine: tuple[int, ...]) -> np.ndarray:
    """(k,) int64: the rows of a batch of `n` that replicas `mine` train on (as `_split`
    cuts it: replica r takes rows r·per .. (r+1)·per, per = ceil(n / R)), ascending. A
    worker pads only these: the other rows' values are never gathered by its replicas."""
    per = -(-n // replicas)
    rows = [np.arange(r * per, min((r + 1) * per, n)) for r in mine]
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)


def _split(lengths: tf.Tensor, replicas: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The global batch's rows for R replicas: (n, per, rows (R·per,), weights (R·per,)).

    rows[r·per : (r+1)·per] are replica r's; the R·per − n rows past the batch repeat row 0
    with weight 0.
    """
    n = tf.shape(lengths)[0]
    per = (n + replicas - 1) // replicas
    fill = per * replicas - n
    rows = tf.concat([tf.range(n), tf.zeros([fill], tf.int32)], axis=0)
    weights = tf.concat([tf.ones([n]), tf.zeros([fill])], axis=0)
    return n, per, rows, weights


def _mine(per: tf.Tensor, rows: tf.Tensor, weights: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """This replica's rows of the global batch and their weights."""
    start = tf.distribute.get_replica_context().replica_id_in_sync_group * per
    return rows[start : start + per], weights[start : start + per]


def _first_local(strategy: tf.distribute.Strategy, value: Any) -> Any:
    """An all-reduced value is the same on every replica: take this process's first copy."""
    return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], value)


def agree(cluster: Cluster, *values: object) -> bool:
    """True when every worker passed equal `values` (compared by a 40-bit digest), e.g. the
    training position: a worker started fresh beside workers that resume would otherwise
    train on other batches and then wait forever in a collective the others never reach.

    With R replicas holding digest parts h_r: Σ h_r² · R = (Σ h_r)² only when all are equal
    (Cauchy-Schwarz); 20-bit parts keep both sides exact in float64 for R <= 64."""
    if cluster.spec is None:
        return True
    digest = hashlib.sha256(repr(values).encode()).digest()
    parts = [int.from_bytes(digest[i : i + 3], "big") >> 4 for i in (0, 3)]  # two 20-bit numbers
    local = tf.constant([*parts, *(p * p for p in parts)], tf.float64)  # (4,)
    strategy = cluster.strategy

    @tf.function
    def summed() -> tf.Tensor:
        return _first_local(
            strategy,
            strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)),
        )

    total, squares = summed().numpy().reshape(2, 2)
    return all(squares[i] * cluster.num_replicas == total[i] ** 2 for i in range(2))


def make_train_step(
    cluster: Cluster, model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn: LossFn
) -> TrainStep:
    """The distributed training step: (values, lengths, stop) of the global batch ->
    [Σ w·e, Σ w, Σ w·hit, number of workers asking to stop], summed over all replicas."""
    strategy, replicas = cluster.strategy, cluster.num_replicas
    values_spec = model.inputs[0]
    variables = model.trainable_variables
    local = max(len(strategy.extended.worker_devices), 1)  # replicas in this process

    def replica_step(
        values: tf.Tensor, lengths: tf.Tensor, stop: tf.Tensor, per: tf.Tensor, rows: tf.Tensor, weights: tf.Tensor
    ) -> list[tf.Tensor]:
        ctx = tf.distribute.get_replica_context()
        mine, w = _mine(per, rows, weights)  # (per,) x2
        x, n = tf.gather(values, mine), tf.gather(lengths, mine)  # (per, time, features), (per,)
        with tf.GradientTape() as tape:
            predictions = model([x, n], training=True)  # (per, time, features)
            sums, counts, hits = loss_fn(x, n, predictions)  # (per,) x3
            total = tf.reduce_sum(sums * w)
        grads = tape.gradient(total, variables)
        # A worker's stop request counts once: on its first local replica.
        first_here = tf.equal(ctx.replica_id_in_sync_group % local, 0)
        asks = stop * tf.cast(first_here, tf.float32)
        stats = tf.stack([total, tf.reduce_sum(counts * w), tf.reduce_sum(hits * w), asks])
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [stats, *grads])

    signature = (*batch_signature(values_spec.shape[-1], values_spec.dtype), tf.TensorSpec((), tf.float32))

    @tf.function(input_signature=signature)
    def train_step(values: tf.Tensor, lengths: tf.Tensor, stop: tf.Tensor) -> tf.Tensor:
        _, per, rows, weights = _split(lengths, replicas)
        reduced = _first_local(strategy, strategy.run(replica_step, args=(values, lengths, stop, per, rows, weights)))
        stats, grads = reduced[0], reduced[1:]
        # ∂L/∂θ = Σ ∂(Σ w·e)/∂θ ÷ Σ w; max() guards a batch with nothing scored.
        scale = 1.0 / tf.maximum(stats[1], 1.0)
        optimizer.apply([g * scale for g in grads], variables)  # clips the global norm once
        return stats

    return train_step


def make_eval_step(cluster: Cluster, model: keras.Model, loss_fn: LossFn) -> EvalStep:
    """The distributed scoring step: (values, lengths) -> per-sequence (Σ w·e, Σ w, Σ w·hit),
    each (batch,), as scoring.make_eval_step gives, the same on every worker."""
    strategy, replicas = cluster.strategy, cluster.num_replicas
    values_spec = model.inputs[0]

    def replica_step(
        values: tf.Tensor, lengths: tf.Tensor, per: tf.Tensor, rows: tf.Tensor, weights: tf.Tensor
    ) -> tf.Tensor:
        ctx = tf.distribute.get_replica_context()
        mine, w = _mine(per, rows, weights)
        x, n = tf.gather(values, mine), tf.gather(lengths, mine)
        predictions = model([x, n], training=False)
        sums, counts, hits = loss_fn(x, n, predictions)  # (per,) x3
        out = tf.stack([sums, counts, hits], axis=1) * w[:, None]  # (per, 3)
        # Each replica writes its rows into a zero table; the sum is every row, exactly.
        start = ctx.replica_id_in_sync_group * per
        table = tf.scatter_nd(tf.range(start, start + per)[:, None], out, [per * replicas, 3])
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, table)  # (R·per, 3)

    @tf.function(input_signature=batch_signature(values_spec.shape[-1], values_spec.dtype))
    def eval_step(values: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        n, per, rows, weights = _split(lengths, replicas)
        table = _first_local(strategy, strategy.run(replica_step, args=(values, lengths, per, rows, weights)))
        table = table[:n]  # (batch, 3)
        return table[:, 0], table[:, 1], table[:, 2]

    return eval_step


__all__ = [
    "Cluster",
    "ClusterSpec",
    "Mode",
    "PeerLost",
    "Task",
    "TrainStep",
    "agree",
    "cluster_from_env",
    "is_worker_process",
    "local_replica_ids",
    "make_eval_step",
    "make_train_step",
    "resolve",
    "rows_of_replicas",
    "setup",
]
