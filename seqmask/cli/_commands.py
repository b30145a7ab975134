"""The command line: `seqmask train | evaluate | encode | detect | calibrate | report | export`.

The only module that prints or exits. Errors the user can fix (`SeqmaskError`) become one
message on stderr and an exit code: 2 for config and usage errors, 1 for data, run and
device errors, 130 for Ctrl-C, 143 for SIGTERM (preempted: checkpoint written, resume it).
Every command takes the run directory as its first argument. TensorFlow is imported inside
the commands that need it, so `--help` and config errors answer at once.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import sys
import warnings
from pathlib import Path
from types import FrameType, TracebackType
from typing import Annotated, Any, Literal, NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Typer vendors click (typer._click) and exports no public name for the base class of its
# usage errors; typer.BadParameter is one of its subclasses.
from typer._click.core import Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from seqmask import api
from seqmask.errors import Interrupted, SeqmaskDeprecationWarning, SeqmaskError
from seqmask.run.directory import Checkpoint
from seqmask.run.state import EpochRow
from seqmask.training.progress import Calibrated, Reporter, TrainStart

# Before any TensorFlow import: keep its C++ log lines out of the user's terminal. Its
# failures still reach the user, as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# No markup on what seqmask prints: paths and ids may hold [brackets].
out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    # escape(): file and column names may contain [brackets] that Rich would read as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


class _Group(TyperGroup):
    """Usage errors (a bad option value, an unknown option) get the same one-line
    `error:` form and exit code 2 as every other error, instead of Typer's panel."""

    def invoke(self, ctx: Context) -> Any:
        try:
            with warnings.catch_warnings():  # restores the previous handler afterwards
                warnings.simplefilter("always", SeqmaskDeprecationWarning)
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except UsageError as e:
            command = e.ctx.command.name if e.ctx is not None and e.ctx.parent is not None else None
            # Typer words a bad Literal choice "Value error, 'x' is not one of ...".
            message = e.format_message().replace("Value error, ", "")
            _fail(f"{message} (see 'seqmask {command + ' ' if command else ''}--help')", 2)


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate and use masked LSTM autoencoders on variable-length sequences.",
)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, SeqmaskDeprecationWarning):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", markup=True, soft_wrap=True)
    else:
        warnings._showwarnmsg_impl(warnings.WarningMessage(message, category, *args, **kwargs))  # type: ignore[attr-defined]


def _import_tensorflow() -> None:
    """Imports TensorFlow with its start-up banner (printed before its logging is set up,
    so no setting silences it) sent to a file; the banner is shown only if the import fails."""
    import tempfile

    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        except Exception:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# SIGTERM is what schedulers and Kubernetes send before they kill a process: 128 + 15 is
# the code of a process that SIGTERM ended, and the range 128-255 is the one Kubeflow's
# `restartPolicy: ExitCode` treats as retryable. Ctrl-C keeps the shell's 130.
PREEMPTED = 143
INTERRUPTED = 130


class _Interrupt:
    """First Ctrl-C or SIGTERM: finish the batch, checkpoint, exit 130 (Ctrl-C) or 143
    (SIGTERM: preempted, resume me). A second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None

    def __enter__(self) -> _Interrupt:
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    @property
    def exit_code(self) -> int:
        return PREEMPTED if self.signum == signal.SIGTERM else INTERRUPTED

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def __call__(self) -> bool:
        return self.requested


class _PlainReporter(Reporter):
    """One line per epoch: for logs and --quiet."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def start(self, info: TrainStart) -> None:
        if info.already_finished:
            self.console.print(
                f"{info.run_dir} had already finished training ({info.stop_reason}); nothing to resume. "
                "To train on, resume with --set train.epochs=N (and --set train.patience=N after early stopping)"
            )
            return
        if info.resumed_at:
            epoch, batch = info.resumed_at
            self.console.print(f"resuming {info.run_dir} at epoch {epoch}, batch {batch}")
        self.console.print(
            f"training on {info.device} (LSTM: {info.lstm_kernel}): {info.train_sequences} sequences "
            f"({info.validation_sequences} for validation), {info.num_features} features, "
            f"batch {info.batch_size}, {info.parameters:,} parameters -> {info.run_dir}"
        )

    def building_kernel(self) -> None:
        self.console.print("building seqmask's CPU LSTM kernel (once for this TensorFlow and CPU, ~25 s) ...")

    def indexing(self, done: int, total: int) -> None:
        if done == total:
            self.console.print(f"indexed {total} shards")

    def calibrated(self, info: Calibrated) -> None:
        if info.score is None:
            self.console.print(f"anomaly detector not calibrated: {info.how}")
        else:
            self.console.print(f"anomaly detector calibrated ({info.score} score): threshold at {info.how}")

    def epoch_end(self, row: EpochRow) -> None:
        val = f"  val_loss {row.val_loss:.6f}" if row.val_loss is not None else ""
        if row.val_accuracy is not None:
            val += f"  val_accuracy {row.val_accuracy:.4f}"
        self.console.print(
            f"epoch {row.epoch:>4}  loss {row.loss:.6f}{val}  {row.seconds:.1f}s  "
            f"{row.train_real_steps / max(row.seconds, 1e-9):,.0f} real steps/s"
        )


