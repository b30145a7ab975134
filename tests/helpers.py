"""Helpers the tests share: tiny models and data, run configs, reading a run's files.

Importable from every test directory (`from helpers import ...`; pyproject's pytest
`pythonpath` puts tests/ on the path).
"""

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


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

    path = ROOT / "bench" / f"{name}.py"
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


def one_error(result, code: int, *expected: str) -> str:
    """Exit `code`, no traceback, and exactly one line of output: 'error: ...' holding `expected`."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]
