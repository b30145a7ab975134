"""The commands that use a trained run: evaluate, encode, detect, calibrate, report, export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.table import Table

from seqmask import api
from seqmask.analysis.outputs import LATENT_SUFFIXES, TABLE_SUFFIXES, summary_path
from seqmask.cli._app import app, fail, import_tensorflow, out
from seqmask.errors import SeqmaskError
from seqmask.run.directory import Checkpoint

RunDirArg = Annotated[Path, typer.Argument(help="A run directory made by 'seqmask train'.", show_default=False)]
CheckpointOpt = Annotated[Checkpoint, typer.Option("--checkpoint", help="Which checkpoint to use.")]


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
        import_tensorflow()
        run = api.load(run_dir, checkpoint)
        output = output or run.loaded.run_dir.evaluation_csv(checkpoint)
        result = run.evaluate_to(data, output)
    except SeqmaskError as e:
        fail(str(e), e.exit_code)
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
    if output.suffix not in LATENT_SUFFIXES:
        fail(f"--output must end in {_one_of(LATENT_SUFFIXES)}, got {str(output)!r}", 2)
    try:
        import_tensorflow()
        encoding = api.load(run_dir, checkpoint).encode_to(data, output)
    except SeqmaskError as e:
        fail(str(e), e.exit_code)
    out.print(
        f"wrote {len(encoding.ids):,} latent vectors of size {encoding.latent.shape[1]} to {output} "
        f"({encoding.num_steps / max(encoding.seconds, 1e-9):,.0f} real steps/s)"
    )


def _check_table_suffix(option: str, path: Path | None) -> None:
    if path is not None and path.suffix not in TABLE_SUFFIXES:
        fail(f"{option} must end in {_one_of(TABLE_SUFFIXES)}, got {str(path)!r}", 2)


def _one_of(suffixes: tuple[str, ...]) -> str:
    """(".csv", ".parquet", ".npy") -> ".csv, .parquet or .npy"."""
    return f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"


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
        fail("--output and --steps must be different files", 2)
    if threshold is not None and not math.isfinite(threshold):
        fail(f"--threshold must be a finite number, got {threshold}", 2)
    try:
        import_tensorflow()
        result = api.load(run_dir, checkpoint).detect_to(data, output, steps=steps, threshold=threshold, labels=labels)
    except SeqmaskError as e:
        fail(str(e), e.exit_code)
    if result.calibrated_now:
        out.print(f"calibrated {run_dir}'s detector first (it had none for the {checkpoint} checkpoint)")
    out.print(_detect_table(result, run_dir, checkpoint, data, output, steps))


def _detect_table(
    result: api.DetectionReport, run_dir: Path, checkpoint: Checkpoint, data: Path, output: Path, steps: Path | None
) -> Table:
    """What `detect` found: totals, the threshold, and metrics where labels were given."""
    detector, metrics, totals = result.detector, result.metrics, result.totals
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
    table.add_row("summary", str(summary_path(output)))
    return table


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
        import_tensorflow()
        # Loaded inside calibrate's lock on the run, not before it.
        run = api.Run(run_dir, checkpoint)
        detector = run.calibrate(
            data, quantile=quantile, contamination=contamination, fpr=fpr, labels=labels, score=score
        )
    except SeqmaskError as e:
        fail(str(e), e.exit_code)
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
        fail(f"--output must end in .html, got {str(output)!r}", 2)
    try:
        import_tensorflow()
        from seqmask import atomic
        from seqmask.analysis.report import REPORT

        run = api.load(run_dir, checkpoint)
        page = run.report(data, labels)
        output = output or run.loaded.run_dir.file(REPORT)
        atomic.write_text(output, page)
    except SeqmaskError as e:
        fail(str(e), e.exit_code)
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
        import_tensorflow()
        info = api.load(run_dir, checkpoint).export(output, format_, overwrite=overwrite)
    except SeqmaskError as e:
        fail(str(e), e.exit_code)
    table = Table(title=f"seqmask export - {run_dir} ({checkpoint} checkpoint)", show_header=False)
    table.add_row("format", info.format)
    for name, outputs in info.signatures.items():
        table.add_row(f"{name} ->", ", ".join(outputs))
    table.add_row("inputs", "values (batch, time, features), lengths (batch,) int32: see seqmask_export.json")
    table.add_row("anomaly score", info.anomaly_score if info.with_anomaly_score else "none (the run has no detector)")
    table.add_row("written to", f"{info.path} ({info.seconds:.1f} s)")
    out.print(table)
