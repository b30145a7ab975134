"""The processes of a multi-worker run: the tasks TF_CONFIG names and which one this
process is, which strategy `auto` resolves to, the coordination service that bounds their
waits, SIGTERM given back to Python, and a lost or late peer named in one `PeerLost`."""

from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import dataclass
from typing import Any, Literal

import tensorflow as tf

from seqmask.config import Config, Distribute, TrainConfig
from seqmask.errors import ConfigError, RunError

Mode = Literal["none", "mirrored", "multi_worker"]


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
