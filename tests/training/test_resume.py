"""Trust: a run killed at any moment resumes to exactly the run that was never interrupted.

One uninterrupted run is the reference. Then the same config is started in a subprocess
and killed with SIGKILL at 20 random moments (resuming after each kill); after every kill
the run directory must load (evaluate works on the last checkpoint) and resume. The run
is then resumed to the end and must match the reference: history to 1e-6, final weights.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import read_history, write_run_config
from typer.testing import CliRunner

from seqmask.analysis.evaluate import evaluate
from seqmask.cli import app
from seqmask.config import load_config
from seqmask.run.checkpoints import load_checkpoint
from seqmask.run.loaded import load_run
from seqmask.training.loop import train

pytestmark = pytest.mark.slow

KILLS = 20


def seqmask(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "seqmask", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kwargs,
    )


def wait_for_progress(proc, last, timeout=120):
    """Waits until the process has written a new checkpoint; False if it ended first."""
    before = last.stat().st_mtime_ns if last.exists() else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if last.exists() and last.stat().st_mtime_ns != before:
            return True
        time.sleep(0.01)
    raise AssertionError("no checkpoint written in time")


# The regularized model: its dropout and input noise draw random numbers every step, from
# a state that must come back from the checkpoint; AdamW's decay is in the optimizer.
REGULARIZED = {"bidirectional": True, "pooling": "mean_max", "dropout": 0.2, "input_dropout": 0.1, "input_noise": 0.1}


# The mechanics of resuming (20 kills) on the plain, quickest model; the regularized one,
# whose noise draws must resume too, with fewer kills.
PLAIN = {"bidirectional": False, "pooling": "none", "input_stats": False}


def _usable(run_dir):
    """Whatever moment the kill hit, the directory is usable: its last checkpoint loads and
    evaluates. The (epoch, batch) it holds."""
    model, state = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert state["epoch"] >= 1 and model.count_params() > 0
    assert np.isfinite(evaluate(load_run(run_dir, "last")).loss)
    return state["epoch"], state["batch"]


@pytest.mark.parametrize("model, kills", [(PLAIN, KILLS), (REGULARIZED, 4)], ids=["plain", "regularized"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, model, kills):
    # The regularized run: its kills land in the first epoch; three epochs resume its noise
    # draws across epoch boundaries too.
    extra = {"weight_decay": 0.01, "epochs": 3} if model is REGULARIZED else {}
    config = write_run_config(tmp_path, model=model, **extra)
    reference = tmp_path / "reference"
    train(load_config(config), reference)

    run_dir = tmp_path / "killed"
    last = run_dir / "checkpoints" / "last.keras"
    rng = np.random.default_rng(1)
    kills_wanted, kills, checked = kills, 0, 0
    positions = set()
    while kills < kills_wanted and not (run_dir / "metrics.json").exists():
        if (run_dir / "config.yaml").exists():
            proc = seqmask("train", run_dir, "--resume", "--quiet")
        else:
            proc = seqmask("train", run_dir, "--config", config, "--quiet")
        if not wait_for_progress(proc, last):
            out = proc.communicate()[0]
            assert proc.returncode == 0, out
            continue
        # A random moment within the next checkpoint interval (mid-batch, mid-validation or
        # mid-write), measured on this machine, so each kill costs about the same progress
        # whatever the machine's speed and 20 kills always fit in one run.
        started = time.monotonic()
        if not wait_for_progress(proc, last):
            out = proc.communicate()[0]
            assert proc.returncode == 0, out
            continue
        time.sleep(rng.uniform(0.0, time.monotonic() - started))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += 1
        positions.add(_usable(run_dir))
        checked += 1
    assert kills == kills_wanted, f"the run finished after {kills} kills; make it longer"

    # The kills must have landed all over the run, not only before the first checkpoint.
    assert len(positions) >= min(5, kills_wanted - 1), positions

    # Resume to the end.
    proc = seqmask("train", run_dir, "--resume", "--quiet")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resuming" in out

    got, want = read_history(run_dir), read_history(reference)
    epochs = load_config(config).train.epochs
    assert len(got) == len(want) == epochs
    for g, w in zip(got, want, strict=True):
        for key in ("epoch", "loss", "val_loss", "learning_rate"):
            assert abs(g[key] - w[key]) <= 1e-6 * max(1.0, abs(w[key])), (key, g, w)
    final = load_checkpoint(run_dir / "checkpoints" / "last.keras")[0].get_weights()
    expected = load_checkpoint(reference / "checkpoints" / "last.keras")[0].get_weights()
    largest = max(float(np.abs(a - b).max()) for a, b in zip(final, expected, strict=True))
    print(
        f"kills: {kills}, checkpoints checked: {checked} at {len(positions)} distinct positions "
        f"(last at epoch {max(positions)[0]} of {epochs}), "
        f"largest weight difference: {largest:.3g}"
    )
    assert largest <= 1e-6
    assert not list(run_dir.rglob(".tmp-*"))


def test_ctrl_c_checkpoints_and_says_how_to_resume(tmp_path):
    config = write_run_config(tmp_path, epochs=3)
    run_dir = tmp_path / "run"
    proc = seqmask("train", run_dir, "--config", config, "--quiet")
    assert wait_for_progress(proc, run_dir / "checkpoints" / "last.keras")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert f"resume with: seqmask train {run_dir} --resume" in " ".join(out.split())
    assert "Traceback" not in out
    _, state = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert state["batch"] > 0 or state["epoch"] > 1

    proc = seqmask("train", run_dir, "--resume", "--quiet")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert len(read_history(run_dir)) == 3


def test_sigterm_checkpoints_exits_143_and_resumes_to_the_uninterrupted_run(tmp_path):
    """What a scheduler's preemption does: SIGTERM, then the job restarted with --resume."""
    config = write_run_config(tmp_path, epochs=3)
    reference = tmp_path / "reference"
    train(load_config(config), reference)
    run_dir = tmp_path / "run"
    proc = seqmask("train", run_dir, "--config", config, "--quiet")
    assert wait_for_progress(proc, run_dir / "checkpoints" / "last.keras")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    text = " ".join(out.split())
    assert "preempted (SIGTERM) at epoch" in text and f"resume with: seqmask train {run_dir} --resume" in text
    assert "Traceback" not in out
    assert (run_dir / "checkpoints" / "last.keras").exists()
    assert not (run_dir / "metrics.json").exists()  # stopped before the end

    proc = seqmask("train", run_dir, "--resume", "--quiet")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    got, want = read_history(run_dir), read_history(reference)
    assert len(got) == len(want) == 3
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), k
    final = load_checkpoint(run_dir / "checkpoints" / "last.keras")[0].get_weights()
    expected = load_checkpoint(reference / "checkpoints" / "last.keras")[0].get_weights()
    assert max(float(np.abs(x - y).max()) for x, y in zip(final, expected, strict=True)) <= 1e-6


