"""Every shipped config loads and trains on the bundled data (one short epoch each)."""

import math
import warnings
from pathlib import Path

import pytest
from helpers import ROOT

from seqmask.config import load_config
from seqmask.errors import SeqmaskDeprecationWarning
from seqmask.training.loop import train

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TINY = ["train.epochs=1", "model.units=4", "model.latent_dim=2"]


def test_there_is_a_config_for_each_decoder_and_loss() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeqmaskDeprecationWarning)  # no shipped config uses an old key name
        configs = [load_config(path) for path in CONFIGS]
    assert {c.model.decoder for c in configs} >= {"repeat", "remask", "crop"}
    assert {c.train.loss for c in configs} >= {"per_step", "last_step"}
    assert {c.train.target for c in configs} >= {"reconstruct", "next_step"}
    assert {c.input.kind for c in configs} >= {"values", "tokens"}


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_trains_on_the_bundled_data(path: Path, tmp_path: Path) -> None:
    metrics = train(load_config(path, TINY), tmp_path / "run")
    assert metrics["epochs_run"] == 1
    assert math.isfinite(metrics["best_val_loss"])  # each shipped config holds out validation data
