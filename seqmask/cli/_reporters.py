"""What `seqmask train` prints: one line per epoch, and a live bar on a terminal."""

from __future__ import annotations

from rich.console import Console

from seqmask.run.state import EpochRow
from seqmask.training.progress import Calibrated, Reporter, TrainStart


class PlainReporter(Reporter):
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


class RichReporter(PlainReporter):
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
