"""Training: config -> run directory.

The loop is written out rather than left to `model.fit`, for three reasons:
  * the epoch loss must be Σ error over every real step ÷ Σ real steps (Keras's running
    figure weights batch means by batch size, a different number);
  * an interrupted run must resume at the exact batch, with the same shuffling;
  * a NaN must stop training at the batch that produced it, keeping the last good checkpoint.

It is a few named steps over one `_Session` (_session.py): `_open` (start or resume,
_open.py, with the model and its steps from _model.py), `_run_epoch` and `_end_epoch`
(validation, early stopping, schedule, checkpoint; _epoch.py), then calibration and the
metrics (_finish.py). This module holds `train` and the multi-worker dispatch. Its
position is a `TrainState` (state.py), which every `last.keras` checkpoint carries.
Reporting goes through a `Reporter` (progress.py); training never prints.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seqmask.config import Config
from seqmask.run import directory as runs
from seqmask.run.directory import RunDir
from seqmask.training import distribute
from seqmask.training._epoch import Diverged, _train_epochs
from seqmask.training._finish import _calibrate, _metrics
from seqmask.training._model import _make_train_step as _make_train_step  # bench/profile_step.py imports it here
from seqmask.training._open import _open, _require_shared, _resumed_config, _start_info
from seqmask.training.progress import Reporter


def train(
    cfg: Config | None,
    run_dir: str | Any,
    *,
    resume: bool = False,
    overwrite: bool = False,
    overrides: Sequence[str] = (),
    reporter: Reporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Trains `cfg` into `run_dir`, or continues the run there (`resume`, with the saved
    config and the `overrides` `apply_resume_overrides` allows). Returns the metrics."""
    reporter = reporter or Reporter()
    should_stop = should_stop or (lambda: False)
    if _is_other_worker(cfg, run_dir, resume, overrides):
        return _train_as_worker(cfg, RunDir(Path(run_dir)), resume, overrides, reporter, should_stop)
    with runs.claim(run_dir, fresh=not resume, overwrite=overwrite) as run:
        session = _open(cfg, run, run, resume, overrides, reporter)
        reporter.start(_start_info(session))
        trained = not session.state.finished
        _train_epochs(session, reporter, should_stop)
        # A finished run resumed for nothing keeps the detector it has (`seqmask calibrate`
        # may have set it), unless --set changed a detect key.
        recalibrate = trained or any(o.strip().startswith("detect.") for o in overrides)
        run.write_json(runs.METRICS, _metrics(session))  # the run is complete before calibration
        calibrated = _calibrate(session, keep=not recalibrate)
        reporter.calibrated(calibrated)
        metrics = {**_metrics(session), "detector": {"score": calibrated.score, "thresholds": calibrated.how}}
        run.write_json(runs.METRICS, metrics)
        return metrics


# --------------------------------------------------------------------------- multi-worker


def _is_other_worker(cfg: Config | None, run_dir: str | Any, resume: bool, overrides: Sequence[str]) -> bool:
    """True in a multi-worker run's processes other than the chief (TF_CONFIG)."""
    spec = distribute.cluster_from_env()
    if spec is None or spec.is_chief:
        return False
    if cfg is None:  # --resume: the run's saved config says whether it is multi_worker
        home = RunDir(Path(run_dir))
        _require_shared(home, resume)
        cfg = _resumed_config(home, overrides, write=False)
    return distribute.is_worker_process(cfg)


def _train_as_worker(
    cfg: Config | None,
    home: RunDir,
    resume: bool,
    overrides: Sequence[str],
    reporter: Reporter,
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    """A non-chief worker trains in step with the chief, reading the run directory (to
    resume) but writing only to a scratch directory it removes at the end; the chief alone
    writes the run, its history, metrics and detector."""
    scratch = RunDir(Path(tempfile.mkdtemp(prefix="seqmask-worker-")))
    try:
        session = _open(cfg, scratch, home, resume, overrides, reporter)
        reporter.start(_start_info(session))
        _train_epochs(session, reporter, should_stop)
        return _metrics(session)
    finally:
        shutil.rmtree(scratch.path, ignore_errors=True)


__all__ = ["Diverged", "train"]
