"""The run directory: what a training run leaves behind, who may write it, and how.

`RunDir` owns a run directory's paths, the one "is this a run" check, reading its config
and every write into it; each write is atomic (`seqmask.atomic`). `claim` gives one process
the right to write a run for as long as it trains: a second `train`, `--resume` or
`--overwrite` on a run in use fails, naming the process that holds it.

`FILES` lists every file a run directory can hold; the README's table follows it (a test
checks). evaluate, encode, detect and every later command need nothing but this directory
and the data.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from seqmask import atomic
from seqmask.config import Config, config_from_dict, config_to_dict, with_keys_added
from seqmask.errors import RunError
from seqmask.run.state import EpochRow

Checkpoint = Literal["best", "last"]
CHECKPOINT_CHOICES: tuple[str, ...] = get_args(Checkpoint)

CONFIG = "config.yaml"
NORMALIZATION = "normalization.json"
VOCABULARY = "vocabulary.txt"
SHARD_INDEX = "shard_index.npz"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
LOCK = "train.lock"
HISTORY_FIELDS = (
    "epoch",
    "loss",
    "val_loss",
    "seconds",
    "learning_rate",
    "train_real_steps",
    "accuracy",
    "val_accuracy",  # token runs only; empty otherwise
)

# Every file a run directory can hold: name -> what it is.
FILES: dict[str, str] = {
    CONFIG: "the resolved config (every default filled in, absolute paths)",
    NORMALIZATION: "per-feature mean and std over the training split's real steps",
    VOCABULARY: "(token runs) one token per line; line k is id k - 1",
    SHARD_INDEX: "(sharded data) each sequence's id, length, shard and row, which are held out for "
    "validation, each shard's size and time",
    HISTORY: "one row per epoch: " + ", ".join(HISTORY_FIELDS),
    METRICS: "final and best figures, sequences and real steps, padding fraction, "
    "versions of seqmask, TensorFlow and Keras, the device",
    f"{CHECKPOINTS}/best.keras": "the weights with the best validation loss",
    f"{CHECKPOINTS}/last.keras": "the latest weights, optimizer state and training position",
    f"{TENSORBOARD}/": "event files (tensorboard --logdir RUN_DIR/tensorboard)",
    "evaluation_best.csv": "written by evaluate (evaluation_last.csv with --checkpoint last)",
    "report.html": "written by report: one self-contained page of figures",
    "detector.json": "the anomaly detector of each calibrated checkpoint: score, thresholds, how they were set",
    "detector_best.npz": "its arrays (error mean and covariance, reference latent vectors); detector_last.npz "
    "for --checkpoint last",
    LOCK: "present while a process trains the run: its process id and host",
}


@dataclass(frozen=True)
class RunDir:
    """A run directory on disk. Constructing one checks nothing: see `require`."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __str__(self) -> str:
        return str(self.path)

    # -- what it holds -------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD

    def file(self, name: str) -> Path:
        """The path of one of `FILES` (or `evaluation_<checkpoint>.csv`) in this run."""
        return self.path / name

    def checkpoint(self, which: Checkpoint) -> Path:
        if which not in CHECKPOINT_CHOICES:
            raise RunError(f"checkpoint must be one of {', '.join(map(repr, CHECKPOINT_CHOICES))}, got {which!r}")
        return self.path / CHECKPOINTS / f"{which}.keras"

    def evaluation_csv(self, which: Checkpoint) -> Path:
        return self.path / f"evaluation_{which}.csv"

    def is_run(self) -> bool:
        """The one test of "is this a seqmask run": `train` writes its config first of all,
        so a run killed before its first checkpoint is a run (it resumes from scratch)."""
        return self.config_path.is_file()

    def require(self) -> RunDir:
        """This run, or a RunError saying why `path` is not one."""
        if not self.is_run():
            what = "is not a directory" if not self.path.is_dir() else f"has no {CONFIG}"
            raise RunError(
                f"{self.path} is not a seqmask run directory: it {what} "
                "(expected a run directory made by 'seqmask train')"
            )
        return self

    def require_checkpoint(self, which: Checkpoint) -> Path:
        path = self.checkpoint(which)
        if not path.is_file():
            other: Checkpoint = "last" if which == "best" else "best"
            if self.checkpoint(other).is_file():
                raise RunError(f"{self.path} has no {which} checkpoint yet ({path}); try --checkpoint {other}")
            raise RunError(
                f"{self.path} has no {which} checkpoint yet ({path}), nor any other: training stopped before "
                f"its first one was written; resume it with 'seqmask train {self.path} --resume'"
            )
        return path

    # -- reading -------------------------------------------------------------------

    def read_config(self) -> Config:
        return config_from_dict(self.read_raw_config(), source=str(self.config_path))

    def read_raw_config(self) -> Any:
        """The saved config as parsed YAML, keys added since the run was saved filled in
        with the values it trained with (config.KEYS_ADDED)."""
        return with_keys_added(read_yaml(self.config_path))

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

    def read_history(self) -> list[dict[str, str]]:
        """history.csv's rows as text, one dict per finished epoch ([] before the first)."""
        path = self.path / HISTORY
        if not path.is_file():
            return []
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    # -- writing (every write atomic) ------------------------------------------------

    def write_config(self, cfg: Config) -> None:
        atomic.write_yaml(self.config_path, config_to_dict(cfg))

    def write_json(self, name: str, obj: Any) -> None:
        atomic.write_json(self.path / name, obj)

    def write_text(self, name: str, text: str) -> None:
        atomic.write_text(self.path / name, text)

    def write_history(self, rows: Sequence[EpochRow]) -> None:
        table = ([getattr(row, k) for k in HISTORY_FIELDS] for row in rows)
        atomic.write_csv(self.path / HISTORY, HISTORY_FIELDS, table)

    def remove_partial_writes(self) -> None:
        atomic.remove_partial_writes(self.path)

    def contents(self) -> list[Path]:
        """What the directory holds, but the lock of the process that claimed it."""
        return [p for p in self.path.iterdir() if p.name != LOCK]

    def clear(self) -> None:
        """Deletes a previous run's files (`claim(overwrite=True)` has checked it is a run)."""
        for p in self.contents():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or "invalid YAML").split())
        raise RunError(f"{path}{at}: {problem} (the run's saved config is damaged)") from e


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RunError(f"cannot read {path}: {e}") from e


