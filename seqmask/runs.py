"""The run directory: what a training run leaves behind, and how it is written.

    RUN_DIR/
      config.yaml            the resolved config (every default filled in, absolute paths)
      normalization.json     per-feature mean and std of the training split's real steps
      vocabulary.txt         (token runs, instead) one token per line; line k is id k - 1
      history.csv            one row per epoch
      metrics.json           final and best figures, data sizes, versions, device
      checkpoints/best.keras the weights with the best validation loss
      checkpoints/last.keras the latest weights, optimizer state and training position
      tensorboard/           event files

Every file is written to a temporary file in its own directory and renamed into place
(`os.replace` is atomic on POSIX), so a kill at any moment leaves either the previous file
or the new one, never half of one. evaluate and encode need nothing but this directory and
the data.
"""

import csv
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

from seqmask.errors import RunError

CONFIG = "config.yaml"
NORMALIZATION = "normalization.json"
VOCABULARY = "vocabulary.txt"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
HISTORY_FIELDS = (
    "epoch", "loss", "val_loss", "seconds", "learning_rate", "real_steps",
    "accuracy", "val_accuracy",  # token runs only; empty otherwise
)


@contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The name keeps `path`'s suffix (Keras only saves to names ending in .keras);
        # the leading ".tmp-" marks leftovers of a killed write.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}")
        os.close(fd)
    except OSError as e:
        raise RunError(f"cannot write to {path.parent}: {e.strerror or e}") from e
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path, obj):
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_csv(path, header, rows):
    """A CSV file (None as an empty cell, fields quoted where needed), written atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, out.getvalue())


def write_history(path, rows):
    write_csv(path, HISTORY_FIELDS, ([row.get(k) for k in HISTORY_FIELDS] for row in rows))


def read_yaml(path):
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


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RunError(f"cannot read {path}: {e}") from e


def remove_partial_writes(run_dir):
    """Deletes the temporary files of writes a kill interrupted (see `atomic_path`)."""
    for leftover in Path(run_dir).rglob(".tmp-*"):
        leftover.unlink(missing_ok=True)


def checkpoint_path(run_dir, which):
    if which not in ("best", "last"):
        raise RunError(f"checkpoint must be 'best' or 'last', got {which!r}")
    return Path(run_dir) / CHECKPOINTS / f"{which}.keras"


def require_run(run_dir):
    """Checks that `run_dir` is a finished or resumable run; returns it as a Path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a directory (expected a run directory made by 'seqmask train')")
    missing = [name for name in (CONFIG,) if not (run_dir / name).is_file()]
    if not (run_dir / CHECKPOINTS / "last.keras").is_file():
        missing.append(f"{CHECKPOINTS}/last.keras")
    if missing:
        raise RunError(f"{run_dir} is not a seqmask run directory: missing {', '.join(missing)}")
    return run_dir
