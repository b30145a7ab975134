"""seqmask.run.directory and seqmask.atomic: the run directory, its one writer, its files."""

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT

from seqmask import atomic
from seqmask.errors import RunError
from seqmask.run.directory import FILES, LOCK, RunDir, RunLock, claim


def make_run(path):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("data: {train: x.npz}\n")
    return RunDir(path)


def test_is_run_is_having_a_config(tmp_path):
    assert not RunDir(tmp_path / "missing").is_run()
    assert not RunDir(tmp_path).is_run()
    assert make_run(tmp_path / "run").is_run()


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda p: None, "is not a directory"),
        (lambda p: p.mkdir(), "has no config.yaml"),
    ],
)
def test_require_says_why_it_is_not_a_run(tmp_path, setup, expected):
    setup(tmp_path / "x")
    with pytest.raises(RunError, match=f"x is not a seqmask run directory: it {expected}"):
        RunDir(tmp_path / "x").require()


def test_missing_checkpoint_names_the_other_one(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(RunError, match="no best checkpoint yet.*nor any other.*--resume"):
        run.require_checkpoint("best")
    run.checkpoint("last").parent.mkdir(parents=True, exist_ok=True)
    run.checkpoint("last").write_bytes(b"")
    with pytest.raises(RunError, match="no best checkpoint yet.*--checkpoint last"):
        run.require_checkpoint("best")
    with pytest.raises(RunError, match="must be one of 'best', 'last'"):
        run.checkpoint("latest")


def test_written_files_get_the_umask_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic.write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.json"
    atomic.write_json(path, {"old": 1})
    with pytest.raises(ZeroDivisionError):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise ZeroDivisionError
    assert path.read_text() == '{\n  "old": 1\n}\n'
    assert os.listdir(tmp_path) == ["f.json"]


# -- one writer ----------------------------------------------------------------------


def test_a_held_run_refuses_a_second_claim_naming_pid_and_host(tmp_path):
    run = make_run(tmp_path / "run")
    with claim(run.path, fresh=False):
        holder = f"process {os.getpid()} on host {socket.gethostname()}"
        for fresh, overwrite in ((False, False), (True, True), (True, False)):
            with pytest.raises(RunError, match=f"in use by {re.escape(holder)}"):
                with claim(run.path, fresh=fresh, overwrite=overwrite):
                    pass
    assert not (run.path / LOCK).exists(), "the lock is removed on release"
    with claim(run.path, fresh=False):  # free again
        pass


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    run = make_run(tmp_path / "run")
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from seqmask.run.directory import RunLock
        RunLock.acquire(Path({str(run.path / LOCK)!r}))
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=f"in use by process {proc.pid}"):
            RunLock.acquire(run.path / LOCK)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert (run.path / LOCK).exists(), "SIGKILL leaves the lock file behind"
    with claim(run.path, fresh=False):
        assert str(os.getpid()) in (run.path / LOCK).read_text()


def test_fresh_claim_refuses_an_existing_run_and_a_non_run(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(RunError, match="already exists; use --resume"):
        with claim(run.path, fresh=True):
            pass
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="not a seqmask run: refusing to overwrite"):
        with claim(other, fresh=True, overwrite=True):
            pass
    assert sorted(os.listdir(other)) == ["notes.txt"]
    assert sorted(os.listdir(run.path)) == ["config.yaml"]


def test_overwrite_clears_only_when_asked_and_a_failed_fresh_run_leaves_nothing(tmp_path):
    run = make_run(tmp_path / "run")
    (run.path / "checkpoints").mkdir()
    with claim(run.path, fresh=True, overwrite=True) as claimed:
        assert (run.path / "config.yaml").exists(), "nothing is deleted before clear()"
        claimed.clear()
        assert os.listdir(run.path) == [LOCK]
    new = tmp_path / "new"
    with pytest.raises(ValueError):
        with claim(new, fresh=True):
            raise ValueError("the data did not load")
    assert not new.exists()


# -- the file list -------------------------------------------------------------------


def test_the_readme_lists_every_file_a_run_can_hold():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The run directory", 1)[1].split("\n## ", 1)[0]
    for name in FILES:
        assert name.rstrip("/").split("/")[-1] in section, f"README's run directory lacks {name}"


def test_lock_holder_message_survives_an_empty_lock_file(tmp_path):
    """A process that has the lock but has not written its id yet is 'another process'."""
    run = make_run(tmp_path / "run")
    import fcntl

    fd = os.open(run.path / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(RunError, match="in use by another process"):
            RunLock.acquire(run.path / LOCK)
    finally:
        os.close(fd)
    RunLock.acquire(run.path / LOCK).release()


def test_a_run_saved_before_the_encoder_options_reads_as_the_model_it_trained():
    """The fixture's config.yaml predates model.bidirectional, model.pooling, dropout and
    weight decay: read from the run it says what the run trained with, not today's defaults."""
    from seqmask.config import KEYS_ADDED

    cfg = RunDir(ROOT / "tests" / "fixtures" / "run_before_lengths").read_config()
    for path, value in KEYS_ADDED.items():
        section, key = path.split(".")
        assert getattr(getattr(cfg, section), key) == value, path
