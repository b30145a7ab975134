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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under `pytest -n 2 --dist loadgroup` (make test): tests that share a module- or
    session-scoped fixture (a trained run, built models) go to one worker, which builds it
    once; and the long units (LONGEST_FIRST, then the other groups and the tests marked
    slow) are handed out first, so no long test starts last and holds up the end."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(key=_start_order)  # stable: within each rank, the collection order
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU")
        for item in gpu_items:
            item.add_marker(skip)


# The modules whose tests take longest in all (their subprocesses, and the groups above),
# longest first: handed out first, they do not hold up the end of the suite. Only an order:
# a module missing here runs all the same, later.
LONGEST_FIRST = (
    "test_distribute",
    "test_resume",
    "test_export",
    "test_losses",
    "test_streaming",
    "test_bench_streaming",
    "test_report",
    "test_autoencoder",
)


def _start_order(item):
    name = item.module.__name__
    if name in LONGEST_FIRST:
        return LONGEST_FIRST.index(name)
    long = item.get_closest_marker("slow") or item.get_closest_marker("xdist_group")
    return len(LONGEST_FIRST) + (0 if long else 1)


def _shares_a_fixture(item):
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        defs[-1].scope in ("module", "session") and defs[-1].baseid  # the suite's own, not pytest's
        for defs in info.name2fixturedefs.values()
    )
