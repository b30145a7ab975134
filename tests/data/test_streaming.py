"""Sharded data: streaming and in-memory training agree, resume is exact, bad or changed
shards are clear errors before anything is trained.

The shards are noisy sine/cosine tracks cut at uneven points (one shard of a single
sequence), windows of two shards, batch 8 (batches never align with shard edges).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import checkpoint_position, read_history, sine_tracks, write_run_config

from seqmask.analysis.evaluate import evaluate
from seqmask.config import load_config
from seqmask.data.batching import windowed_batches
from seqmask.data.shards import build_index, find_shards
from seqmask.data.streaming import Prefetcher, should_stream
from seqmask.errors import DataError
from seqmask.run.checkpoints import load_checkpoint
from seqmask.run.loaded import load_run
from seqmask.training.loop import train

CUTS = [0, 40, 95, 150, 151, 230, 300]
TIMEOUT = 240


def _data(n=300):
    values, lengths = sine_tracks(n)
    return values, lengths, np.array([f"s{i:04d}" for i in range(n)])


def write_shards(directory, cuts=CUTS, fmt="npz"):
    values, lengths, ids = _data(cuts[-1])
    offsets = np.r_[0, np.cumsum(lengths)]
    directory.mkdir(parents=True, exist_ok=True)
    for j in range(len(cuts) - 1):
        a, b = cuts[j], cuts[j + 1]
        part = values[offsets[a] : offsets[b]]
        if fmt == "npz":
            np.savez(directory / f"part-{j:03d}.npz", values=part, lengths=lengths[a:b], ids=ids[a:b])
        else:  # long-format Parquet: one row per step
            table = pa.table(
                {"id": np.repeat(ids[a:b], lengths[a:b]), "x": part[:, 0], "y": part[:, 1]},
            )
            pq.write_table(table, directory / f"part-{j:03d}.parquet")
    return directory


def write_config(tmp_path, data="shards", **train_keys):
    data_section = {"train": str(data), "window_shards": 2}
    return write_run_config(tmp_path, data=data_section, **{"epochs": 3, "patience": 0, **train_keys})


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.keras")[0].get_weights()


def _same_run(a, b, tol=0.0):
    for x, y in zip(read_history(a), read_history(b), strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key] == pytest.approx(y[key], rel=tol, abs=tol), key
    for x, y in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- units


def test_windowed_batches_cover_every_sequence_once_and_keep_to_their_window():
    rng = np.random.default_rng(3)
    shards = np.sort(rng.integers(0, 9, 200))  # (200,): each sequence's shard
    shards[shards == 4] = 5  # a shard with no sequence of the split
    bounds = np.searchsorted(shards, np.arange(10))  # (shards + 1,)
    lengths = rng.integers(1, 50, 200)
    batches = list(windowed_batches(lengths, bounds, 8, "bucket", 0, 1, 3))
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(200))
    windows = []  # each batch's shards lie in one window, windows come one after another
    for b in batches:
        here = frozenset(shards[b].tolist())
        if not windows or not here <= windows[-1]:
            windows.append(set())
        windows[-1] |= here
    assert all(len(w) <= 3 for w in windows)
    again = windowed_batches(lengths, bounds, 8, "bucket", 0, 1, 3)
    assert len(again) == len(batches)
    for k in [len(batches) - 1, 0, 5, len(batches) // 2]:  # any order: windows are made on demand
        assert np.array_equal(again[k], batches[k])
    assert [len(b) for b in again[2:6]] == [len(b) for b in batches[2:6]]
    with pytest.raises(IndexError):
        again[len(batches)]
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(batches, windowed_batches(lengths, bounds, 8, "bucket", 0, 2, 3), strict=False)
    )


def test_the_prefetcher_gives_batches_in_order_and_passes_errors_on():
    with Prefetcher(lambda k: k * k, 2, 7, depth=2) as ahead:
        assert [ahead.get(k) for k in range(2, 7)] == [4, 9, 16, 25, 36]

    def broken(k):
        if k == 3:
            raise DataError("shard 3 is broken")
        return k

    with Prefetcher(broken, 0, 10) as ahead:
        assert [ahead.get(k) for k in range(3)] == [0, 1, 2]
        with pytest.raises(DataError, match="shard 3 is broken"):
            ahead.get(3)


def test_auto_streams_only_data_too_large_for_a_tenth_of_memory(tmp_path):
    from seqmask.data.readers import read_sequences

    index = build_index(find_shards(write_shards(tmp_path / "shards")), read_sequences)
    size = index.num_steps * index.num_features * 4
    assert should_stream("auto", index, memory_bytes=10 * size - 10)
    assert not should_stream("auto", index, memory_bytes=10 * size + 10)
    assert should_stream("on", index, memory_bytes=10**12) and not should_stream("off", index, memory_bytes=1)


def test_streaming_on_and_off_parse_from_bare_yaml(tmp_path):
    write_shards(tmp_path / "shards")
    for word, want in (("on", "on"), ("off", "off"), ("auto", "auto")):
        path = tmp_path / f"{word}.yaml"
        path.write_text(f"data:\n  train: shards\n  streaming: {word}\n")
        assert load_config(path).data.streaming == want


# --------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_streaming_and_in_memory_training_give_the_same_run(tmp_path, fmt):
    write_shards(tmp_path / "shards", fmt=fmt)
    config = write_config(tmp_path)
    streamed = train(load_config(config, ["data.streaming=on"]), tmp_path / "on")
    held = train(load_config(config, ["data.streaming=off"]), tmp_path / "off")
    _same_run(tmp_path / "on", tmp_path / "off")
    assert streamed["data"] == {**streamed["data"], "sharded": True, "shards": 6, "streaming": True}
    assert held["data"]["streaming"] is False and streamed["padding_fraction"] == held["padding_fraction"]
    assert (tmp_path / "on" / "shard_index.npz").is_file()
    # The reported loss is evaluate's: the exact mean over the validation split's real steps.
    result = evaluate(load_run(tmp_path / "on", "best"))
    assert result.loss == pytest.approx(streamed["best_val_loss"], rel=1e-6)
    assert len(result.data) == streamed["validation_sequences"]


@pytest.mark.slow
def test_the_validation_split_does_not_depend_on_the_shards(tmp_path):
    """The same sequences in one shard or in six: the same validation ids and statistics."""
    from seqmask.run.splits import prepare

    write_shards(tmp_path / "six")
    write_shards(tmp_path / "one", cuts=[0, 300])
    splits = [prepare(load_config(write_config(tmp_path, data=tmp_path / d))) for d in ("six", "one")]
    a, b = (sorted(s.validation.take(np.arange(len(s.validation))).ids.tolist()) for s in splits)
    assert a == b and 30 < len(a) < 90
    np.testing.assert_allclose(splits[0].transform.mean, splits[1].transform.mean, rtol=1e-12)
    np.testing.assert_allclose(splits[0].transform.std, splits[1].transform.std, rtol=1e-12)


@pytest.mark.slow
def test_a_streaming_run_killed_mid_epoch_resumes_to_the_uninterrupted_run(tmp_path):
    write_shards(tmp_path / "shards")
    config = write_config(tmp_path, epochs=4, checkpoint_every_batches=2)
    reference = tmp_path / "reference"
    train(load_config(config, ["data.streaming=on"]), reference)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "seqmask", "train", str(run), "--config", str(config), "--quiet"]
    proc = subprocess.Popen([*cmd, "--set", "data.streaming=on"], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            position = checkpoint_position(run)
            if position and position[0] >= 2 and position[1] > 0:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    resumed = subprocess.run(
        [sys.executable, "-m", "seqmask", "train", str(run), "--resume", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same_run(run, reference, tol=1e-6)


@pytest.mark.slow
def test_a_changed_or_added_shard_on_resume_is_a_clear_error(tmp_path):
    shards = write_shards(tmp_path / "shards")
    config = write_config(tmp_path, epochs=1)
    train(load_config(config), tmp_path / "run")
    more = ["train.epochs=2"]
    (shards / "part-009.npz").write_bytes((shards / "part-000.npz").read_bytes())
    with pytest.raises(DataError, match=r"the shards changed since the run was indexed \(new shard .*part-009\.npz"):
        train(None, tmp_path / "run", resume=True, overrides=more)
    (shards / "part-009.npz").unlink()
    stat = os.stat(shards / "part-002.npz")
    os.utime(shards / "part-002.npz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match=r"part-002\.npz: changed since the run's index was built"):
        train(None, tmp_path / "run", resume=True, overrides=more)
    assert len(read_history(tmp_path / "run")) == 1


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncate", r"part-003\.parquet"),
        ("features", r"part-003\.parquet: 3 features, but .*part-000\.parquet has 2"),
    ],
)
def test_a_bad_shard_is_named_before_training_starts(tmp_path, damage, expected):
    shards = write_shards(tmp_path / "shards", fmt="parquet")
    bad = shards / "part-003.parquet"
    if damage == "truncate":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        pq.write_table(pa.table({"id": ["x", "x"], "x": [1.0, 2.0], "y": [0.0, 1.0], "z": [3.0, 4.0]}), bad)
    with pytest.raises(DataError, match=expected):
        train(load_config(write_config(tmp_path)), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing half-written


@pytest.mark.slow
def test_encode_streams_shards_to_parquet_row_groups_in_input_order(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from seqmask import api
    from seqmask.cli import app

    shards = write_shards(tmp_path / "shards")
    train(load_config(write_config(tmp_path, epochs=1)), tmp_path / "run")
    result = CliRunner().invoke(
        app, ["encode", str(tmp_path / "run"), "--data", str(shards), "-o", str(tmp_path / "z.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 300 latent vectors of size 4" in result.output
    assert pq.ParquetFile(tmp_path / "z.parquet").num_row_groups == 6  # one per shard: never all at once
    streamed = pd.read_parquet(tmp_path / "z.parquet")
    _, _, ids = _data()
    assert streamed["id"].tolist() == ids.tolist()  # input order: shard by shard, row by row
    run = api.load(tmp_path / "run")
    in_memory = run.encoding(shards)  # every shard read into memory, batched by length over all
    assert in_memory.ids.tolist() == ids.tolist()
    np.testing.assert_allclose(streamed.filter(regex="^z").to_numpy(), in_memory.latent, rtol=1e-5, atol=1e-6)
    csv_part = run.encode_to(shards, tmp_path / "z.csv")
    assert len(csv_part.ids) == 300 and pd.read_csv(tmp_path / "z.csv")["id"].tolist() == ids.tolist()


def test_the_index_pass_reports_its_progress(tmp_path):
    import io

    from rich.console import Console

    from seqmask.cli import PlainReporter
    from seqmask.run.splits import prepare

    write_shards(tmp_path / "shards")
    calls = []
    prepare(load_config(write_config(tmp_path)), on_shard=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 6) for k in range(1, 7)]
    text = io.StringIO()
    reporter = PlainReporter(Console(file=text, width=200))
    for done, total in calls:
        reporter.indexing(done, total)
    assert text.getvalue() == "indexed 6 shards\n"


def _same_detector(a, b):
    assert a.how == b.how and a.calibration_sequences == b.calibration_sequences
    assert a.step_threshold == pytest.approx(b.step_threshold, rel=1e-5)
    np.testing.assert_allclose(a.bins.per_range, b.bins.per_range, rtol=1e-5)
    for key, value in a.arrays().items():
        np.testing.assert_allclose(value, b.arrays()[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow
def test_evaluate_and_detect_stream_shards_and_a_streamed_run_calibrates(tmp_path):
    """A streamed run calibrates at the end of train as the in-memory run does (its splits
    fit the samples whole); evaluate --output and detect write a row group per shard, in
    input order, with the numbers of the data read whole."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from seqmask import api
    from seqmask.analysis.detect import load_detector
    from seqmask.cli import app
    from seqmask.run.directory import RunDir

    shards = write_shards(tmp_path / "shards")
    config = write_config(tmp_path, epochs=1)
    streamed = train(load_config(config, ["data.streaming=on"]), tmp_path / "run")
    train(load_config(config, ["data.streaming=off"]), tmp_path / "off")
    assert streamed["detector"]["score"] is not None, streamed["detector"]
    _same_detector(load_detector(RunDir(tmp_path / "run"), "best"), load_detector(RunDir(tmp_path / "off"), "best"))
    _, _, ids = _data()
    run = api.load(tmp_path / "run")
    cli = CliRunner()

    # evaluate --data SHARDS: one row group per shard; the loss of the data read whole.
    out = tmp_path / "errors.parquet"
    result = cli.invoke(app, ["evaluate", str(tmp_path / "run"), "--data", str(shards), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.ParquetFile(out).num_row_groups == 6
    errors = pd.read_parquet(out)
    assert errors["id"].tolist() == ids.tolist()
    whole = run.evaluate(shards)  # every shard read into memory
    np.testing.assert_allclose(errors["error"].to_numpy(), whole.errors, rtol=1e-5)
    assert run.evaluate_to(shards, tmp_path / "e.csv").loss == pytest.approx(whole.loss, rel=1e-6)
    # No --data: the run's validation split, shard by shard from its index: training's number.
    result = cli.invoke(app, ["evaluate", str(tmp_path / "run"), "-o", str(tmp_path / "val.csv")])
    assert result.exit_code == 0, result.output
    assert f"{streamed['best_val_loss']:.6f}" in result.output
    assert len(pd.read_csv(tmp_path / "val.csv")) == streamed["validation_sequences"]

    # detect: per-sequence and per-step rows by shard, the summary once all are in.
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{sid},{int(i % 10 == 0)}\n" for i, sid in enumerate(ids)))
    found, steps = tmp_path / "d.parquet", tmp_path / "steps.parquet"
    args = ["detect", str(tmp_path / "run"), "--data", str(shards), "-o", str(found), "--steps", str(steps)]
    result = cli.invoke(app, [*args, "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert pq.ParquetFile(found).num_row_groups == pq.ParquetFile(steps).num_row_groups == 6
    rows = pd.read_parquet(found)
    assert rows["id"].tolist() == ids.tolist()
    whole = run.detect(shards, labels=labels)
    np.testing.assert_allclose(rows["score"].to_numpy(), whole.scores, rtol=1e-4, atol=1e-6)
    assert rows["anomaly"].tolist() == whole.flags.astype(int).tolist()
    assert len(pd.read_parquet(steps)) == int(_data()[1].sum())
    summary = json.loads((tmp_path / "d.summary.json").read_text())
    assert summary["sequences"] == 300 and summary["flagged"] == int(whole.flags.sum())
    assert summary["labels"]["auroc"] == pytest.approx(whole.metrics["auroc"], abs=1e-9)
    # An id the labels file lacks: one clear error, and none of the three files.
    labels.write_text("id,label\n" + "".join(f"{sid},0\n" for sid in ids[:-1]))
    for f in (found, steps, tmp_path / "d.summary.json"):
        f.unlink()
    result = cli.invoke(app, [*args, "--labels", str(labels)])
    assert result.exit_code != 0 and f"has no label for sequence '{ids[-1]}'" in result.output
    assert not found.exists() and not steps.exists() and not (tmp_path / "d.summary.json").exists()


def test_a_sample_keeps_the_reference_rows_fit_reference_keeps(monkeypatch):
    from seqmask.analysis import detect, scores

    monkeypatch.setattr(scores, "MAX_REFERENCE", 50)  # where fit_reference and reference_sample read it
    latent = np.random.default_rng(0).normal(size=(200, 3))
    rows = detect.sample_rows(200, 50, seed=7)
    assert rows.tolist() == sorted(set(rows.tolist())) and len(rows) == 50
    whole, sampled = detect.fit_reference(latent, 7, 5), detect.fit_reference(latent[rows], 7, 5)
    for key in whole:
        np.testing.assert_array_equal(whole[key], sampled[key])
    assert detect.sample_rows(30, 50, seed=7).tolist() == list(range(30))


@pytest.mark.slow
def test_a_streamed_run_calibrates_on_a_sample_of_a_large_validation_split(tmp_path, monkeypatch):
    from seqmask.analysis import detect
    from seqmask.run.directory import RunDir

    monkeypatch.setattr(detect, "MAX_STREAMED_CALIBRATION", 20)
    write_shards(tmp_path / "shards")
    metrics = train(load_config(write_config(tmp_path, epochs=1), ["data.streaming=on"]), tmp_path / "run")
    found = detect.load_detector(RunDir(tmp_path / "run"), "best")
    n = metrics["validation_sequences"]
    assert found.calibration_sequences == 20
    assert f"a sample of the validation split (20 of {n})" in found.how
