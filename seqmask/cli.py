"""The command line: `seqmask train | evaluate | encode`.

The only module that prints or exits. Errors the user can fix (`SeqmaskError`) become one
message on stderr and an exit code: 2 for config and usage errors, 1 for data and run
errors, 130 for Ctrl-C. TensorFlow is imported inside the commands that need it, so
`--help` and config errors answer at once.
"""

import math
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqmask.errors import Interrupted, SeqmaskError

# Before any TensorFlow import: keep its C++ log lines out of the user's terminal. Its
# failures still reach the user, as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate and use masked LSTM autoencoders on variable-length sequences.",
)
# No markup on what seqmask prints: paths and ids may hold [brackets].
out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False)


def _import_tensorflow():
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


def _fail(message, code):
    # escape(): file and column names may contain [brackets] that Rich would read as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


class _Interrupt:
    """First Ctrl-C: finish the batch, checkpoint, exit 130. A second one stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)

    def __call__(self):
        return self.requested


class _PlainReporter:
    """One line per epoch: for logs and --quiet."""

    def __init__(self, console):
        self.console = console

    def start(self, info):
        if info["already_finished"]:
            self.console.print(f"{info['run_dir']} had already finished training; nothing to resume")
            return
        if info["resumed_at"]:
            epoch, batch = info["resumed_at"]
            self.console.print(f"resuming {info['run_dir']} at epoch {epoch}, batch {batch}")
        self.console.print(
            f"training on {info['device']} (LSTM: {info['lstm_kernel']}): {info['train_sequences']} sequences "
            f"({info['validation_sequences']} for validation), {info['num_features']} features, "
            f"{info['parameters']:,} parameters -> {info['run_dir']}",
            highlight=False,
        )

    def building_kernel(self):
        self.console.print("building seqmask's CPU LSTM kernel (once for this TensorFlow and CPU, ~25 s) ...")

    def epoch_start(self, epoch, num_batches):
        pass

    def batch_end(self, epoch, batch, loss, real_steps_per_s):
        pass

    def epoch_end(self, row):
        val = f"  val_loss {row['val_loss']:.6f}" if row["val_loss"] is not None else ""
        if row.get("val_accuracy") is not None:
            val += f"  val_accuracy {row['val_accuracy']:.4f}"
        self.console.print(
            f"epoch {row['epoch']:>4}  loss {row['loss']:.6f}{val}  {row['seconds']:.1f}s  "
            f"{row['real_steps'] / max(row['seconds'], 1e-9):,.0f} real steps/s",
            highlight=False,
        )


class _RichReporter(_PlainReporter):
    """The plain lines, plus a live bar for the epoch in progress."""

    def __init__(self, console):
        super().__init__(console)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.5f}  {task.fields[speed]:,.0f} real steps/s"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = None

    def epoch_start(self, epoch, num_batches):
        self.progress.start()
        self.task = self.progress.add_task("", total=num_batches, epoch=epoch, loss=0.0, speed=0.0)

    def batch_end(self, epoch, batch, loss, real_steps_per_s):
        self.progress.update(self.task, completed=batch, loss=loss, speed=real_steps_per_s)

    def epoch_end(self, row):
        self.progress.remove_task(self.task)
        self.progress.stop()
        super().epoch_end(row)

    def close(self):
        self.progress.stop()


@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key: --set train.learning_rate=0.01 (repeatable)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where to write the run (default: runs/<config name>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Plain log lines, no progress bar."),
):
    """Train an autoencoder; write checkpoints, history and metrics to a run directory."""
    from seqmask.config import load_config

    if resume is None and config is None:
        _fail("give --config FILE to start a run, or --resume RUN_DIR to continue one", 2)
    if resume is not None and (config is not None or set_ or overwrite):
        _fail("--resume continues a run with its saved config: do not combine it with --config, --set or --overwrite", 2)
    try:
        cfg = None if resume else load_config(config, set_)
        target = resume or run_dir or Path("runs") / config.stem
        _import_tensorflow()
        from seqmask.train import train as run_training

        reporter = _PlainReporter(out) if quiet or not out.is_terminal else _RichReporter(out)
        try:
            with _Interrupt() as interrupt:
                metrics = run_training(
                    cfg, target, resume=resume is not None, overwrite=overwrite,
                    reporter=reporter, should_stop=interrupt,
                )
        finally:
            if isinstance(reporter, _RichReporter):
                reporter.close()
    except Interrupted as stop:
        err.print(
            f"interrupted at epoch {stop.epoch}, batch {stop.batch}; checkpoint written.\n"
            f"resume with: seqmask train --resume {shlex.quote(str(stop.run_dir))}",
            highlight=False,
        )
        raise typer.Exit(130)
    except KeyboardInterrupt:
        err.print("interrupted; the last checkpoint written is kept")
        raise typer.Exit(130)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    val = metrics["best_val_loss"]
    out.print(
        f"done ({metrics['stop_reason']}). best epoch {metrics['best_epoch']}: "
        f"loss {metrics['best_loss']:.6f}" + (f", val_loss {val:.6f}" if val is not None else ""),
        highlight=False,
    )
    out.print(f"run directory: {target}", highlight=False)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory made by 'seqmask train'."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data to score (default: the run's validation data)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Per-sequence CSV (default: RUN_DIR/evaluation_<checkpoint>.csv)."),
):
    """The masked loss of a trained run on any data, with per-sequence errors."""
    if checkpoint not in ("best", "last"):
        _fail(f"--checkpoint must be 'best' or 'last', got {checkpoint!r}", 2)
    try:
        _import_tensorflow()
        from seqmask.evaluate import evaluate as run_evaluate, load_run
        from seqmask.exports import write_errors_csv

        run = load_run(run_dir, checkpoint)
        result = run_evaluate(run, data)
        output = output or Path(run_dir) / f"evaluation_{checkpoint}.csv"
        tokens = run.cfg.input.kind == "tokens"
        write_errors_csv(output, result.data, result.scores, tokens=tokens)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    table = Table(title=f"seqmask evaluate - {run_dir} ({checkpoint} checkpoint)", show_header=False)
    table.add_row("data", str(data) if data else "the run's validation data")
    table.add_row("sequences", f"{len(result.data):,}")
    table.add_row("scored steps", f"{int(result.scores.counts.sum()):,}")
    error = "cross-entropy" if tokens else run.cfg.train.error
    table.add_row(f"loss ({run.cfg.train.loss}, {error})", f"{result.loss:.6f}")
    if tokens:
        table.add_row("token accuracy", f"{result.scores.accuracy:.4f}")
        table.add_row("perplexity", f"{math.exp(result.loss):.3f}")
    errors = result.scores.per_sequence
    table.add_row("per-sequence error: median / max", f"{np.nanmedian(errors):.6f} / {np.nanmax(errors):.6f}")
    table.add_row("throughput", f"{result.data.num_steps / max(result.seconds, 1e-9):,.0f} real steps/s")
    table.add_row("per-sequence errors", str(output))
    out.print(table)


@app.command()
def encode(
    run_dir: Path = typer.Argument(..., help="A run directory made by 'seqmask train'."),
    data: Path = typer.Option(..., "--data", help="Sequences to encode."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the latent vectors: .npy or .csv."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
):
    """Export one latent vector per sequence, keyed by its id."""
    if checkpoint not in ("best", "last"):
        _fail(f"--checkpoint must be 'best' or 'last', got {checkpoint!r}", 2)
    if output.suffix not in (".npy", ".csv"):
        _fail(f"--output must end in .npy or .csv, got {str(output)!r}", 2)
    try:
        _import_tensorflow()
        from seqmask.evaluate import encode as run_encode, load_run
        from seqmask.exports import write_latent

        run = load_run(run_dir, checkpoint)
        seqs, latent, seconds = run_encode(run, data)
        write_latent(output, seqs, latent)
    except SeqmaskError as e:
        _fail(str(e), e.exit_code)
    out.print(
        f"wrote {len(seqs):,} latent vectors of size {latent.shape[1]} to {output} "
        f"({seqs.num_steps / max(seconds, 1e-9):,.0f} real steps/s)",
        highlight=False,
    )


def main():
    app()

