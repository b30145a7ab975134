"""seqmask's Python API: train / load / Run, on files and in-memory data, the same numbers
as the CLI, nothing printed, seqmask's own exceptions. One tiny run for the module."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import seqmask
from seqmask.cli import app
from seqmask.data import pad
from seqmask.errors import ConfigError, DataError, Interrupted, RunError

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"units": 4, "latent_dim": 3, "bidirectional": False, "pooling": "none", "decoder_positions": 0}


def _ragged(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(int(rng.integers(2, 9)))
        out.append(np.stack([5 + np.sin(t / 2 + i), 10 * np.cos(t / 3 + i)], axis=1).astype(np.float32))
    return out


def _write_long_csv(path: Path, seqs: list[np.ndarray], prefix: str) -> list[str]:
    lines, ids = ["id,step,x,y"], []
    for i, s in enumerate(seqs):
        ids.append(f"{prefix}{i}")
        lines += [f"{prefix}{i},{t},{v[0]!r},{v[1]!r}" for t, v in enumerate(s.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return ids


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("api")
    train, test = _ragged(40, 0), _ragged(12, 1)
    _write_long_csv(root / "train.csv", train, "s")
    ids = _write_long_csv(root / "test.csv", test, "t")
    return {"root": root, "test": test, "test_ids": ids}


@pytest.fixture(scope="module")
def run(data: dict) -> seqmask.Run:
    config = {
        "data": {"train": str(data["root"] / "train.csv"), "step_column": "step", "validation_split": 0.25},
        "model": MODEL,
        "train": {"epochs": 1, "batch_size": 8},
    }
    return seqmask.train(config, data["root"] / "run", train__epochs=2, **{"train.learning_rate": 0.01})


def test_train_applies_the_overrides_and_records_history_and_metrics(run: seqmask.Run) -> None:
    assert run.config.train.epochs == 2 and run.config.train.learning_rate == 0.01
    history = run.history
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(isinstance(row["loss"], float) and isinstance(row["val_loss"], float) for row in history)
    assert history[0]["accuracy"] is None  # a numeric run has no token accuracy
    assert len(pd.DataFrame(history)) == 2
    metrics = run.metrics
    best = min(history, key=lambda row: row["val_loss"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["best_val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_the_validation_loss_is_evaluates(run: seqmask.Run) -> None:
    loaded = seqmask.load(run.path)
    assert loaded.evaluate().loss == pytest.approx(run.metrics["best_val_loss"], rel=1e-5)


def test_every_input_form_gives_the_same_latent_vectors(run: seqmask.Run, data: dict) -> None:
    from seqmask.data.inputs import from_list

    test, ids = data["test"], data["test_ids"]
    from_file = run.encode(data["root"] / "test.csv")
    from_list_ = run.encode(test)
    seqs = from_list(test)
    padded = pad(seqs, np.arange(len(seqs)), 20, run.config.data.padding, pad_value=1e4)  # garbage in the padding
    from_padded = run.encode(padded, lengths=seqs.lengths)
    frame = pd.read_csv(data["root"] / "test.csv")
    from_frame = run.encode(frame)
    assert from_file.shape == (12, 3)
    for other in (from_list_, from_padded, from_frame):
        np.testing.assert_allclose(other, from_file, rtol=1e-5, atol=1e-6)
    # Batch composition changes nothing: each sequence alone.
    alone = np.concatenate([run.encode([s]) for s in test[:4]])
    np.testing.assert_allclose(alone, from_file[:4], rtol=1e-5, atol=1e-6)
    encoding = run.encoding(test, ids=ids)
    assert encoding.ids.tolist() == ids and encoding.lengths.tolist() == [len(s) for s in test]


def test_encode_equals_the_cli(run: seqmask.Run, data: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["encode", str(run.path), "--data", str(data["root"] / "test.csv"), "--output", str(tmp_path / "z.csv")]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "z.csv", dtype={"id": str})
    np.testing.assert_allclose(table[["z0", "z1", "z2"]].to_numpy(), run.encode(data["test"]), rtol=1e-6)


def test_evaluate_is_plain_numpy_over_the_reconstruction(run: seqmask.Run, data: dict) -> None:
    """loss = Σ over real steps and features of (x̂ - x)² ÷ their count, in normalized units."""
    test = data["test"]
    result = run.evaluate(test)
    recon = run.reconstruct(test)
    assert [r.shape for r in recon] == [s.shape for s in test]
    transform = run.loaded.transform
    err = [(((r - s) / transform.std) ** 2) for r, s in zip(recon, test, strict=True)]
    expected = np.concatenate(err).mean()
    assert result.loss == pytest.approx(expected, rel=1e-4)
    np.testing.assert_allclose(result.errors, [e.mean() for e in err], rtol=1e-4)
    assert result.ids.tolist() == [str(i) for i in range(len(test))]
    assert result.accuracy is None


def test_reconstruct_is_in_the_inputs_units(run: seqmask.Run, data: dict) -> None:
    recon = np.concatenate(run.reconstruct(data["test"]))
    # The features are around 5 and 10 · cos: a de-normalized output lives there too.
    assert 3 < recon[:, 0].mean() < 7 and recon[:, 1].std() > 1


def test_detect_in_memory_with_labels(run: seqmask.Run, data: dict) -> None:
    test = data["test"] + [s * 5 + 20 for s in data["test"][:3]]
    labels = [0] * 12 + [1] * 3
    found = run.detect(test, labels=labels)
    assert found.scores.shape == (15,) and found.flags.dtype == bool
    assert found.detector is not None and not found.calibrated_now
    assert found.metrics is not None and found.metrics["anomalies"] == 3
    assert 0 <= found.metrics["auroc"] <= 1
    with pytest.raises(DataError, match="labels must be one 0 or 1 per sequence"):
        run.detect(test, labels=[0, 1])


def test_nothing_is_printed(run: seqmask.Run, data: dict, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    r = seqmask.load(run.path, "last")
    r.encode(data["test"])
    r.evaluate(data["test"])
    assert capsys.readouterr() == ("", "")


def _cli_error(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code != 0
    return result.output.strip().removeprefix("error: ")


def test_errors_are_seqmasks_with_the_clis_messages(run: seqmask.Run, data: dict, tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    with pytest.raises(RunError) as e:
        seqmask.load(missing)
    assert " ".join(str(e.value).split()) == " ".join(_cli_error("evaluate", str(missing)).split())
    bad = tmp_path / "bad.csv"
    bad.write_text("id,step,x\nu,0,1\n")
    with pytest.raises(DataError) as e:
        run.encode(bad)
    cli = _cli_error("encode", str(run.path), "--data", str(bad), "--output", str(tmp_path / "z.csv"))
    assert " ".join(str(e.value).split()) == " ".join(cli.split())
    with pytest.raises(DataError, match="has 1 features but the run's model takes 2"):
        run.encode([np.ones((3, 1))])
    with pytest.raises(ConfigError, match="checkpoint must be 'best' or 'last'"):
        seqmask.load(run.path, "newest")  # type: ignore[arg-type]


def test_train_errors(data: dict, tmp_path: Path) -> None:
    config = {"data": {"train": str(data["root"] / "train.csv"), "step_column": "step"}, "model": MODEL}
    with pytest.raises(ConfigError, match="needs run_dir"):
        seqmask.train(config)
    with pytest.raises(ConfigError, match="unknown key 'train.epoch' .*did you mean 'train.epochs'"):
        seqmask.train(config, tmp_path / "r", train__epoch=3)
    with pytest.raises(ConfigError, match="'train.batch_size'"):
        seqmask.train(config, tmp_path / "r", train__batch_size="many")
    with pytest.raises(ConfigError, match="resume needs the run directory"):
        seqmask.train(resume=True)
    assert not (tmp_path / "r").exists()


def test_interrupt_and_resume_through_the_api(data: dict, tmp_path: Path) -> None:
    config = {
        "data": {"train": str(data["root"] / "train.csv"), "step_column": "step", "validation_split": 0.25},
        "model": MODEL,
        "train": {"epochs": 2, "batch_size": 8},
    }
    calls = []

    def stop_after_two_batches() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Interrupted):
        seqmask.train(config, tmp_path / "run", should_stop=stop_after_two_batches)
    resumed = seqmask.train(run_dir=tmp_path / "run", resume=True)
    assert [row["epoch"] for row in resumed.history] == [1, 2]


def test_importing_seqmask_does_not_import_tensorflow() -> None:
    code = "import sys, seqmask; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_pre_padding_remask_reconstruct_and_evaluate_agree(data: dict, tmp_path: Path) -> None:
    config = {
        "data": {"train": str(data["root"] / "train.csv"), "step_column": "step", "padding": "pre"},
        "model": {**MODEL, "decoder": "remask"},
        "train": {"epochs": 1, "batch_size": 8, "error": "mae"},
    }
    run = seqmask.train(config, tmp_path / "pre")
    test = data["test"]
    transform = run.loaded.transform
    err = [np.abs((r - s) / transform.std) for r, s in zip(run.reconstruct(test), test, strict=True)]
    assert run.evaluate(test).loss == pytest.approx(np.concatenate(err).mean(), rel=1e-4)
    seqs_padded = np.full((len(test), 12, 2), -7.0, np.float32)  # pre padding: real steps last
    for i, s in enumerate(test):
        seqs_padded[i, 12 - len(s) :] = s
    np.testing.assert_allclose(
        run.encode(seqs_padded, lengths=[len(s) for s in test]), run.encode(test), rtol=1e-5, atol=1e-6
    )


def test_a_token_run_reconstructs_tokens(tmp_path: Path) -> None:
    lines = [" ".join(["a", "b", "c", "b"][: 2 + i % 3]) for i in range(30)]
    (tmp_path / "tokens.txt").write_text("\n".join(lines) + "\n")
    config = {
        "data": {"train": str(tmp_path / "tokens.txt"), "validation_split": 0.2},
        "input": {"kind": "tokens"},
        "model": MODEL,
        "train": {"epochs": 1, "batch_size": 8},
    }
    run = seqmask.train(config, tmp_path / "run")
    recon = run.reconstruct([["a", "b"], ["c", "b", "a"]])
    assert [r.shape for r in recon] == [(2,), (3,)]
    assert set(np.concatenate(recon)) <= {"a", "b", "c", "<unk>", "<pad>"}
    result = run.evaluate([["a", "b"], ["c", "b", "a"]])
    assert result.accuracy is not None and 0 <= result.accuracy <= 1
