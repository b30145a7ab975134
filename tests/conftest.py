"""Settings for the whole suite: quiet TensorFlow, the hypothesis profile, GPU tests skipped
without a GPU. Shared helpers are in tests/helpers.py (`from helpers import ...`)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Shared 2-core CI machines are slow and noisy: generating examples must never fail a test
# for taking long. Each test's own @settings still sets its example counts.
settings.register_profile(
    "seqmask",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("seqmask")


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU")
        for item in gpu_items:
            item.add_marker(skip)
