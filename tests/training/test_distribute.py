"""tf.distribute: a mirrored or multi-worker run reaches the one-process run's numbers.

The end-to-end tests run `seqmask train` in subprocesses (a strategy must be set up before
TensorFlow's first op, which a pytest worker has long passed): mirrored over two logical CPU
devices, and two worker processes on localhost with TF_CONFIG, each compared with a
one-process run of the same config: history and final weights to 1e-5. The multi-worker
tests also kill one worker (SIGKILL, then SIGTERM) mid-epoch and resume both.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import (
    ROOT,
    checkpoint_position,
    make_sequences,
    read_history,
    sine_tracks,
    tiny_model_cfg,
    write_run_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmask.config import load_config
from seqmask.errors import ConfigError, RunError
from seqmask.run.checkpoints import load_checkpoint
from seqmask.training import distribute

TIMEOUT = 240  # seconds: a bound on every subprocess, so a hang fails the test instead


def tf_config(ports, index, job="worker"):
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": job, "index": index}})


# --------------------------------------------------------------------------- TF_CONFIG


def test_cluster_from_env_reads_tf_config():
    env = {"TF_CONFIG": tf_config([1111, 2222], 1)}
    spec = distribute.cluster_from_env(env)
    assert [str(t) for t in spec.tasks] == ["worker 0 (localhost:1111)", "worker 1 (localhost:2222)"]
    assert spec.me.index == 1 and not spec.is_chief
    assert distribute.cluster_from_env({"TF_CONFIG": tf_config([1111, 2222], 0)}).is_chief


def test_a_chief_task_is_the_chief_and_comes_first():
    raw = {
        "cluster": {"worker": ["w0:1", "w1:2"], "chief": ["c:3"]},
        "task": {"type": "worker", "index": 0},
    }
    spec = distribute.cluster_from_env({"TF_CONFIG": json.dumps(raw)})
    assert str(spec.tasks[0]) == "chief 0 (c:3)"
    assert not spec.is_chief  # worker 0 is not the chief when there is a chief task


def test_no_tf_config_or_a_single_task_is_no_cluster():
    assert distribute.cluster_from_env({}) is None
    assert distribute.cluster_from_env({"TF_CONFIG": tf_config([1111], 0)}) is None


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("{not json", "TF_CONFIG is not valid"),
        (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}}), "TF_CONFIG is not valid"),
        (tf_config([1, 2], 5), "this task, worker 5, is not in its cluster"),
    ],
)
def test_a_bad_tf_config_is_one_clear_error(raw, expected):
    with pytest.raises(ConfigError, match=expected):
        distribute.cluster_from_env({"TF_CONFIG": raw})


def test_auto_resolves_from_tf_config_and_the_gpus():
    two = {"TF_CONFIG": tf_config([1, 2], 0)}
    assert distribute.resolve("auto", two, num_gpus=0) == "multi_worker"
    assert distribute.resolve("auto", {}, num_gpus=2) == "mirrored"
    assert distribute.resolve("auto", {}, num_gpus=1) == "none"
    assert distribute.resolve("none", two, num_gpus=4) == "none"
    assert distribute.resolve("mirrored", {}, num_gpus=0) == "mirrored"


def test_multi_worker_without_tf_config_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    cfg = load_config(_config(tmp_path))
    import dataclasses

    train_cfg = dataclasses.replace(cfg.train, distribute="multi_worker")
    with pytest.raises(ConfigError, match="'train.distribute' is 'multi_worker' but TF_CONFIG"):
        distribute.setup(train_cfg, "cpu")


def test_a_worker_resuming_without_the_shared_run_directory_is_a_clear_error(monkeypatch, tmp_path):
    from seqmask.training.loop import train

    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 1))
    with pytest.raises(RunError, match="shared filesystem"):
        train(None, tmp_path / "not_here", resume=True)


def test_a_lost_peer_is_named():
    spec = distribute.cluster_from_env({"TF_CONFIG": tf_config([1111, 2222], 0)})
    text = "Graph execution error:\n\ncluster check alive failed, /job:worker/replica:0/task:1 is down"
    message = distribute._peer_message(spec, text, "runs/x")
    assert message.startswith("worker 1 (localhost:2222) of this multi-worker run died or stopped answering")
    assert "seqmask train runs/x --resume" in message
    assert distribute._peer_message(spec, "no names here", "r").startswith("another worker")


def test_a_late_worker_is_named_or_else_every_other():
    spec = distribute.cluster_from_env({"TF_CONFIG": tf_config([1111, 2222, 3333], 0)})
    text = "Barrier timed out. Some timed out task names:\n/job:worker/replica:0/task:2\n"
    assert [str(t) for t in distribute._missing_tasks(spec, text)] == ["worker 2 (localhost:3333)"]
    # A worker that is not the leader only hears "Deadline Exceeded": all the others may be late.
    assert [t.index for t in distribute._missing_tasks(spec, "Deadline Exceeded")] == [1, 2]


def test_the_tfjob_example_restarts_on_143_and_sets_keys_that_exist(tmp_path):
    import re

    import yaml

    job = yaml.safe_load((ROOT / "examples" / "tfjob.yaml").read_text())
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert job["kind"] == "TFJob" and worker["restartPolicy"] == "ExitCode"  # retries 128-255: 130, 143
    script = worker["template"]["spec"]["containers"][0]["args"][0]
    assert 'if [ -f "$RUN/config.yaml" ]; then' in script and "--resume" in script
    cfg = load_config(_config(tmp_path), re.findall(r"--set (\S+)", script))
    assert (cfg.train.startup_timeout, cfg.train.worker_timeout) == (900.0, 120.0)


# --------------------------------------------------------------------------- the batch split


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), replicas=st.integers(1, 8))
def test_every_row_goes_to_one_replica_with_weight_one(n, replicas):
    import tensorflow as tf

    _, per, rows, weights = (t.numpy() for t in distribute._split(tf.zeros([n], tf.int32), replicas))
    assert per == -(-n // replicas) and len(rows) == len(weights) == per * replicas
    np.testing.assert_array_equal(rows[:n], np.arange(n))  # each real row once, in order
    np.testing.assert_array_equal(weights, np.r_[np.ones(n), np.zeros(per * replicas - n)])
    np.testing.assert_array_equal(rows[n:], 0)  # fillers copy row 0 (finite), weighted 0


def test_the_split_by_hand():
    import tensorflow as tf

    n, per, rows, weights = distribute._split(tf.zeros([7], tf.int32), 3)
    assert (int(n), int(per)) == (7, 3)
    assert rows.numpy().tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 0]
    assert weights.numpy().tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0]


def test_distributed_scoring_equals_one_process_scoring(tmp_path):
    """The mirrored eval step (here on this process's one CPU device) gives exactly the
    per-sequence sums of scoring.make_eval_step, batch sizes not divisible included."""
    import tensorflow as tf

    from seqmask.data.batching import padded_batch
    from seqmask.model.autoencoder import build_autoencoder
    from seqmask.model.scoring import make_eval_step, make_loss_fn

    cfg = load_config(_config(tmp_path))
    seqs = make_sequences([3, 1, 5, 2, 4], seed=1)
    cluster = distribute.Cluster("mirrored", tf.distribute.MirroredStrategy(["/cpu:0"]))
    with cluster.strategy.scope():
        model = build_autoencoder(tiny_model_cfg(), 2, "post", fused=True)
    loss_fn = make_loss_fn(cfg)
    one, dist = make_eval_step(model, loss_fn), distribute.make_eval_step(cluster, model, loss_fn)
    for rows in ([0], [0, 1, 2], [0, 1, 2, 3, 4]):
        values, lengths = padded_batch(seqs, np.array(rows), "bucket", None, "post")
        for a, b in zip(one(values, lengths), dist(values, lengths), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


# --------------------------------------------------------------------------- end to end


def _config(tmp_path, **train):
    """203 sequences: 162 to train in batches of 7, so every epoch ends with a batch of one
    sequence (a replica with no sequence of its own); a clip norm small enough to bite."""
    train = {"epochs": 4, "batch_size": 7, "clip_norm": 0.05, "worker_timeout": 20, **train}
    return write_run_config(tmp_path, num_sequences=203, **train)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _seqmask(*args, env=None):
    return [sys.executable, "-m", "seqmask", "train", *map(str, args), "--quiet"], env or _env()


def _run(*args, env=None):
    cmd, env = _seqmask(*args, env=env)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(run_dir):
    model, _ = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    return model.get_weights()


def _assert_same_run(run_dir, reference):
    got, want = read_history(run_dir), read_history(reference)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    for a, b in zip(_weights(run_dir), _weights(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The one-process run every distributed run is compared with."""
    tmp = tmp_path_factory.mktemp("reference")
    _run(tmp / "run", "--config", _config(tmp), "--set", "train.distribute=none")
    return tmp / "run"


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_mirrored_over_two_cpu_devices_matches_one_process(tmp_path, reference):
    config = _config(tmp_path)
    _run(tmp_path / "run", "--config", config, "--set", "train.distribute=mirrored", "--set", "train.replicas=2")
    _assert_same_run(tmp_path / "run", reference)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["distribute"] == {"mode": "mirrored", "replicas": 2, "workers": 1}
    assert "mirrored over 2 replicas" in metrics["device"]


def _free_ports(count):
    ports = []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    return ports


def _start_workers(tmp_path, *args, tmpdirs=None, per_worker=None):
    """Both workers of a localhost cluster, each a `seqmask train` process with `args`
    (or with its own from `per_worker`)."""
    ports = _free_ports(2)
    procs = []
    for i in range(2):
        extra = {"TF_CONFIG": tf_config(ports, i)}
        if tmpdirs:
            extra["TMPDIR"] = str(tmpdirs[i])
        cmd, env = _seqmask(*(per_worker[i] if per_worker else args), env=_env(**extra))
        log = open(tmp_path / f"worker{i}.log", "a")  # noqa: SIM115  (closed by _finish)
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True), log))
    return procs


