"""`seqmask detect` and `seqmask calibrate` end to end, through Typer's CliRunner: the
files they write, their options, and one clear message (and nothing written) for every
bad input. One tiny run is trained for the module; tests that write to it use a copy."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import ROOT, one_error
from typer.testing import CliRunner, Result

from seqmask.analysis.metrics import auroc
from seqmask.cli import app

runner = CliRunner()

MODEL = {"units": 4, "latent_dim": 2, "bidirectional": False, "pooling": "none", "decoder_positions": 0}


def invoke(*args: object) -> Result:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # Rich's table wrapping undone


def table(text: str) -> dict[str, str]:
    """The rows of the table a command printed, label -> value (wrapped cells joined)."""
    rows: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        parts = line.split("│")
        if len(parts) != 4:
            continue
        label, value = parts[1].strip(), parts[2].strip()
        if label:
            last, rows[label] = label, value
        elif last is not None:
            rows[last] += " " + value
    return rows


def write_csv(path: Path, n: int, seed: int, anomalies: int = 0) -> list[str]:
    """Long-format id,step,x,y with `n` sequences (the last `anomalies` of them scaled up),
    written in shuffled id order. Returns the ids in file order."""
    rng = np.random.default_rng(seed)
    lines, ids = ["id,step,x,y"], []
    for i in rng.permutation(n):
        t = np.arange(int(rng.integers(2, 10)))
        x, y = np.sin(t / 2 + i), np.cos(t / 3 + i) + 0.1 * rng.normal(size=len(t))
        if i >= n - anomalies:
            x, y = 4 * x + 3, -3 * y
        ids.append(f"q{i:03d}")
        lines += [f"q{i:03d},{s},{x[s]:.4f},{y[s]:.4f}" for s in t]
    path.write_text("\n".join(lines) + "\n")
    return ids


def train_run(tmp: Path, data: str, *sets: str, config: dict | None = None) -> tuple[Path, str]:
    cfg = config or {
        "data": {"train": data, "step_column": "step", "validation_split": 0.2},
        "model": MODEL,
        "train": {"epochs": 1, "batch_size": 16},
        "detect": {"score": "latent"},  # stated: the tests read the latent score's files
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    sets_args = [a for s in sets for a in ("--set", s)]
    result = invoke("train", tmp / "run", "--config", tmp / "config.yaml", "--quiet", *sets_args)
    return tmp / "run", ok(result)


class Files:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.train = root / "train.csv"
        self.test = root / "test.csv"  # 40 sequences, the last 10 ids anomalous
        self.labels = root / "labels.csv"
        write_csv(self.train, 60, seed=0)
        self.test_ids = write_csv(self.test, 40, seed=1, anomalies=10)
        rows = [f"{sid},{int(int(sid[1:]) >= 30)}" for sid in reversed(self.test_ids)]  # not in data order
        self.labels.write_text("id,label\n" + "\n".join(rows[:20]) + "\n\n" + "\n".join(rows[20:]) + "\n")
        self.truth = np.array([int(int(sid[1:]) >= 30) for sid in self.test_ids])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained(files: Files) -> Path:
    """A finished tiny run with a validation split (48 + 12 sequences), calibrated by train."""
    run_dir, output = train_run(files.root, "train.csv")
    assert "anomaly detector calibrated (latent score): threshold at quantile 0.99 of the validation split" in output
    return run_dir


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        columns = table.column_names
        rows = [{k: "" if v is None else str(v) for k, v in row.items()} for row in table.to_pylist()]
        return columns, rows
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def outputs_of(tmp_path: Path, suffix: str = ".csv") -> list[Path]:
    return [tmp_path / f"out{suffix}", tmp_path / f"steps{suffix}", tmp_path / "out.summary.json"]


def assert_nothing_written(tmp_path: Path) -> None:
    written = [p.name for p in tmp_path.iterdir() if p.name.startswith(("out", "steps", ".tmp-"))]
    assert not written, written


# --------------------------------------------------------------------------- detect


DETECTION = ["id", "length", "score", "threshold", "anomaly", "interval_start", "interval_end"]
STEPS = ["id", "step", "score", "error_x", "error_y", "interval"]


@pytest.fixture(scope="module")
def detected(trained: Path, files: Files, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """detect --output out.csv --steps steps.csv --labels, run once for the module."""
    where = tmp_path_factory.mktemp("detected")
    out, steps, _ = outputs_of(where)
    result = invoke("detect", trained, "--data", files.test, "-o", out, "--steps", steps, "--labels", files.labels)
    ok(result)
    return where, result.output


def test_detect_writes_one_row_per_sequence_in_input_order(detected: tuple[Path, str], files: Files) -> None:
    where, text = detected
    rows_shown = table(text)
    assert rows_shown["sequences scored"] == "40" and rows_shown["score"] == "latent"
    columns, rows = read_table(where / "out.csv")
    assert columns == DETECTION
    assert [r["id"] for r in rows] == files.test_ids  # the data file's order, not sorted
    lengths = {sid: n for sid, n in zip(*np.unique(_column(files.test, "id"), return_counts=True), strict=True)}
    assert [int(r["length"]) for r in rows] == [lengths[sid] for sid in files.test_ids]
    for r in rows:
        assert int(r["anomaly"]) == (float(r["score"]) > float(r["threshold"]))
        if r["interval_start"]:
            assert 0 <= int(r["interval_start"]) <= int(r["interval_end"]) < int(r["length"])
        else:
            assert r["interval_end"] == ""


def _column(path: Path, name: str) -> list[str]:
    with open(path, newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def test_detect_steps_have_an_error_column_per_named_feature(detected: tuple[Path, str], files: Files) -> None:
    where, _ = detected
    columns, steps = read_table(where / "steps.csv")
    assert columns == STEPS
    assert [r["id"] for r in steps] == _column(files.test, "id")  # every real step, in file order
    assert [r["step"] for r in steps] == _column(files.test, "step")
    for r in steps:  # the latent score's step score is the step error: the mean of the two
        assert np.isclose(float(r["score"]), (float(r["error_x"]) + float(r["error_y"])) / 2, rtol=1e-6)
    # Each sequence's worst interval is one of its numbered runs of steps.
    _, rows = read_table(where / "out.csv")
    by_id: dict[str, list[str]] = {}
    for r in steps:
        by_id.setdefault(r["id"], []).append(r["interval"])
    for r in rows:
        marks = by_id[r["id"]]
        if r["interval_start"]:
            run = marks[int(r["interval_start"]) : int(r["interval_end"]) + 1]
            assert run[0] != "" and set(run) == {run[0]}
        else:
            assert set(marks) == {""}


def test_detect_with_labels_reports_auroc_in_the_table_and_the_summary(
    detected: tuple[Path, str], files: Files
) -> None:
    where, text = detected
    summary = json.loads((where / "out.summary.json").read_text())
    labels = summary["labels"]
    _, rows = read_table(where / "out.csv")
    scores = np.array([float(r["score"]) for r in rows])
    flags = np.array([r["anomaly"] == "1" for r in rows])
    assert labels["anomalies"] == 10 and labels["normal"] == 30
    assert np.isclose(labels["auroc"], auroc(files.truth, scores), atol=1e-6)
    assert labels["true_positives"] == int((flags & (files.truth == 1)).sum())
    assert labels["false_positives"] == int((flags & (files.truth == 0)).sum())
    assert {"average_precision", "precision", "recall", "f1"} <= set(labels)
    shown = table(text)
    assert shown["AUROC / average precision"] == f"{labels['auroc']:.4f} / {labels['average_precision']:.4f}"
    assert shown["labelled anomalies"] == "10 of 40"
    assert shown["precision / recall / F1"] == " / ".join(f"{labels[k]:.4f}" for k in ("precision", "recall", "f1"))
    assert summary["sequences"] == 40 and summary["flagged"] == int(flags.sum()) and summary["score"] == "latent"


def test_detect_parquet_holds_what_csv_holds(
    trained: Path, files: Files, detected: tuple[Path, str], tmp_path: Path
) -> None:
    out, steps, summary = outputs_of(tmp_path, ".parquet")
    ok(invoke("detect", trained, "--data", files.test, "--output", out, "--steps", steps))
    assert summary.is_file() and json.loads(summary.read_text())["labels"] is None
    for name, parquet in (("out.csv", out), ("steps.csv", steps)):
        columns, rows = read_table(parquet)
        csv_columns, csv_rows = read_table(detected[0] / name)
        assert columns == csv_columns
        assert [r["id"] for r in rows] == [r["id"] for r in csv_rows]
        np.testing.assert_allclose([float(r["score"]) for r in rows], [float(r["score"]) for r in csv_rows], rtol=1e-8)
    table = pq.read_table(out)
    assert str(table.schema.field("anomaly").type) == "int64" and str(table.schema.field("score").type) == "double"


def test_detect_threshold_flags_everything_above_it(
    trained: Path, files: Files, detected: tuple[Path, str], tmp_path: Path
) -> None:
    _, rows = read_table(detected[0] / "out.csv")
    threshold = float(np.median([float(r["score"]) for r in rows]))
    out = tmp_path / "out.csv"
    text = ok(invoke("detect", trained, "--data", files.test, "--output", out, "--threshold", threshold))
    assert f"set at --threshold {threshold:g}" in text
    _, flagged = read_table(out)
    assert [r["anomaly"] == "1" for r in flagged] == [float(r["score"]) > threshold for r in rows]
    assert {float(r["threshold"]) for r in flagged} == {float(f"{threshold:.9g}")}
    assert sum(r["anomaly"] == "1" for r in flagged) == 20
    # For this call only: the saved detector is unchanged.
    assert json.loads((out.with_name("out.summary.json")).read_text())["threshold"].startswith("--threshold")


# --------------------------------------------------------------------------- calibrate


def _detector(run_dir: Path) -> dict:
    return json.loads((run_dir / "detector.json").read_text())["best"]


def _flags(run_dir: Path, data: Path, tmp_path: Path) -> np.ndarray:
    out = tmp_path / "flags.csv"
    ok(invoke("detect", run_dir, "--data", data, "--output", out))
    return np.array([r["anomaly"] == "1" for r in read_table(out)[1]])


def test_calibrate_quantile_on_the_validation_split(run_copy: Path) -> None:
    text = ok(invoke("calibrate", run_copy, "--quantile", "0.5"))
    assert (
        "calibrated" in text
        and "(best checkpoint, latent score): threshold at quantile 0.5 of the validation split (12 sequences)" in text
    )
    assert _detector(run_copy)["how"] == "quantile 0.5 of the validation split (12 sequences)"


def test_calibrate_contamination_flags_that_share_of_the_data(run_copy: Path, files: Files, tmp_path: Path) -> None:
    text = ok(invoke("calibrate", run_copy, "--data", files.test, "--contamination", "0.1"))
    assert f"contamination 0.1 of {files.test} (40 sequences)" in text
    # 40 sequences, one length range: 4 scores lie above the 0.9 quantile.
    assert _flags(run_copy, files.test, tmp_path).sum() == 4


def test_calibrate_fpr_sets_the_false_positive_rate_on_the_normal_sequences(
    run_copy: Path, files: Files, tmp_path: Path
) -> None:
    text = ok(invoke("calibrate", run_copy, "--data", files.test, "--fpr", "0.2", "--labels", files.labels))
    assert f"false-positive rate 0.2 on the 30 normal sequences of {files.test}" in text
    flags = _flags(run_copy, files.test, tmp_path)
    assert (flags & (files.truth == 0)).sum() == 6  # 0.2 of the 30 normal sequences


def test_calibrate_score_mahalanobis_is_what_detect_then_uses(run_copy: Path, files: Files, tmp_path: Path) -> None:
    text = ok(invoke("calibrate", run_copy, "--score", "mahalanobis"))
    assert "mahalanobis score" in text
    assert _detector(run_copy)["settings"]["score"] == "mahalanobis"
    out = tmp_path / "out.csv"
    result = invoke("detect", run_copy, "--data", files.test, "--output", out, "--steps", tmp_path / "steps.csv")
    ok(result)
    assert table(result.output)["score"] == "mahalanobis"
    assert json.loads((tmp_path / "out.summary.json").read_text())["score"] == "mahalanobis"
    _, steps = read_table(tmp_path / "steps.csv")
    assert all(float(r["score"]) >= 0 for r in steps)  # d² at every (scored) step


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--quantile", "0.9", "--contamination", "0.1"],
            "give one of --quantile, --contamination and --fpr, not --quantile and --contamination",
        ),
        (["--quantile", "0.9", "--fpr", "0.1", "--labels", "{labels}", "--data", "{test}"], "not --quantile and --fpr"),
        (["--fpr", "0.1", "--data", "{test}"], "--fpr needs --labels FILE"),
        (["--fpr", "0.1", "--labels", "{labels}"], "--fpr needs --data FILE"),
        (["--labels", "{labels}", "--data", "{test}"], "--labels is used with --fpr only"),
        (["--quantile", "1.5"], "--quantile must be between 0 and 1 (exclusive), got 1.5"),
        (["--contamination", "0"], "--contamination must be between 0 and 1 (exclusive), got 0.0"),
        (["--fpr", "-0.1", "--labels", "{labels}", "--data", "{test}"], "--fpr must be between 0 and 1"),
        (["--score", "bogus"], "--score must be one of"),
        (["--score", "Latent"], "got 'Latent'"),
        (["--quantile", "high"], "Invalid value for '--quantile'"),
    ],
)
def test_calibrate_usage_errors_exit_2_with_one_line(
    trained: Path, files: Files, args: list[str], message: str
) -> None:
    before = (trained / "detector.json").read_bytes()
    filled = [a.format(labels=files.labels, test=files.test) for a in args]
    one_error(invoke("calibrate", trained, *filled), 2, message)
    assert (trained / "detector.json").read_bytes() == before


# --------------------------------------------------------------------------- bad inputs


def test_labels_with_unknown_ids_write_nothing(trained: Path, files: Files, tmp_path: Path) -> None:
    labels = tmp_path / "bad_labels.csv"
    labels.write_text(files.labels.read_text() + "zz1,1\nzz2,0\nzz3,1\n")
    out, steps, _ = outputs_of(tmp_path)
    result = invoke("detect", trained, "--data", files.test, "-o", out, "--steps", steps, "--labels", labels)
    line = one_error(result, 1, "bad_labels.csv, line 43:", "id 'zz1' is not a sequence of", "(and 2 more unknown ids)")
    assert "test.csv" in line
    assert_nothing_written(tmp_path)


def test_a_run_without_validation_data_must_be_calibrated_with_data(files: Files, tmp_path: Path) -> None:
    run_dir, text = train_run(tmp_path, str(files.train), "data.validation_split=0")
    assert (
        "anomaly detector not calibrated: no validation data: fit one with 'seqmask calibrate" in " ".join(text.split())
        and "--data FILE'" in text
    )
    assert json.loads((run_dir / "metrics.json").read_text())["detector"]["score"] is None
    assert not (run_dir / "detector.json").exists()
    out, steps, _ = outputs_of(tmp_path)
    result = invoke("detect", run_dir, "--data", files.test, "-o", out, "--steps", steps)
    one_error(result, 1, "trained without validation data", f"run 'seqmask calibrate {run_dir} --data FILE'")
    assert_nothing_written(tmp_path)
    assert not (run_dir / "detector.json").exists()
    # What the message says to do.
    text = ok(invoke("calibrate", run_dir, "--data", files.train))
    assert f"quantile 0.99 of {files.train} (60 sequences)" in text
    text = ok(invoke("detect", run_dir, "--data", files.test, "-o", out))
    assert "calibrated" not in text.split("seqmask detect")[0]  # no calibration on first use: it has one


def test_detect_calibrates_a_run_without_a_detector_first(run_copy: Path, files: Files, tmp_path: Path) -> None:
    (run_copy / "detector.json").unlink()
    (run_copy / "detector_best.npz").unlink()
    text = ok(invoke("detect", run_copy, "--data", files.test, "-o", tmp_path / "out.csv"))
    assert f"calibrated {run_copy}'s detector first (it had none for the best checkpoint)" in text
    assert (run_copy / "detector.json").is_file()


def test_stale_detector_tells_to_run_calibrate(run_copy: Path, files: Files, tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(run_copy / "checkpoints" / "best.keras", "a") as archive:
        archive.writestr("extra.txt", "changed")  # the checkpoint changed since calibration
    out, steps, _ = outputs_of(tmp_path)
    result = invoke("detect", run_copy, "--data", files.test, "-o", out, "--steps", steps)
    one_error(
        result, 1, "calibrated on an earlier version of the best checkpoint", f"run 'seqmask calibrate {run_copy}'"
    )
    assert_nothing_written(tmp_path)


def test_calibrate_mahalanobis_on_too_few_steps_or_a_singular_covariance(
    trained: Path, files: Files, tmp_path: Path
) -> None:
    before = (trained / "detector.json").read_bytes()
    few = tmp_path / "few.csv"
    few.write_text("id,step,x,y\na,0,0.1,0.2\na,1,0.3,0.1\n")  # 2 scored steps, 2 features
    result = invoke("calibrate", trained, "--score", "mahalanobis", "--data", few)
    one_error(result, 1, "needs more scored calibration steps than error features (2 steps, 2 features)")
    same = tmp_path / "same.csv"  # identical one-step sequences: identical error vectors
    same.write_text("id,step,x,y\n" + "".join(f"s{i},0,0.5,-0.5\n" for i in range(5)))
    result = invoke("calibrate", trained, "--score", "mahalanobis", "--data", same)
    one_error(result, 1, "singular covariance", "detect.score: latent or error")
    assert (trained / "detector.json").read_bytes() == before


def test_nan_in_the_data_names_the_file_and_line(trained: Path, tmp_path: Path) -> None:
    data = tmp_path / "nan.csv"
    data.write_text("id,step,x,y\na,0,0.1,0.2\na,1,nan,0.1\n")
    out, steps, _ = outputs_of(tmp_path)
    result = invoke("detect", trained, "--data", data, "-o", out, "--steps", steps)
    one_error(result, 1, "nan.csv", "line 3", "NaN")
    assert_nothing_written(tmp_path)


def test_data_with_other_features_than_the_run(trained: Path, tmp_path: Path) -> None:
    data = tmp_path / "three.csv"
    data.write_text("id,step,x,y,z\na,0,0.1,0.2,0.3\n")
    result = invoke("detect", trained, "--data", data, "-o", tmp_path / "out.csv")
    one_error(result, 1, "three.csv", "has 3 features but the run's model takes 2")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "{tmp}/out.txt"], "--output must end in .csv or .parquet, got"),
        (["-o", "{tmp}/out.csv", "--steps", "{tmp}/steps.json"], "--steps must end in .csv or .parquet, got"),
        (["-o", "{tmp}/out.csv", "--threshold", "nan"], "--threshold must be a finite number"),
        (["-o", "{tmp}/out.csv", "--checkpoint", "middle"], "'middle' is not one of 'best', 'last'"),
    ],
)
def test_detect_usage_errors_exit_2_and_write_nothing(
    trained: Path, files: Files, tmp_path: Path, args: list[str], message: str
) -> None:
    filled = [a.format(tmp=tmp_path) for a in args]
    one_error(invoke("detect", trained, "--data", files.test, *filled), 2, message)
    assert_nothing_written(tmp_path)


def test_a_steps_file_that_cannot_be_written_leaves_no_output(trained: Path, files: Files, tmp_path: Path) -> None:
    (tmp_path / "steps.csv").mkdir()  # a directory where the file should go
    result = invoke(
        "detect", trained, "--data", files.test, "-o", tmp_path / "out.csv", "--steps", tmp_path / "steps.csv"
    )
    one_error(result, 1, "cannot write", "steps.csv")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.summary.json").exists()


def test_steps_and_output_must_be_different_files(trained: Path, files: Files, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    one_error(invoke("detect", trained, "--data", files.test, "-o", out, "--steps", out), 2, "--steps")
    assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------- tokens


def test_a_token_run_detects_with_an_error_token_column(tmp_path: Path) -> None:
    lines = (ROOT / "data" / "tokens.txt").read_text().splitlines()[:100]
    (tmp_path / "tokens.txt").write_text("\n".join(lines) + "\n")
    config = yaml.safe_load((ROOT / "configs" / "tokens.yaml").read_text())
    config["data"]["train"] = "tokens.txt"
    config["model"] = {"units": 4, "latent_dim": 2, "bidirectional": False, "pooling": "none", "decoder_positions": 0}
    config["input"]["embedding_dim"] = 4
    config["train"].update(epochs=1, batch_size=32)
    config["detect"] = {"score": "latent"}
    run_dir, text = train_run(tmp_path, "tokens.txt", config=config)
    assert "anomaly detector calibrated (latent score)" in text
    out, steps = tmp_path / "out.csv", tmp_path / "steps.csv"
    ok(invoke("detect", run_dir, "--data", tmp_path / "tokens.txt", "-o", out, "--steps", steps))
    columns, rows = read_table(steps)
    assert columns == ["id", "step", "score", "error_token", "interval"]
    assert len(rows) == sum(len(line.split()) for line in lines)
    # The step score is the token's negative log-likelihood.
    assert all(float(r["error_token"]) > 0 and float(r["score"]) == float(r["error_token"]) for r in rows)
    assert read_table(out)[0] == DETECTION and len(read_table(out)[1]) == 100