class _RichReporter(_PlainReporter):
    """The plain lines, plus a live bar for the epoch in progress."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.5f}  {task.fields[speed]:,.0f} real steps/s"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.index_task: TaskID | None = None
        self.index_progress: Progress | None = None

    def indexing(self, done: int, total: int) -> None:
        from rich.progress import Progress

        if self.index_progress is None or self.index_task is None:
            self.index_progress = Progress(console=self.console, transient=True)
            self.index_progress.start()
            self.index_task = self.index_progress.add_task("indexing shards", total=total)
        progress = self.index_progress
        progress.update(self.index_task, completed=done)
        if done == total:
            progress.stop()
            super().indexing(done, total)

    def epoch_start(self, epoch: int, num_batches: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("", total=num_batches, epoch=epoch, loss=0.0, speed=0.0)

    def batch_end(self, epoch: int, batch: int, loss: float, real_steps_per_s: float) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=batch, loss=loss, speed=real_steps_per_s)

    def epoch_end(self, row: EpochRow) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.progress.stop()
        super().epoch_end(row)

    def close(self) -> None:
        self.progress.stop()
        if self.index_progress is not None:
            self.index_progress.stop()


RunDirArg = Annotated[Path, typer.Argument(help="A run directory made by 'seqmask train'.", show_default=False)]
CheckpointOpt = Annotated[Checkpoint, typer.Option("--checkpoint", help="Which checkpoint to use.")]


def _train_target(run_dir: Path | None, old_run_dir: Path | None, config: Path | None) -> Path:
    """Where `train` writes: RUN_DIR, or the deprecated --run-dir, or runs/<config name>."""
    if run_dir is not None and old_run_dir is not None:
        _fail("give the run directory once: as RUN_DIR or with --run-dir, not both", 2)
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
    if resume:
        if run_dir is None and old_run_dir is None:
            _fail("--resume needs the run directory: seqmask train RUN_DIR --resume", 2)
        if config is not None or overwrite:
            _fail("--resume continues a run with its saved config: do not combine it with --config or --overwrite", 2)
    elif config is None:
        _fail("give --config FILE to start a run, or RUN_DIR --resume to continue one", 2)
    target = _train_target(run_dir, old_run_dir, config)
    interrupt = _Interrupt()
    try:
        # The config is checked before TensorFlow is imported: its errors answer at once.
        cfg = None if resume else api.make_config(config, set_)  # type: ignore[arg-type]
        _import_tensorflow()
        reporter = _PlainReporter(out) if quiet or not out.is_terminal else _RichReporter(out)
        try:
            with interrupt:
                run = api.train(
                    cfg,
                    target,
                    resume=resume,
                    overwrite=overwrite,
                    sets=set_ if resume else (),
                    reporter=reporter,
                    should_stop=interrupt,
                )
                metrics = run.metrics
        finally:
            if isinstance(reporter, _RichReporter):
                reporter.close()
    except Interrupted as stop:
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
    except KeyboardInterrupt:
        err.print("interrupted; the last checkpoint written is kept")
        raise typer.Exit(interrupt.exit_code) from None
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    val = metrics["best_val_loss"]
    out.print(
        f"done ({metrics['stop_reason']}). best epoch {metrics['best_epoch']}: "
        f"loss {metrics['best_loss']:.6f}" + (f", val_loss {val:.6f}" if val is not None else "")
    )
    out.print(f"run directory: {target}")


@app.command()
def evaluate(
    run_dir: RunDirArg,
    data: Annotated[
        Path | None, typer.Option("--data", help="Data to score (default: the run's validation data).")
    ] = None,
    checkpoint: CheckpointOpt = "best",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Per-sequence errors, .csv or .parquet (default: RUN_DIR/evaluation_<checkpoint>.csv); "
            "sharded data is scored and written shard by shard.",
        ),
    ] = None,
) -> None:
    """The masked loss of a trained run on any data, with per-sequence errors."""
    _check_table_suffix("--output", output)
    try:
        _import_tensorflow()
        run = api.load(run_dir, checkpoint)
        output = output or run.loaded.run_dir.evaluation_csv(checkpoint)
        result = run.evaluate_to(data, output)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    tokens = run.config.input.kind == "tokens"
    table = Table(title=f"seqmask evaluate - {run_dir} ({checkpoint} checkpoint)", show_header=False)
    table.add_row("data", str(data) if data else "the run's validation data")
    table.add_row("sequences", f"{result.sequences:,}")
    table.add_row("scored steps", f"{int(result.counts):,}")
    train_cfg = run.config.train
    error = "cross-entropy" if tokens else train_cfg.error
    table.add_row(f"loss ({train_cfg.loss}, {error})", f"{result.loss:.6f}")
    if tokens:
        table.add_row("token accuracy", f"{result.accuracy:.4f}")
        table.add_row("perplexity", f"{math.exp(result.loss):.3f}")
    errors = result.errors
    table.add_row("per-sequence error: median / max", f"{np.nanmedian(errors):.6f} / {np.nanmax(errors):.6f}")
    table.add_row("throughput", f"{result.real_steps / max(result.seconds, 1e-9):,.0f} real steps/s")
    table.add_row("per-sequence errors", str(output))
    out.print(table)


@app.command()
def encode(
    run_dir: RunDirArg,
    data: Annotated[Path, typer.Option("--data", help="Sequences to encode.", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the latent vectors: .csv or .parquet (id, length, z0, z1, ...) or .npy.",
            show_default=False,
        ),
    ],
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Export one latent vector per sequence, keyed by its id."""
    if output.suffix not in (".npy", ".csv", ".parquet"):
        _fail(f"--output must end in .csv, .parquet or .npy, got {str(output)!r}", 2)
    try:
        _import_tensorflow()
        encoding = api.load(run_dir, checkpoint).encode_to(data, output)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    out.print(
        f"wrote {len(encoding.ids):,} latent vectors of size {encoding.latent.shape[1]} to {output} "
        f"({encoding.num_steps / max(encoding.seconds, 1e-9):,.0f} real steps/s)"
    )


