"""The files encode, evaluate and detect write, read back as a user would (pandas, and
pyarrow for Parquet) and joined to the input by id; CSV and Parquet hold the same table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import seqmask
from seqmask.cli import app

MODEL = {"units": 4, "latent_dim": 3, "bidirectional": False, "pooling": "none", "decoder_positions": 0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(0)
    rows = []
    for i in rng.permutation(50):  # ids not in sorted order, steps shuffled within the file
        n = int(rng.integers(2, 8))
        for t in rng.permutation(n):
            rows.append({"id": f"seq-{i:02d}", "step": int(t), "a": np.sin(t + i), "b": np.cos(t / 2) * i})
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "data.csv", index=False)
    config = {
        "data": {"train": str(root / "data.csv"), "step_column": "step", "validation_split": 0.2},
        "model": MODEL,
        "train": {"epochs": 1, "batch_size": 16},
    }
    run = seqmask.train(config, root / "run")
    return {"root": root, "frame": frame, "run": run}


def _cli(*args: object) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def _input_by_id(frame: pd.DataFrame) -> pd.DataFrame:
    """id -> length and the mean of feature a: what each output row must join to."""
    return frame.groupby("id").agg(length=("step", "size"), a_mean=("a", "mean")).reset_index()


def _read(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"id": str}) if path.suffix == ".csv" else pd.read_parquet(path)
    if path.suffix == ".parquet":
        arrow = pq.read_table(path)
        assert arrow.schema.field("id").type == "string"
        assert arrow.schema.field("length" if "length" in arrow.schema.names else "step").type == "int64"
        assert arrow.num_rows == len(table)
    return table


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_encode_output_joins_to_the_input(setup: dict, tmp_path: Path, suffix: str) -> None:
    run, frame = setup["run"], setup["frame"]
    out = tmp_path / f"latent{suffix}"
    _cli("encode", run.path, "--data", setup["root"] / "data.csv", "--output", out)
    table = _read(out)
    assert list(table.columns) == ["id", "length", "z0", "z1", "z2"]
    joined = _input_by_id(frame).merge(table, on="id", validate="one_to_one", suffixes=("_in", ""))
    assert len(joined) == 50 and (joined["length"] == joined["length_in"]).all()
    expected = run.encode(setup["root"] / "data.csv")
    by_id = dict(zip(run.encoding(setup["root"] / "data.csv").ids, expected, strict=True))
    np.testing.assert_allclose(
        table[["z0", "z1", "z2"]].to_numpy(), np.stack([by_id[i] for i in table["id"]]), rtol=1e-6
    )
    if suffix == ".parquet":
        assert pq.read_table(out).schema.field("z0").type == "float"  # float32, as encode computes it


def test_encode_npy_joins_to_the_input(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "latent.npy"
    _cli("encode", setup["run"].path, "--data", setup["root"] / "data.csv", "--output", out)
    records = np.load(out, allow_pickle=False)
    table = pd.DataFrame({"id": records["id"], "length": records["length"]})
    joined = _input_by_id(setup["frame"]).merge(table, on="id", validate="one_to_one")
    assert (joined["length_x"] == joined["length_y"]).all() and len(joined) == 50


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_evaluate_output_joins_to_the_input(setup: dict, tmp_path: Path, suffix: str) -> None:
    run = setup["run"]
    out = tmp_path / f"errors{suffix}"
    _cli("evaluate", run.path, "--data", setup["root"] / "data.csv", "--output", out)
    table = _read(out)
    assert list(table.columns) == ["id", "length", "scored_steps", "error"]
    joined = _input_by_id(setup["frame"]).merge(table, on="id", validate="one_to_one", suffixes=("_in", ""))
    assert len(joined) == 50 and (joined["length"] == joined["length_in"]).all()
    result = run.evaluate(setup["root"] / "data.csv")
    # The dataset's loss is the step-weighted mean of the per-sequence errors.
    weighted = (table["error"] * table["scored_steps"]).sum() / table["scored_steps"].sum()
    assert weighted == pytest.approx(result.loss, rel=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_detect_outputs_join_to_the_input(setup: dict, tmp_path: Path, suffix: str) -> None:
    out, steps = tmp_path / f"found{suffix}", tmp_path / f"steps{suffix}"
    _cli("detect", setup["run"].path, "--data", setup["root"] / "data.csv", "--output", out, "--steps", steps)
    table, per_step = _read(out), _read(steps)
    joined = _input_by_id(setup["frame"]).merge(table, on="id", validate="one_to_one", suffixes=("_in", ""))
    assert len(joined) == 50 and (joined["length"] == joined["length_in"]).all()
    # The step file joins on (id, step) to the input's rows, one to one.
    step_join = setup["frame"].merge(per_step, on=["id", "step"], validate="one_to_one")
    assert len(step_join) == len(setup["frame"])
    assert {"error_a", "error_b", "score", "interval"} <= set(per_step.columns)


def test_csv_and_parquet_hold_the_same_table(setup: dict, tmp_path: Path) -> None:
    for command in ("encode", "evaluate"):
        tables = []
        for suffix in (".csv", ".parquet"):
            out = tmp_path / f"{command}{suffix}"
            _cli(command, setup["run"].path, "--data", setup["root"] / "data.csv", "--output", out)
            tables.append(_read(out))
        pd.testing.assert_frame_equal(tables[0], tables[1], check_dtype=False, rtol=1e-7)


def test_a_wrong_suffix_is_one_clear_error(setup: dict, tmp_path: Path) -> None:
    from helpers import one_error

    result = CliRunner().invoke(app, ["evaluate", str(setup["run"].path), "--output", str(tmp_path / "errors.txt")])
    one_error(result, 2, "--output must end in .csv or .parquet")
    result = CliRunner().invoke(
        app, ["encode", str(setup["run"].path), "--data", "x.csv", "--output", str(tmp_path / "z.json")]
    )
    one_error(result, 2, "--output must end in .csv, .parquet or .npy")
    assert not list(tmp_path.iterdir())
