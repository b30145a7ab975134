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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from seqmask.config import Config, Distribute, TrainConfig
from seqmask.errors import ConfigError, DeviceError, RunError
from seqmask.model.scoring import EvalStep, LossFn, batch_signature

Mode = Literal["none", "mirrored", "multi_worker"]
# values (batch, time, features), lengths (batch,), stop () -> [Σ w·e, Σ w, Σ w·hit, stops]
TrainStep = Callable[[Any, Any, Any], tf.Tensor]


class PeerLost(RunError):
    """Another worker of a multi-worker run died or stopped answering. Exit code 143, as
    for SIGTERM: "stopped, resume me" (schedulers such as a TFJob retry codes >= 128)."""

    exit_code = 143


@dataclass(frozen=True)
class Task:
    """One process of a multi-worker cluster, as TF_CONFIG names it."""

    job: str  # "chief" or "worker"
    index: int
    address: str

    def __str__(self) -> str:
        return f"{self.job} {self.index} ({self.address})"


@dataclass(frozen=True)
class ClusterSpec:
    """What TF_CONFIG says: every task, chief first, and which one this process is."""

    tasks: tuple[Task, ...]
    me: Task

    @property
    def is_chief(self) -> bool:
        """The chief (job "chief", or worker 0 when there is none) writes the run directory."""
        return self.me == self.tasks[0]

    def named(self, job: str, index: int) -> Task | None:
        return next((t for t in self.tasks if (t.job, t.index) == (job, index)), None)


def cluster_from_env(environ: dict[str, str] | None = None) -> ClusterSpec | None:
    """TF_CONFIG's cluster, or None without one (or with a single task)."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config.get("cluster", {}), tf_config["task"]
        tasks = [
            Task(job, i, str(address)) for job in ("chief", "worker") for i, address in enumerate(cluster.get(job, []))
        ]
        me = Task(str(task["type"]), int(task["index"]), "")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(
            "TF_CONFIG is not valid: expected JSON like "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}} '
            f"({type(e).__name__}: {e})"
        ) from None
    if len(tasks) < 2:
        return None
    found = next((t for t in tasks if (t.job, t.index) == (me.job, me.index)), None)
    if found is None:
        raise ConfigError(
            f"TF_CONFIG: this task, {me.job} {me.index}, is not in its cluster "
            f"({', '.join(f'{t.job} {t.index}' for t in tasks)})"
        )
    return ClusterSpec(tuple(tasks), found)


def resolve(mode: Distribute, environ: dict[str, str] | None = None, num_gpus: int | None = None) -> Mode:
    """`auto`: multi_worker when TF_CONFIG names more than one task, mirrored with more than
    one GPU, else none."""
    if mode != "auto":
        return mode
    if cluster_from_env(environ) is not None:
        return "multi_worker"
    if num_gpus is None:
        num_gpus = len(tf.config.list_physical_devices("GPU"))
    return "mirrored" if num_gpus > 1 else "none"


def is_worker_process(cfg: Config, environ: dict[str, str] | None = None) -> bool:
    """True in a multi-worker run's processes other than the chief: they train, but leave
    the run directory to the chief."""
    spec = cluster_from_env(environ)
    if spec is None or spec.is_chief:
        return False
    mode = cfg.train.distribute
    return mode == "multi_worker" or (mode == "auto" and resolve(mode, environ) == "multi_worker")


@dataclass
class Cluster:
    """The strategy a run trains under, and where this process stands in it."""

    mode: Mode
    strategy: tf.distribute.Strategy
    spec: ClusterSpec | None = None

    @property
    def num_replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def distributed(self) -> bool:
        return self.mode != "none"

    @property
    def is_chief(self) -> bool:
        return self.spec is None or self.spec.is_chief

    def describe(self) -> str:
        """In words, for the start line and metrics.json."""
        if self.mode == "none":
            return "one process"
        if self.spec is None:
            return f"mirrored over {self.num_replicas} replicas"
        workers = len(self.spec.tasks)
        return f"multi_worker: {workers} workers, {self.num_replicas} replicas in all (this is {self.spec.me})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "replicas": self.num_replicas,
            "workers": len(self.spec.tasks) if self.spec else 1,
        }

    @contextmanager
    def peer_errors(self, run_dir: object) -> Iterator[None]:
        """A collective that fails because a peer went away becomes one `PeerLost`."""
        try:
            yield
        except (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
            tf.errors.CancelledError,
            tf.errors.AbortedError,
            tf.errors.InternalError,
            tf.errors.FailedPreconditionError,
        ) as e:
            if self.spec is None:
                raise
            raise PeerLost(_peer_message(self.spec, str(e), run_dir)) from None


def _peer_message(spec: ClusterSpec, text: str, run_dir: object) -> str:
    named = None
    for job, index in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", text):
        task = spec.named(job, int(index))
        if task is not None and task != spec.me:
            named = task
            break
    who = str(named) if named else "another worker"
    why = next(
        (line.strip() for line in text.splitlines() if re.search(r"is down|connect|unavailable|deadline", line, re.I)),
        "",
    )
    return (
        f"{who} of this multi-worker run died or stopped answering"
        + (f" ({why[:160]})" if why else "")
        + f"; restart every worker with 'seqmask train {run_dir} --resume' to continue from the last checkpoint"
    )


def setup(train_cfg: TrainConfig, device: str) -> Cluster:
    """The strategy for `train.distribute`. Must run before TensorFlow's first op."""
    mode = resolve(train_cfg.distribute)
    if mode == "none":
        return Cluster("none", tf.distribute.get_strategy())
    if mode == "mirrored":
        return Cluster("mirrored", tf.distribute.MirroredStrategy(_mirrored_devices(train_cfg.replicas, device)))
    spec = cluster_from_env()
    if spec is None:
        raise ConfigError(
            "'train.distribute' is 'multi_worker' but TF_CONFIG names no cluster of two or more "
            "workers; set TF_CONFIG in every worker's environment (README: 'Training on several GPUs or machines')"
        )
    _configure_coordination(spec, train_cfg)
    implementation = (
        tf.distribute.experimental.CommunicationImplementation.RING
        if device == "cpu"
        else tf.distribute.experimental.CommunicationImplementation.AUTO
    )
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    before = signal.getsignal(signal.SIGTERM)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as e:
        missing = _missing_tasks(spec, str(e))
        raise PeerLost(
            f"not every worker of TF_CONFIG came up within train.startup_timeout = {train_cfg.startup_timeout:g} s "
            f"(waiting for {', '.join(map(str, missing))}); start every worker, each with its own TF_CONFIG "
            "task, or raise train.startup_timeout"
        ) from None
    except RuntimeError as e:
        raise RunError(
            f"cannot start multi-worker training: {e}. TensorFlow's collectives must be set up "
            "before its first op: run each worker as its own process (seqmask train ...)"
        ) from None
    _restore_sigterm(before)
    return Cluster("multi_worker", strategy, spec)