def test_a_run_in_use_refuses_a_second_writer_until_its_process_dies(tmp_path):
    """A second train --overwrite, or a --resume, on a run still training fails, naming
    the process and host; it deletes and writes nothing. After a SIGKILL the lock is
    stale, and --resume takes it over."""
    import socket

    config = write_run_config(tmp_path, epochs=50)
    run_dir = tmp_path / "run"
    proc = seqmask("train", run_dir, "--config", config, "--quiet")
    try:
        assert wait_for_progress(proc, run_dir / "checkpoints" / "last.keras")
        saved_config = (run_dir / "config.yaml").read_bytes()
        holder = f"in use by process {proc.pid} on host {socket.gethostname()}"
        # The second writers run in this process (Typer's CliRunner): the lock is the
        # operating system's, held by the other process, whichever process asks.
        for args in (["--config", config, "--overwrite"], ["--resume"], ["--config", config]):
            other = CliRunner().invoke(app, ["train", str(run_dir), *map(str, args), "--quiet"])
            message = " ".join(other.output.split())
            assert other.exit_code == 1 and holder in message, (args, other.output)
            assert message.count("error:") == 1 and "Traceback" not in message
            assert (run_dir / "config.yaml").read_bytes() == saved_config
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert (run_dir / "train.lock").exists(), "a killed process leaves its lock file"
    # Only to the end of the epoch it was killed in (the checkpoint's epoch is the one under
    # way, or the next one when it died between epochs): enough to show the takeover.
    _, state = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    resumed = seqmask("train", run_dir, "--resume", "--set", f"train.epochs={state['epoch']}", "--quiet")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resuming" in out and not (run_dir / "train.lock").exists()
