"""The export directory: checked before anything is written (not a file, not the run, empty
or --overwrite), then built whole in a temporary directory beside it and renamed onto it,
or removed with the parents it made."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seqmask.atomic import umask
from seqmask.run.loaded import LoadedRun
from seqmask.serving._layout import ExportError


def _check_output(run: LoadedRun, output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output} exists and is not a directory")
    run_path = run.run_dir.path.resolve()
    if output.resolve() == run_path or output.resolve() in run_path.parents:
        raise ExportError(f"{output} holds the run {run.run_dir}; export to another directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ExportError(f"{output} exists and is not empty; pass --overwrite to replace it")


@contextmanager
def _building(output: Path) -> Iterator[Path]:
    """A temporary directory beside `output`, renamed onto it if the block succeeds; on
    any failure it is removed and `output` is left as it was."""
    parent = output.absolute().parent
    made = [p for p in (parent, *parent.parents) if not p.exists()]  # the parents this call creates
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=parent))
        os.chmod(tmp, 0o777 & ~umask())
    except OSError as e:
        _remove_empty(made)
        raise ExportError(f"cannot write {output}: {e}") from e
    try:
        yield tmp
        old = parent / f".{output.name}.{uuid.uuid4().hex[:8]}.old"
        if output.exists():
            os.rename(output, old)
        try:
            os.rename(tmp, output)
        except OSError:
            if old.exists():
                os.rename(old, output)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise ExportError(f"cannot write {output}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise


def _remove_empty(directories: list[Path]) -> None:
    """Removes the directories a failed export created, innermost first, if still empty."""
    for d in directories:
        try:
            d.rmdir()
        except OSError:
            return