def _finish(procs):
    codes = []
    for proc, log in procs:
        try:
            codes.append(proc.wait(timeout=TIMEOUT))
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    return codes


def _wait_mid_epoch(run_dir, procs, epoch=2):
    """Until the chief has checkpointed in the middle of `epoch` or later."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        position = checkpoint_position(run_dir)
        if position and position[0] >= epoch and position[1] > 0:
            return position
        if any(p.poll() is not None for p, _ in procs):
            pytest.fail("a worker ended before the kill: " + (run_dir.parent / "worker0.log").read_text()[-2000:])
        time.sleep(0.02)
    pytest.fail("no mid-epoch checkpoint in time")


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_two_workers_match_one_process_and_leave_no_scratch(tmp_path, reference):
    config = _config(tmp_path)
    tmpdirs = [tmp_path / "tmp0", tmp_path / "tmp1"]
    for d in tmpdirs:
        d.mkdir()
    procs = _start_workers(tmp_path, tmp_path / "run", "--config", config, tmpdirs=tmpdirs)
    assert _finish(procs) == [0, 0], (tmp_path / "worker1.log").read_text()[-2000:]
    _assert_same_run(tmp_path / "run", reference)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["distribute"] == {"mode": "multi_worker", "replicas": 2, "workers": 2}
    assert (tmp_path / "run" / "detector.json").is_file()  # the chief calibrated
    assert not any(tmpdirs[1].iterdir())  # the other worker's scratch directory is gone
    assert "done (reached train.epochs)" in (tmp_path / "worker1.log").read_text()


def _stop_one_worker_mid_epoch(tmp_path, sig, **train):
    """Start both workers, send `sig` to worker 1 mid-epoch; the exit codes, the seconds the
    chief took to end after the signal, and both logs."""
    run = tmp_path / "run"
    procs = _start_workers(tmp_path, run, "--config", _config(tmp_path, **train))
    _wait_mid_epoch(run, procs)
    procs[1][0].send_signal(sig)
    sent = time.monotonic()
    try:
        procs[0][0].wait(timeout=TIMEOUT)
        waited = time.monotonic() - sent
    finally:
        if sig == signal.SIGSTOP:
            procs[1][0].kill()
    codes = _finish(procs)
    return codes, waited, [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]


def _one_error(log, *expected):
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in log, log[-3000:]
    for text in expected:
        assert text in errors[0], errors[0]


def _resume_both(tmp_path, reference):
    assert _finish(_start_workers(tmp_path, tmp_path / "run", "--resume")) == [0, 0]
    _assert_same_run(tmp_path / "run", reference)


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_a_killed_worker_stops_the_other_and_both_resume_to_the_same_run(tmp_path, reference):
    codes, waited, (chief_log, _) = _stop_one_worker_mid_epoch(tmp_path, signal.SIGKILL)
    assert codes == [143, -signal.SIGKILL], chief_log[-2000:]
    assert waited < 20 + 15  # train.worker_timeout, and the time to exit
    _one_error(chief_log, "worker 1 (localhost:", "--resume")
    _resume_both(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_a_hung_worker_stops_the_other_within_worker_timeout(tmp_path, reference):
    """SIGSTOP: the worker's connections stay open but its heartbeats stop."""
    codes, waited, (chief_log, _) = _stop_one_worker_mid_epoch(tmp_path, signal.SIGSTOP, worker_timeout=8)
    assert codes[0] == 143, chief_log[-2000:]
    assert waited < 8 + 15, waited
    _one_error(chief_log, "worker 1 (localhost:", "--resume")
    _resume_both(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_sigterm_to_one_worker_checkpoints_both_and_resumes_to_the_same_run(tmp_path, reference):
    codes, _, logs = _stop_one_worker_mid_epoch(tmp_path, signal.SIGTERM)
    assert codes == [143, 143]
    # Whitespace normalized: the console wraps long lines.
    chief_log, worker_log = (" ".join(log.split()) for log in logs)
    assert "stopped because another worker was interrupted or preempted" in chief_log
    assert "preempted (SIGTERM)" in worker_log
    epoch, batch = checkpoint_position(tmp_path / "run")
    assert f"at epoch {epoch}, batch {batch}; checkpoint written" in chief_log  # the same batch on both
    assert f"at epoch {epoch}, batch {batch}; checkpoint written" in worker_log
    _resume_both(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
@pytest.mark.parametrize("index", [0, 1])
def test_a_worker_that_never_starts_is_an_error_within_startup_timeout(tmp_path, index):
    """Only one of the two workers starts: it stops after train.startup_timeout, naming the
    other, and leaves no run directory behind."""
    config = _config(tmp_path, startup_timeout=3)
    cmd, env = _seqmask(tmp_path / "run", "--config", config, env=_env(TF_CONFIG=tf_config(_free_ports(2), index)))
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 143, done.stderr[-3000:]
    assert time.monotonic() - started < 3 + 60  # the timeout, and starting TensorFlow twice over
    _one_error(done.stderr, "train.startup_timeout = 3 s", f"waiting for worker {1 - index} (localhost:")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_workers_that_start_from_different_points_stop_with_one_clear_error(tmp_path):
    """The chief resumes a finished epoch while worker 1 starts afresh: both stop before
    training (they would train on different batches), and the run is left as it was."""
    config = _config(tmp_path, epochs=1)
    run = tmp_path / "run"
    _run(run, "--config", config, "--set", "train.distribute=none")
    before = (run / "history.csv").read_text()
    more = ("--set", "train.epochs=2", "--set", "train.distribute=auto")
    chief = (run, "--resume", *more)
    fresh = (tmp_path / "elsewhere", "--config", config, *more)
    assert _finish(_start_workers(tmp_path, per_worker=[chief, fresh])) == [1, 1]
    for i in range(2):
        _one_error((tmp_path / f"worker{i}.log").read_text(), "do not start from the same point", "--resume")
    assert (run / "history.csv").read_text() == before


def test_a_worker_pads_only_its_replicas_rows():
    assert distribute.rows_of_replicas(7, 2, (0,)).tolist() == [0, 1, 2, 3]
    assert distribute.rows_of_replicas(7, 2, (1,)).tolist() == [4, 5, 6]
    assert distribute.rows_of_replicas(1, 2, (1,)).tolist() == []  # its replica has fillers only
    assert distribute.rows_of_replicas(7, 3, (0, 1, 2)).tolist() == list(range(7))
    for n in range(1, 30):  # the workers' parts cover the batch once
        parts = [distribute.rows_of_replicas(n, 4, ids) for ids in ((0, 1), (2, 3))]
        assert np.concatenate(parts).tolist() == list(range(n))


def _sharded_config(tmp_path, **train):
    """The 203 sequences of `_config` cut into 5 NPZ shards, streamed two shards at a time."""
    values, lengths = sine_tracks(203)
    shards = tmp_path / "shards"
    shards.mkdir()
    starts = np.r_[0, np.cumsum(lengths)]
    for k, (a, b) in enumerate([(0, 40), (40, 90), (90, 130), (130, 180), (180, 203)]):
        ids = np.array([f"seq{i:04d}" for i in range(a, b)])
        np.savez(shards / f"part-{k}.npz", values=values[starts[a] : starts[b]], lengths=lengths[a:b], ids=ids)
    data = {"train": "shards", "streaming": "on", "window_shards": 2}
    train = {"epochs": 3, "batch_size": 7, "clip_norm": 0.05, "worker_timeout": 20, **train}
    return write_run_config(tmp_path, data=data, **train)


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_two_workers_streaming_shards_match_one_process_and_read_half_each(tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    _run(one / "run", "--config", _sharded_config(one), "--set", "train.distribute=none")
    config = _sharded_config(tmp_path)
    procs = _start_workers(tmp_path, tmp_path / "run", "--config", config)
    assert _finish(procs) == [0, 0], (tmp_path / "worker1.log").read_text()[-2000:]
    _assert_same_run(tmp_path / "run", one / "run")
    alone = json.loads((one / "run" / "metrics.json").read_text())["data"]
    chief = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert alone["streaming"] and chief["streaming"]
    trained = alone["train_sequences_read"]  # every training sequence, every epoch
    # The chief's replica takes ceil(B / 2) of each batch of B: about half, never all.
    assert trained / 2 <= chief["train_sequences_read"] < 0.6 * trained
