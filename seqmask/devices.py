"""Choosing the device before TensorFlow touches one."""

import tensorflow as tf

from seqmask.errors import ConfigError


def configure_device(device, cpu_threads=None):
    """Applies `train.device` (auto | cpu | gpu) and `train.cpu_threads`; returns a short
    description of the device used."""
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" or (device == "auto" and not gpus):
        try:
            # Must precede TensorFlow's first op; in a process that already ran one (tests,
            # notebooks) the setting in force stays.
            tf.config.threading.set_intra_op_parallelism_threads(cpu_threads or 1)
            tf.config.threading.set_inter_op_parallelism_threads(cpu_threads or 1)
        except RuntimeError:
            pass
        if gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # already initialized in this process: place ops on the CPU anyway
                pass
        return "cpu"
    if not gpus:
        raise ConfigError(
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
