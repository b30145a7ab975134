"""`seqmask export` through Typer's CliRunner: what it prints, and one clear message for
bad options (the model itself: tests/serving/test_export.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error
from typer.testing import CliRunner

import seqmask
from seqmask.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_export")
    rng = np.random.default_rng(0)
    lines = ["id,x"]
    for i in range(30):
        lines += [f"s{i},{v:.4f}" for v in rng.normal(size=int(rng.integers(2, 7)))]
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    config = {
        "data": {"train": str(root / "data.csv"), "validation_split": 0.3},
        "model": {"units": 3, "latent_dim": 2, "bidirectional": False, "pooling": "none", "decoder_positions": 0},
        "train": {"epochs": 1, "batch_size": 8},
    }
    return seqmask.train(config, root / "run").path


def test_export_prints_what_it_wrote(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(run_dir), "--output", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "encode -> │ latent" in text and "reconstruct -> │ reconstruction" in text
    assert "anomaly score │ combined" in text
    meta = json.loads((tmp_path / "model" / "seqmask_export.json").read_text())
    assert meta["checkpoint"] == "best"


def test_an_existing_output_is_refused_without_overwrite(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["export", str(run_dir), "--output", str(target)])
    one_error(result, 1, str(target))
    assert (target / "keep.txt").read_text() == "mine"


def test_bad_options(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(run_dir), "--output", str(tmp_path / "m"), "--format", "pickle"])
    one_error(result, 2, "'pickle' is not one of 'savedmodel', 'onnx'")
    result = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--output", str(tmp_path / "m")])
    one_error(result, 1, "nothing")
    assert not (tmp_path / "m").exists()
