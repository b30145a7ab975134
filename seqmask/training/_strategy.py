"""The strategy a run trains under: `Cluster` (the strategy and where this process stands
in it) and `setup`, which makes it before TensorFlow's first op: the default strategy,
mirrored over GPUs or logical CPU devices, or multi-worker with bounded waits (_workers.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from seqmask.config import TrainConfig
from seqmask.errors import ConfigError, DeviceError, RunError
from seqmask.training._workers import (
    ClusterSpec,
    Mode,
    PeerLost,
    _configure_coordination,
    _missing_tasks,
    _peer_message,
    _restore_sigterm,
    cluster_from_env,
    resolve,
)


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
