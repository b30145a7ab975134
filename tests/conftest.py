import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
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


def tiny_model_cfg(decoder="repeat", num_layers=1, units=5, latent_dim=3, **options):
    """A small ModelConfig for building models directly; `options` set the other keys
    (bidirectional, pooling, dropout, ...)."""
    from seqmask.config import ModelConfig

    return ModelConfig(units=units, num_layers=num_layers, latent_dim=latent_dim, decoder=decoder, **options)


def make_sequences(lengths, num_features=2, seed=0):
    from seqmask.data import Sequences

    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, np.int64)
    values = rng.normal(size=(int(lengths.sum()), num_features)).astype(np.float32)
    ids = np.array([f"s{i}" for i in range(len(lengths))])
    return Sequences(values, lengths, ids, source="<test>")


def sine_tracks(num_sequences, seed=0):
    """(values (steps, 2) float32, lengths (n,)): noisy sine/cosine tracks of 1-29 steps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, num_sequences)
    t = np.arange(lengths.sum())
    values = np.stack([np.sin(t / 5.0), np.cos(t / 7.0)], 1) + 0.1 * rng.normal(size=(len(t), 2))
    return values.astype(np.float32), lengths


def write_run_config(tmp_path, num_sequences=800, model=None, data=None, **train):
    """A run config over `num_sequences` `sine_tracks` (data.npz beside it; or `data`, the
    config's data section, instead), with a small model and frequent checkpoints, for
    end-to-end runs."""
    import yaml

    if data is None:
        values, lengths = sine_tracks(num_sequences)
        np.savez(tmp_path / "data.npz", values=values, lengths=lengths)
    cfg = {
        "data": data or {"train": "data.npz"},
        "model": {"units": 8, "latent_dim": 4, **(model or {})},
        "train": {
            "epochs": 8,
            "batch_size": 8,
            "patience": 0,
            "lr_patience": 1,
            "checkpoint_every_batches": 5,
            "learning_rate": 0.01,
            **train,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def checkpoint_position(run_dir):
    """(epoch, batch) of a run's last checkpoint, or None before the first (or mid-write)."""
    import json
    import zipfile

    from seqmask.run.checkpoints import STATE_MEMBER

    try:
        with zipfile.ZipFile(run_dir / "checkpoints" / "last.keras") as z:
            state = json.loads(z.read(STATE_MEMBER))
    except (FileNotFoundError, KeyError, zipfile.BadZipFile, OSError):
        return None
    return state["epoch"], state["batch"]


def load_bench(name):
    """bench/<name>.py as a module (bench/ is not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def read_history(run_dir):
    """history.csv as a list of {column: float}, without the timing and empty cells."""
    import csv

    with open(run_dir / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if k != "seconds" and v != ""} for row in csv.DictReader(f)]


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU")
        for item in gpu_items:
            item.add_marker(skip)


def one_error(result, code: int, *expected: str) -> str:
    """Exit `code`, no traceback, and exactly one line of output: 'error: ...' holding `expected`."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]