def _restore_sigterm(handler: Any) -> None:
    """TensorFlow's coordination service takes SIGTERM for its own preemption notifier (a C
    handler Python never hears of), which would leave SIGTERM doing nothing at all. Python's
    handler goes back: seqmask's (checkpoint, exit 143) under the CLI, the default otherwise."""
    if handler is None:  # not set from Python: nothing to restore
        return
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals are the main thread's to handle
        pass


def _configure_coordination(spec: ClusterSpec, train_cfg: TrainConfig) -> None:
    """The coordination service MultiWorkerMirroredStrategy would configure, with bounded
    waits: registration is a barrier that fails after `startup_timeout` on every task that
    came, and a task silent for `worker_timeout` (no heartbeat) fails the collectives."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    leader = spec.tasks[0]  # the chief, or worker 0: the coordination leader MWMS would pick
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=sum(t.job == job for t in spec.tasks))
        for job in ("chief", "worker")
        if any(t.job == job for t in spec.tasks)
    ]
    ctx = context.context()
    ctx.configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{leader.job}/replica:0/task:{leader.index}",
        coordinated_jobs=jobs,
        cluster_register_timeout_in_ms=int(train_cfg.startup_timeout * 1000),
        heartbeat_timeout_in_ms=int(train_cfg.worker_timeout * 1000),
    )
    # Without the barrier a task registers alone and then waits, unbounded, for the others'
    # devices; with it, registration itself waits for every task, up to the timeout.
    ctx.coordination_service.cluster_register_with_barrier = True


def _missing_tasks(spec: ClusterSpec, text: str) -> list[Task]:
    """The tasks a registration error names as late, else every other task (a worker that
    is not the leader only learns that the leader did not answer)."""
    named = [spec.named(job, int(i)) for job, i in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", text)]
    late = [t for t in named if t is not None and t != spec.me]
    return list(dict.fromkeys(late)) or [t for t in spec.tasks if t != spec.me]


def _mirrored_devices(replicas: int | None, device: str) -> list[str]:
    """The devices of a mirrored run: the first `replicas` GPUs, or `replicas` logical CPU
    devices (one CPU split so a laptop can run, and a test can check, a mirrored config)."""
    if device != "cpu":
        gpus = tf.config.list_logical_devices("GPU")
        count = replicas or len(gpus)
        if count > len(gpus):
            raise DeviceError(f"'train.replicas' is {count} but TensorFlow sees {len(gpus)} GPUs")
        return [f"/gpu:{i}" for i in range(count)]
    count = replicas or 1
    cpus = tf.config.list_physical_devices("CPU")
    try:
        if count > 1:
            tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        pass  # TensorFlow has started in this process: its CPU devices stay as they are
    have = len(tf.config.list_logical_devices("CPU"))
    if have < count:
        raise RunError(
            f"'train.replicas' is {count} but this process has {have} CPU device(s), and TensorFlow "
            "has already started so no more can be made; train in a fresh process (seqmask train ...)"
        )
    return [f"/cpu:{i}" for i in range(count)]


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