def _check_table_suffix(option: str, path: Path | None) -> None:
    if path is not None and path.suffix not in (".csv", ".parquet"):
        _fail(f"{option} must end in .csv or .parquet, got {str(path)!r}", 2)


def _summary_path(output: Path) -> Path:
    from seqmask.analysis.outputs import summary_path

    return summary_path(output)


@app.command()
def detect(
    run_dir: RunDirArg,
    data: Annotated[Path, typer.Option("--data", help="Sequences to score.", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="One row per sequence (.csv or .parquet): id, length, score, threshold, anomaly, "
            "interval_start, interval_end. A summary goes beside it (<name>.summary.json). "
            "Sharded data is scored and written shard by shard.",
            show_default=False,
        ),
    ],
    checkpoint: CheckpointOpt = "best",
    steps: Annotated[
        Path | None,
        typer.Option(
            "--steps", help="One row per real step (.csv or .parquet): id, step, score, error_<feature>..., interval."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="CSV id,label (1 = anomaly): report AUROC, average precision, precision/recall/F1."
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Flag scores above this, for this call only.")
    ] = None,
) -> None:
    """Score each sequence for how unusual it is, flag those above the calibrated threshold."""
    _check_table_suffix("--output", output)
    _check_table_suffix("--steps", steps)
    if steps is not None and steps.resolve() == output.resolve():
        _fail("--output and --steps must be different files", 2)
    if threshold is not None and not math.isfinite(threshold):
        _fail(f"--threshold must be a finite number, got {threshold}", 2)
    try:
        _import_tensorflow()
        result = api.load(run_dir, checkpoint).detect_to(data, output, steps=steps, threshold=threshold, labels=labels)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    detector, metrics, totals = result.detector, result.metrics, result.totals
    if result.calibrated_now:
        out.print(f"calibrated {run_dir}'s detector first (it had none for the {checkpoint} checkpoint)")
    table = Table(title=f"seqmask detect - {run_dir} ({checkpoint} checkpoint)", show_header=False)
    table.add_row("data", str(data))
    table.add_row("score", detector.score)
    table.add_row("sequences scored", f"{totals.sequences:,}")
    share = f" ({totals.flagged / totals.sequences:.1%})" if totals.sequences else ""
    table.add_row("flagged", f"{totals.flagged:,}{share}")
    low, high = (totals.low, totals.high) if totals.sequences else (0, 0)
    shown = f"{low:.6g}" if low == high else f"{low:.6g} .. {high:.6g} (by length)"
    table.add_row("threshold", f"{shown}, set at {totals.how}")
    table.add_row("steps in anomalous intervals", f"{totals.flagged_steps:,}")
    if metrics is not None:
        table.add_row("labelled anomalies", f"{metrics['anomalies']:,} of {totals.sequences:,}")
        table.add_row("AUROC / average precision", f"{metrics['auroc']:.4f} / {metrics['average_precision']:.4f}")
        table.add_row(
            "precision / recall / F1",
            f"{metrics['precision']:.4f} / {metrics['recall']:.4f} / {metrics['f1']:.4f}",
        )
    table.add_row("per sequence", str(output))
    if steps is not None:
        table.add_row("per step", str(steps))
    table.add_row("summary", str(_summary_path(output)))
    out.print(table)


@app.command()
def calibrate(
    run_dir: RunDirArg,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Sequences to calibrate on (default: the run's validation data)."),
    ] = None,
    quantile: Annotated[
        float | None, typer.Option("--quantile", help="Flag the scores above this quantile of the data's scores.")
    ] = None,
    contamination: Annotated[
        float | None,
        typer.Option("--contamination", help="The share of anomalies in --data: flag that share of it."),
    ] = None,
    fpr: Annotated[
        float | None,
        typer.Option("--fpr", help="The false-positive rate wanted on the sequences --labels marks normal."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="CSV id,label (1 = anomaly) for the --data sequences (--fpr).")
    ] = None,
    score: Annotated[
        str | None,
        typer.Option(
            "--score", help="combined | density | latent | mahalanobis | error (default: the run's detect.score)."
        ),
    ] = None,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Fit the run's anomaly detector again, or set its threshold another way, without retraining."""
    try:
        api.check_threshold_rule(quantile, contamination, fpr, labels, data, score, cli=True)
        _import_tensorflow()
        # Loaded inside calibrate's lock on the run, not before it.
        run = api.Run(run_dir, checkpoint)
        detector = run.calibrate(
            data, quantile=quantile, contamination=contamination, fpr=fpr, labels=labels, score=score
        )
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    low, high = min(detector.bins.per_range), max(detector.bins.per_range)
    out.print(
        f"calibrated {run_dir} ({checkpoint} checkpoint, {detector.score} score): threshold at {detector.how}"
        + (
            f", {low:.6g}"
            if low == high
            else f", {low:.6g} .. {high:.6g} over {len(detector.bins.per_range)} length ranges"
        )
    )


@app.command()
def report(
    run_dir: RunDirArg,
    data: Annotated[
        Path | None, typer.Option("--data", help="Data to report on (default: the run's validation data).")
    ] = None,
    checkpoint: CheckpointOpt = "best",
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="CSV id,<label>: colours the latent space by label (a class, 0/1, ...)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write the page (default: RUN_DIR/report.html).")
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in the system's web browser.")] = False,
) -> None:
    """One self-contained HTML page of plots: the run, curves, lengths, reconstructions, latent space, anomalies."""
    if output is not None and output.suffix not in (".html", ".htm"):
        _fail(f"--output must end in .html, got {str(output)!r}", 2)
    try:
        _import_tensorflow()
        from seqmask import atomic
        from seqmask.analysis.report import REPORT

        run = api.load(run_dir, checkpoint)
        page = run.report(data, labels)
        output = output or run.loaded.run_dir.file(REPORT)
        atomic.write_text(output, page)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    out.print(f"wrote the report to {output} ({len(page.encode()) / 1e6:.1f} MB)")
    if open_:
        import webbrowser

        try:
            opened = webbrowser.get() is not None and webbrowser.open(output.resolve().as_uri())
        except webbrowser.Error:
            opened = False
        if not opened:
            out.print(f"no web browser found here; open {output.resolve()} in one")


@app.command()
def export(
    run_dir: RunDirArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The directory to write the model into.", show_default=False)
    ],
    format_: Annotated[
        Literal["savedmodel", "onnx"],
        typer.Option("--format", help="A TensorFlow SavedModel, or one ONNX file (needs seqmask[export])."),
    ] = "savedmodel",
    checkpoint: CheckpointOpt = "best",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output directory.")] = False,
) -> None:
    """Write the run as a model for serving that needs neither seqmask nor its compiled kernel."""
    try:
        _import_tensorflow()
        info = api.load(run_dir, checkpoint).export(output, format_, overwrite=overwrite)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    table = Table(title=f"seqmask export - {run_dir} ({checkpoint} checkpoint)", show_header=False)
    table.add_row("format", info.format)
    for name, outputs in info.signatures.items():
        table.add_row(f"{name} ->", ", ".join(outputs))
    table.add_row("inputs", "values (batch, time, features), lengths (batch,) int32: see seqmask_export.json")
    table.add_row("anomaly score", info.anomaly_score if info.with_anomaly_score else "none (the run has no detector)")
    table.add_row("written to", f"{info.path} ({info.seconds:.1f} s)")
    out.print(table)


def main() -> None:
    app()
