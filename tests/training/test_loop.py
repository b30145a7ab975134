"""Training-loop behaviour that needs no subprocess: the reported epoch loss, divergence,
early stopping, the learning-rate schedule and unwritable run directories."""

import json

import numpy as np
import pytest
import yaml

from seqmask.config import load_config
from seqmask.errors import RunError
from seqmask.training.loop import Diverged, train


def write(tmp_path, values, lengths, **train):
    np.savez(tmp_path / "d.npz", values=np.asarray(values, np.float32), lengths=np.asarray(lengths))
    cfg = {
        "data": {"train": "d.npz", "normalize": "none"},
        "model": {"units": 4, "latent_dim": 2},
        "train": {"epochs": 2, "batch_size": 4, **train},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return load_config(tmp_path / "c.yaml")


def test_diverging_loss_stops_with_epoch_and_batch_and_keeps_last_checkpoint(tmp_path):
    # 1e30 squared overflows float32: the very first batch's loss is inf.
    cfg = write(tmp_path, np.full((40, 2), 1e30), [4] * 10)
    with pytest.raises(Diverged, match=r"epoch 1, batch 1.*learning rate.*normaliz"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "last.keras").exists()
    assert not list((tmp_path / "run").rglob(".tmp-*"))


def test_unwritable_run_directory_is_a_run_error(tmp_path):
    cfg = write(tmp_path, np.zeros((40, 2)), [4] * 10)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(RunError, match="cannot create run directory"):
        train(cfg, tmp_path / "a_file" / "run")


def test_history_loss_is_the_exact_mean_over_real_steps(tmp_path):
    """With a learning rate too small to move the weights, epoch 1's training loss must be
    the plain numpy mean over every real step of the training split."""
    from seqmask.data import pad
    from seqmask.run.checkpoints import load_checkpoint
    from seqmask.run.splits import prepare

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, 50)
    cfg = write(tmp_path, rng.normal(size=(lengths.sum(), 2)), lengths, epochs=1, batch_size=7, learning_rate=1e-12)
    train(cfg, tmp_path / "run")
    reported = float((tmp_path / "run" / "history.csv").read_text().splitlines()[1].split(",")[1])
    model, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.keras")
    data = prepare(cfg).train
    errors = []
    for i in range(len(data)):
        x = pad(data, [i], int(data.lengths[i]), "post")  # (1, length, features)
        y = np.asarray(model([x, data.lengths[i : i + 1].astype(np.int32)]))
        errors.append(((y - x) ** 2).mean(axis=2).ravel())
    np.testing.assert_allclose(reported, np.concatenate(errors).mean(), rtol=1e-5)


def test_composite_reports_its_training_loss_exactly_and_validation_as_evaluate_does(tmp_path):
    """target: composite. The training loss is the exact mean over the real steps of the
    training-mode output (the encoder saw a prefix); val_loss is `evaluate`'s loss, with
    the encoder shown whole sequences."""
    from seqmask.analysis.evaluate import evaluate
    from seqmask.data import pad
    from seqmask.run.checkpoints import load_checkpoint
    from seqmask.run.loaded import load_run
    from seqmask.run.splits import prepare

    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 12, 50)
    cfg = write(
        tmp_path,
        rng.normal(size=(lengths.sum(), 2)),
        lengths,
        epochs=1,
        batch_size=7,
        learning_rate=1e-12,
        target="composite",
        future_fraction=0.4,
    )
    train(cfg, tmp_path / "run")
    row = (tmp_path / "run" / "history.csv").read_text().splitlines()[1].split(",")
    model, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.keras")
    data = prepare(cfg).train
    errors = []
    for i in range(len(data)):
        x = pad(data, [i], int(data.lengths[i]), "post")  # (1, length, features)
        y = np.asarray(model([x, data.lengths[i : i + 1].astype(np.int32)], training=True))
        errors.append(((y - x) ** 2).mean(axis=2).ravel())
    np.testing.assert_allclose(float(row[1]), np.concatenate(errors).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(row[2]), evaluate(load_run(tmp_path / "run", "last")).loss, rtol=1e-5)


def test_auto_batch_size_scales_with_the_training_split(tmp_path):
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 6, 100)  # 80 for training (validation_split 0.2): batch 8
    cfg = write(tmp_path, rng.normal(size=(lengths.sum(), 2)), lengths, epochs=1, batch_size="auto")
    metrics = train(cfg, tmp_path / "run")
    assert metrics["batch_size"] == 8 and metrics["train_sequences"] == 80


@pytest.mark.slow
def test_schedule_and_early_stopping(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, 40)
    cfg = write(
        tmp_path, rng.normal(size=(lengths.sum(), 2)), lengths, epochs=30, patience=2, lr_patience=1, learning_rate=0.5
    )
    metrics = train(cfg, tmp_path / "run")
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]
    rates = [float(r.split(",")[4]) for r in rows]
    assert metrics["stop_reason"].startswith("early stopping") and len(rows) < 30
    assert rates[-1] < rates[0], "the plateau schedule never cut the learning rate"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == len(rows)


@pytest.mark.slow
def test_resume_with_more_epochs_continues_a_finished_run_exactly(tmp_path):
    """`train RUN --resume --set train.epochs=4` on a run that reached its 2 epochs trains
    epochs 3 and 4, with the history an uninterrupted 4-epoch run has; the saved config
    says 4 from then on."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, 40)
    values = rng.normal(size=(lengths.sum(), 2))
    cfg = write(tmp_path, values, lengths, epochs=2, patience=0)
    train(cfg, tmp_path / "run")
    metrics = train(None, tmp_path / "run", resume=True, overrides=["train.epochs=4"])
    assert metrics["epochs_run"] == 4 and metrics["stop_reason"] == "reached train.epochs"
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["epochs"] == 4

    train(write(tmp_path, values, lengths, epochs=4, patience=0), tmp_path / "straight")
    resumed = (tmp_path / "run" / "history.csv").read_text().splitlines()
    straight = (tmp_path / "straight" / "history.csv").read_text().splitlines()
    assert len(resumed) == len(straight) == 5
    for a, b in zip(resumed[1:], straight[1:], strict=True):
        a, b = a.split(","), b.split(",")
        assert a[:3] == b[:3] and a[4:] == b[4:]  # all but the seconds column


def test_resume_refuses_keys_that_change_the_model_or_the_data(tmp_path):
    from seqmask.errors import ConfigError

    cfg = write(tmp_path, np.zeros((40, 2)), [4] * 10, epochs=1)
    train(cfg, tmp_path / "run")
    for key in ("model.units=3", "data.max_len=2", "train.learning_rate=0.1"):
        with pytest.raises(ConfigError, match=r"train\.epochs"):
            train(None, tmp_path / "run", resume=True, overrides=[key])
