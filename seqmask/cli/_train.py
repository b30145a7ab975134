"""`seqmask train`: start a run from a config, or resume one."""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from seqmask import api
from seqmask.cli._app import app, err, fail, import_tensorflow, out
from seqmask.cli._interrupt import PREEMPTED, Interrupt
from seqmask.cli._reporters import PlainReporter, RichReporter
from seqmask.config import Config
from seqmask.errors import Interrupted, SeqmaskDeprecationWarning, SeqmaskError


def _train_target(run_dir: Path | None, old_run_dir: Path | None, config: Path | None) -> Path:
    """Where `train` writes: RUN_DIR, or the deprecated --run-dir, or runs/<config name>."""
    if run_dir is not None and old_run_dir is not None:
        fail("give the run directory once: as RUN_DIR or with --run-dir, not both", 2)
    if old_run_dir is not None:
        warnings.warn(
            "--run-dir DIR is deprecated: give the run directory as the first argument, "
            "'seqmask train DIR --config FILE'",
            SeqmaskDeprecationWarning,
            stacklevel=2,
        )
        return old_run_dir
    if run_dir is not None:
        return run_dir
    assert config is not None
    return Path("runs") / config.stem


@app.command()
def train(
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Where to write the run (default: runs/<config name>); with --resume, the run to continue.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a config key: --set train.learning_rate=0.01 (repeatable)."),
    ] = [],  # noqa: B006  (Typer reads the default; it is never mutated)
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue RUN_DIR from its last checkpoint (--set may raise train.epochs).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Plain log lines, no progress bar.")] = False,
    old_run_dir: Annotated[Path | None, typer.Option("--run-dir", hidden=True)] = None,
) -> None:
    """Train an autoencoder; write checkpoints, history and metrics to a run directory.

    Several GPUs or machines: train.distribute; multi_worker runs this command once per worker, each with its TF_CONFIG.

    Exit 130: interrupted; 143: preempted (SIGTERM) or another worker lost. Resume with RUN_DIR --resume (every worker).
    """
    _check_train_args(run_dir, old_run_dir, config, resume, overwrite)
    target = _train_target(run_dir, old_run_dir, config)
    interrupt = Interrupt()
    try:
        # The config is checked before TensorFlow is imported: its errors answer at once.
        cfg = None if resume else api.make_config(config, set_)  # type: ignore[arg-type]
        import_tensorflow()
        metrics = _train_reporting(cfg, target, resume, overwrite, set_ if resume else (), quiet, interrupt)
    except Interrupted as stop:
        _stopped(stop, interrupt)
    except KeyboardInterrupt:
        err.print("interrupted; the last checkpoint written is kept")
        raise typer.Exit(interrupt.exit_code) from None
    except SeqmaskError as e:
        fail(str(e), e.exit_code)
    val = metrics["best_val_loss"]
    out.print(
        f"done ({metrics['stop_reason']}). best epoch {metrics['best_epoch']}: "
        f"loss {metrics['best_loss']:.6f}" + (f", val_loss {val:.6f}" if val is not None else "")
    )
    out.print(f"run directory: {target}")


def _train_reporting(
    cfg: Config | None,
    target: Path,
    resume: bool,
    overwrite: bool,
    sets: Sequence[str],
    quiet: bool,
    interrupt: Interrupt,
) -> dict[str, Any]:
    """Trains with a live bar on a terminal (plain lines otherwise); returns the run's metrics."""
    reporter = PlainReporter(out) if quiet or not out.is_terminal else RichReporter(out)
    try:
        with interrupt:
            return api.train(
                cfg, target, resume=resume, overwrite=overwrite, sets=sets, reporter=reporter, should_stop=interrupt
            ).metrics
    finally:
        if isinstance(reporter, RichReporter):
            reporter.close()


def _check_train_args(
    run_dir: Path | None, old_run_dir: Path | None, config: Path | None, resume: bool, overwrite: bool
) -> None:
    if resume:
        if run_dir is None and old_run_dir is None:
            fail("--resume needs the run directory: seqmask train RUN_DIR --resume", 2)
        if config is not None or overwrite:
            fail("--resume continues a run with its saved config: do not combine it with --config or --overwrite", 2)
    elif config is None:
        fail("give --config FILE to start a run, or RUN_DIR --resume to continue one", 2)


def _stopped(stop: Interrupted, interrupt: Interrupt) -> NoReturn:
    """Exit after a stop that wrote a checkpoint, saying why it stopped and how to resume."""
    # In a multi-worker run a stop asked of one worker stops them all at the same batch.
    code = interrupt.exit_code if interrupt.requested else PREEMPTED
    if not interrupt.requested:
        what = "stopped because another worker was interrupted or preempted"
    else:
        what = "preempted (SIGTERM)" if code == PREEMPTED else "interrupted"
    err.print(
        f"{what} at epoch {stop.epoch}, batch {stop.batch}; checkpoint written.\n"
        f"resume with: seqmask train {shlex.quote(str(stop.run_dir))} --resume"
    )
    raise typer.Exit(code) from None