# --------------------------------------------------------------------------- one writer


class RunLock:
    """An exclusive `flock` on RUN_DIR/train.lock, which holds the holder's pid and host.

    The kernel drops a flock when its process dies, SIGKILL included, so a lock file left
    by a killed process is stale by construction: the next `acquire` simply takes it over.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, path: Path) -> RunLock:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise RunError(f"cannot write to {path.parent}: {e.strerror or e}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder(fd)
                os.close(fd)
                raise RunError(
                    f"{path.parent} is in use by {holder}; wait for it to finish or stop it, then "
                    "try again (a lock left by a process that died is taken over automatically)"
                ) from None
            # The previous holder removes the file as it releases it: if that happened between
            # our open and our flock, we hold a lock on a file nobody else can see. Start over.
            if not _same_file(fd, path):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            holder_info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
            os.write(fd, json.dumps(holder_info).encode())
            return cls(path, fd)

    def release(self) -> None:
        try:
            self.path.unlink(missing_ok=True)  # before closing: nobody can lock the old file
        finally:
            os.close(self.fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {int(info['pid'])} on host {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"  # it has the lock but has not written its id yet


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


@contextmanager
def claim(path: str | Path, *, fresh: bool, overwrite: bool = False) -> Iterator[RunDir]:
    """The run directory at `path`, held by this process alone for the block.

    `fresh`: a new run. `path` must be missing or empty unless `overwrite`, which replaces
    a previous run (never a directory that is not one). Otherwise `path` must be a run
    (`--resume`). A fresh run that fails before anything is written leaves no directory.
    """
    run = RunDir(Path(path))
    if not fresh:
        run.require()
    existed = run.path.exists()
    try:
        run.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create run directory {run.path}: {e.strerror or e}") from e
    lock = RunLock.acquire(run.path / LOCK)
    try:
        if fresh:
            _check_room(run, overwrite)
        yield run
    finally:
        lock.release()
        if fresh and not existed and not any(run.path.iterdir()):
            run.path.rmdir()


def _check_room(run: RunDir, overwrite: bool) -> None:
    """A fresh run goes into an empty directory, or replaces a run with `overwrite`. The
    old run is only deleted (`RunDir.clear`) once the new one's data has loaded."""
    if not run.contents():
        return
    if not overwrite:
        raise RunError(
            f"{run.path} already exists; use --resume to continue it (seqmask train {run.path} "
            "--resume), --overwrite to replace it, or choose another run directory"
        )
    if not run.is_run():
        raise RunError(f"{run.path} is not empty and is not a seqmask run: refusing to overwrite it")
