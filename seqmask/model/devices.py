"""Choosing the device before TensorFlow touches one."""

import os

import tensorflow as tf

from seqmask.config import Device
from seqmask.errors import DeviceError

_cpu_shards = 1


def _usable_cores() -> int:
    """The cores this process may run on (os.cpu_count() counts the whole host)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_shards() -> int:
    """Into how many parallel slices the fused LSTM cuts a batch (1 on GPU)."""
    return _cpu_shards


def configure_device(device: Device, cpu_threads: int | None = None) -> str:
    """Applies `train.device` (auto | cpu | gpu) and `train.cpu_threads`; returns a short
    description of the device used.

    On CPU each op runs on one thread and as many ops run at once as there are threads
    (default: every core). The LSTM ops of seqmask's batches are too small to split well
    (one thread each measured faster than two), so the fused LSTM cuts the batch into one
    slice per thread instead (bench/profile_step.py).
    """
    global _cpu_shards
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" or (device == "auto" and not gpus):
        threads = cpu_threads or _usable_cores()
        try:
            # Must precede TensorFlow's first op; in a process that already ran one (tests,
            # notebooks) the setting in force stays.
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
        _cpu_shards = threads
        if gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # already initialized in this process: place ops on the CPU anyway
                pass
        return "cpu"
    _cpu_shards = 1
    if not gpus:
        raise DeviceError(
            "'train.device' is 'gpu' but TensorFlow sees no GPU; install the GPU build "
            "(pip install 'seqmask[gpu]') and check nvidia-smi, or use device: auto"
        )
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"gpu ({details.get('device_name', gpus[0].name)})"
