"""Files written whole or not at all.

Every file seqmask writes (run directories, checkpoints, exports, vocabularies) goes to a
temporary file in its own directory and is renamed into place. `os.replace` is atomic on
POSIX, so a kill at any moment leaves either the previous file or the new one, never half
of one. The temporary names start with `PARTIAL_PREFIX`, so leftovers of a killed write
can be found and removed (`remove_partial_writes`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from seqmask.errors import RunError

PARTIAL_PREFIX = ".tmp-"


def umask() -> int:
    """The process's umask, for files and directories made with tempfile's private 0600/0700."""
    # os.umask can only be read by setting it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds.

    The file gets the permissions an ordinary `open(path, "w")` would (0666 less the
    umask), not mkstemp's 0600, so a teammate or a TensorBoard server running as another
    user can read the run.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The name keeps `path`'s suffix: Keras only saves to names ending in .keras.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX, suffix=f"-{path.name}")
        os.fchmod(fd, 0o666 & ~umask())
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


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path: str | Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A CSV file (None as an empty cell, fields quoted where needed), written atomically."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, out.getvalue())


def remove_partial_writes(directory: str | Path) -> None:
    """Deletes the temporary files of writes a kill interrupted, anywhere under `directory`."""
    for leftover in Path(directory).rglob(f"{PARTIAL_PREFIX}*"):
        leftover.unlink(missing_ok=True)
