"""The command line end to end, through Typer's CliRunner: files, exit codes, messages."""

import json
import shutil

import numpy as np
import pytest
from helpers import FIXTURES, ROOT
from typer.testing import CliRunner

from seqmask.cli import app

runner = CliRunner()

# Small and fast: the bundled data, a tiny model, two epochs.
FAST = ["--set", "train.epochs=2", "--set", "model.units=8", "--set", "model.latent_dim=4", "--quiet"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_line_error(result):
    """The error text, with Rich's wrapping undone; asserts there is no traceback."""
    text = " ".join(result.output.split())
    assert "Traceback" not in result.output
    return text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "demo"
    result = invoke("train", run_dir, "--config", ROOT / "configs/example.yaml", *FAST)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(trained):
    for name in (
        "config.yaml",
        "normalization.json",
        "history.csv",
        "metrics.json",
        "checkpoints/best.keras",
        "checkpoints/last.keras",
    ):
        assert (trained / name).is_file(), name
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    history = (trained / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,val_loss,seconds,learning_rate,train_real_steps,accuracy,val_accuracy"
    assert len(history) == 3
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in (
        "best_val_loss",
        "final_loss",
        "train_sequences",
        "train_real_steps",
        "padding_fraction",
        "versions",
        "device",
        "lstm_kernel",
    ):
        assert key in metrics
    assert metrics["lstm_kernel"] == "seqmask kernel"  # the compiled CPU kernel, not the fallback
    assert set(metrics["versions"]) == {"seqmask", "tensorflow", "keras"}
    assert not list(trained.rglob(".tmp-*")), "temporary files left behind"


@pytest.mark.slow
def test_evaluate_reports_the_validation_loss_of_the_best_checkpoint(trained, tmp_path):
    out = tmp_path / "errors.csv"
    result = invoke("evaluate", trained, "--output", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((trained / "metrics.json").read_text())
    assert f"{metrics['best_val_loss']:.6f}" in result.output
    rows = out.read_text().splitlines()
    assert rows[0] == "id,length,scored_steps,error"
    assert len(rows) - 1 == metrics["validation_sequences"]
    # The per-sequence errors recombine into the reported loss.
    table = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding="utf-8")
    loss = (table["error"] * table["scored_steps"]).sum() / table["scored_steps"].sum()
    np.testing.assert_allclose(loss, metrics["best_val_loss"], rtol=1e-6)


@pytest.mark.slow
def test_encode_writes_one_vector_per_sequence(trained, tmp_path):
    for suffix in (".csv", ".npy"):
        out = tmp_path / f"latent{suffix}"
        result = invoke("encode", trained, "--data", ROOT / "data/trajectories.npz", "--output", out)
        assert result.exit_code == 0, result.output
    records = np.load(tmp_path / "latent.npy", allow_pickle=False)
    source = np.load(ROOT / "data/trajectories.npz")
    np.testing.assert_array_equal(records["id"], source["ids"].astype(str))
    np.testing.assert_array_equal(records["length"], source["lengths"])
    assert records["latent"].shape == (len(source["lengths"]), 4)
    csv_rows = (tmp_path / "latent.csv").read_text().splitlines()
    assert csv_rows[0] == "id,length,z0,z1,z2,z3" and len(csv_rows) == len(records) + 1
    np.testing.assert_allclose(np.array(csv_rows[1].split(",")[2:], float), records["latent"][0], rtol=1e-6)


@pytest.mark.slow
def test_existing_run_directory_is_never_overwritten(trained):
    before = (trained / "checkpoints/last.keras").read_bytes()
    result = invoke("train", trained, "--config", ROOT / "configs/example.yaml", *FAST)
    assert result.exit_code == 1
    assert "already exists" in one_line_error(result) and "--resume" in one_line_error(result)
    assert (trained / "checkpoints/last.keras").read_bytes() == before


def write_config(tmp_path, data_name, **sections):
    import yaml

    cfg = {"data": {"train": data_name}, "model": {"units": 4, "latent_dim": 2}, "train": {"epochs": 1}}
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


BAD_DATA = {
    "non_numeric.csv": ("id,x\na,1\na,abc\n", "line 3"),
    "ragged.csv": ("id,x,y\na,1,2\na,3\n", "line 3"),
    "nan.csv": ("id,x\na,1\na,nan\n", "line 3"),
    "empty.csv": ("", "empty.csv"),
    "header_only.csv": ("id,x\n", "no sequences"),
}


@pytest.mark.parametrize("name", sorted(BAD_DATA))
def test_bad_data_file_exits_1_naming_the_file(tmp_path, name):
    content, expected = BAD_DATA[name]
    (tmp_path / name).write_text(content)
    config = write_config(tmp_path, name)
    result = invoke("train", tmp_path / "run", "--config", config, "--quiet")
    text = one_line_error(result)
    assert result.exit_code == 1, text
    assert name in text and expected in text
    assert not (tmp_path / "run").exists(), "a data error must leave no run directory behind"


def test_bad_npz_empty_sequence(tmp_path):
    np.savez(tmp_path / "d.npz", values=np.zeros((3, 2)), lengths=np.array([3, 0]))
    result = invoke("train", tmp_path / "run", "--config", write_config(tmp_path, "d.npz"))
    assert result.exit_code == 1 and "d.npz" in one_line_error(result)
    assert "empty" in one_line_error(result)


def test_missing_data_file(tmp_path):
    result = invoke("train", tmp_path / "r", "--config", write_config(tmp_path, "nope.npz"))
    assert result.exit_code == 1 and "nope.npz" in one_line_error(result)


def test_missing_config_file(tmp_path):
    result = invoke("train", "--config", tmp_path / "missing.yaml")
    assert result.exit_code == 2 and "missing.yaml" in one_line_error(result)


def test_config_error_names_key_and_suggests(tmp_path):
    config = write_config(tmp_path, "d.npz", model={"unitz": 3})
    result = invoke("train", "--config", config)
    text = one_line_error(result)
    assert result.exit_code == 2 and "model.unitz" in text and "did you mean 'model.units'" in text


def test_bad_override_exits_2(tmp_path):
    config = write_config(tmp_path, "d.npz")
    result = invoke("train", "--config", config, "--set", "train.learning_rate=-1")
    assert result.exit_code == 2 and "train.learning_rate" in one_line_error(result)


def test_not_a_run_directory(tmp_path):
    for command in (["evaluate", tmp_path], ["encode", tmp_path, "--data", "x.npz", "--output", tmp_path / "z.csv"]):
        result = invoke(*command)
        assert result.exit_code == 1 and "not a seqmask run directory" in one_line_error(result)


def test_train_needs_config_or_resume():
    result = invoke("train")
    assert result.exit_code == 2 and "--config" in one_line_error(result) and "--resume" in one_line_error(result)


def test_help_lists_each_command_with_its_summary():
    result = invoke("--help")
    assert result.exit_code == 0
    rows = {line.strip(" │").split()[0]: line for line in result.output.splitlines() if line.strip(" │")}
    for command, summary in (
        ("train", "Train an autoencoder"),
        ("evaluate", "The masked loss"),
        ("encode", "Export one latent vector"),
    ):
        assert command in rows and summary in rows[command], result.output


def test_deprecated_run_dir_option_still_works_and_says_what_to_use(tmp_path):
    result = invoke("train", "--config", write_config(tmp_path, "nope.npz"), "--run-dir", tmp_path / "r")
    text = one_line_error(result)
    assert "warning: --run-dir DIR is deprecated" in text and "seqmask train DIR --config FILE" in text
    assert result.exit_code == 1 and "nope.npz" in text  # and it went on to the run itself


def test_run_dir_given_twice_is_a_usage_error(tmp_path):
    result = invoke("train", tmp_path / "a", "--run-dir", tmp_path / "b", "--config", tmp_path / "c.yaml")
    assert result.exit_code == 2 and "not both" in one_line_error(result)


def test_checkpoint_is_a_choice_typer_checks(tmp_path):
    result = invoke("evaluate", tmp_path, "--checkpoint", "latest")
    text = one_line_error(result)
    assert result.exit_code == 2
    assert "'latest'" in text and "'best'" in text and "'last'" in text and "seqmask evaluate --help" in text
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == [result.output.splitlines()[0]]


def test_resume_refuses_a_key_that_changes_the_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(write_config(tmp_path, "d.npz").read_text())
    result = invoke("train", run, "--resume", "--set", "model.units=3", "--quiet")
    text = one_line_error(result)
    assert result.exit_code == 2 and "model.units" in text and "train.epochs" in text


@pytest.mark.slow
def test_tokens_end_to_end(tmp_path):
    run_dir = tmp_path / "tokens"
    result = invoke("train", run_dir, "--config", ROOT / "configs/tokens.yaml", *FAST)
    assert result.exit_code == 0, result.output
    assert (run_dir / "vocabulary.txt").read_text().splitlines()[:2] == ["<pad>", "<unk>"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["best_val_accuracy"] <= 1.0
    np.testing.assert_allclose(metrics["best_val_perplexity"], np.exp(metrics["best_val_loss"]))

    result = invoke("evaluate", run_dir, "--output", tmp_path / "errors.csv")
    assert result.exit_code == 0, result.output
    assert "token accuracy" in result.output and "perplexity" in result.output
    assert f"{metrics['best_val_loss']:.6f}" in result.output
    assert (tmp_path / "errors.csv").read_text().splitlines()[0] == "id,length,scored_steps,error,accuracy"

    # Unseen tokens map to <unk> instead of failing.
    (tmp_path / "new.txt").write_text("the zebra flew\nsome words never seen\n")
    result = invoke("encode", run_dir, "--data", tmp_path / "new.txt", "--output", tmp_path / "z.csv")
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "z.csv").read_text().splitlines()
    assert rows[1].startswith("1,3,") and rows[2].startswith("2,4,")


@pytest.mark.slow
def test_encode_is_the_same_whatever_the_batch(trained):
    """One latent vector per sequence, whatever batch size (so neighbours and padding)."""
    from seqmask.analysis.evaluate import encode
    from seqmask.run.loaded import load_run

    run = load_run(trained)
    data = ROOT / "data/trajectories.npz"
    _, alone, _ = encode(run, data, batch_size=1)  # every sequence alone, no padding at all
    _, crowd, _ = encode(run, data, batch_size=97)  # with neighbours, padded to each batch's longest
    np.testing.assert_allclose(crowd, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_run_saved_before_the_kernel_took_lengths_still_evaluates_and_encodes(tmp_path):
    """tests/fixtures/run_before_lengths was trained (2 layers, CPU) by seqmask 8137a06,
    whose fused LSTMs took no lengths and whose encoder ended in a LastStep gather, on the
    bundled data as it was then (a copy lies beside it: the bundled file has planted
    anomalies since). It loads, gives the loss it recorded and the latent vectors it
    exported, and, made before detection existed, is calibrated on first use."""
    run_dir = tmp_path / "old"
    shutil.copytree(FIXTURES / "run_before_lengths", run_dir)
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text().replace("../../../data", str(run_dir)))
    result = invoke("evaluate", run_dir)
    assert result.exit_code == 0, result.output
    recorded = json.loads((run_dir / "metrics.json").read_text())["best_val_loss"]
    assert f"{recorded:.6f}" in result.output
    out = tmp_path / "latent.csv"
    result = invoke("encode", run_dir, "--data", run_dir / "trajectories.npz", "--output", out)
    assert result.exit_code == 0, result.output
    want = (FIXTURES / "run_before_lengths" / "latent_head.csv").read_text().splitlines()
    got = out.read_text().splitlines()[: len(want)]
    assert got[0] == want[0]
    for g, w in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(
            np.array(g.split(",")[1:], float), np.array(w.split(",")[1:], float), rtol=1e-5, atol=1e-6
        )
    assert not (run_dir / "detector.json").exists()
    result = invoke("detect", run_dir, "--data", run_dir / "trajectories.npz", "--output", tmp_path / "d.csv")
    assert result.exit_code == 0, result.output
    assert "calibrated" in result.output and (run_dir / "detector.json").is_file()
