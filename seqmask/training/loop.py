"""Training: config -> run directory.

The loop is written out rather than left to `model.fit`, for three reasons:
  * the epoch loss must be Σ error over every real step ÷ Σ real steps (Keras's running
    figure weights batch means by batch size, a different number);
  * an interrupted run must resume at the exact batch, with the same shuffling;
  * a NaN must stop training at the batch that produced it, keeping the last good checkpoint.

It is a few named steps over one `_Session`: `_open` (start or resume), `_run_epoch`, and
`_end_epoch` (validation, early stopping, schedule, checkpoint). Its position is a
`TrainState` (state.py), which every `last.keras` checkpoint carries. Reporting goes
through a `Reporter` (progress.py); this module never prints.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from seqmask._version import __version__
from seqmask.analysis.detect import DetectError, calibrate_on, calibration_sample, load_detector, reference_sample
from seqmask.config import Batching, Config, TrainConfig, apply_resume_overrides
from seqmask.data import Sequences
from seqmask.data.batching import batch_size_for, batch_time_len, epoch_batches, inference_batch_size, padded_batch
from seqmask.data.streaming import Prefetcher, ShardedSequences
from seqmask.data.vocab import Vocabulary
from seqmask.errors import Interrupted, RunError
from seqmask.model import native
from seqmask.model.autoencoder import build_autoencoder
from seqmask.model.devices import configure_device
from seqmask.model.scoring import batch_signature, make_eval_step, make_loss_fn, score
from seqmask.run import directory as runs
from seqmask.run.checkpoints import load_checkpoint, read_state, save_checkpoint
from seqmask.run.directory import SHARD_INDEX, RunDir
from seqmask.run.loaded import LoadedRun
from seqmask.run.splits import Splits, load_transform, prepare, same_transform, save_transform, saved_index
from seqmask.run.state import EpochRow, TrainState
from seqmask.training import distribute
from seqmask.training.distribute import Cluster
from seqmask.training.progress import Calibrated, Reporter, TrainStart

StepFn = Callable[..., Any]


class Diverged(RunError):
    """The loss became NaN or Inf."""


@dataclass
class _Session:
    """Everything one training run works with, from start (or resume) to its last epoch."""

    cfg: Config
    run: RunDir  # where this process writes: the run, or a worker's scratch directory
    home: RunDir  # the run directory itself (a multi-worker run's, on a shared filesystem)
    cluster: Cluster
    splits: Splits
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    state: TrainState
    device: str
    lstm_kernel: str
    resumed_from_checkpoint: bool
    train_step: StepFn
    eval_step: StepFn
    writer: Any  # tf.summary writer for RUN_DIR/tensorboard
    input_wait: float = 0.0  # streaming: seconds the training step waited for a batch
    # multi_worker streaming: the replica ids of this worker; it reads only their rows of
    # each batch (distribute.rows_of_replicas). None: every row is read.
    own_replicas: tuple[int, ...] | None = None
    train_sequences_read: int = 0  # streaming: by the training batches, this session

    @property
    def batch_size(self) -> int:
        """train.batch_size as a number ("auto" resolved for this training split)."""
        return batch_size_for(self.cfg.train.batch_size, len(self.splits.train))

    @property
    def monitor(self) -> str:
        """The figure early stopping and the schedule watch."""
        return _monitor(self.splits)

    def save_last(self) -> None:
        self.save("last", self.state.to_dict())

    def save(self, which: Literal["best", "last"], state: dict[str, Any]) -> None:
        """A checkpoint in the run directory; a multi-worker run's other workers write theirs
        to a scratch directory and remove it, as TensorFlow's multi-worker guide asks."""
        path = self.run.checkpoint(which)
        save_checkpoint(self.model, path, state)
        if not self.cluster.is_chief:
            path.unlink()


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


def _train_epochs(s: _Session, reporter: Reporter, should_stop: Callable[[], bool]) -> None:
    with s.cluster.peer_errors(s.home.path):
        while not s.state.finished:
            started = _run_epoch(s, reporter, should_stop)
            reporter.epoch_end(_end_epoch(s, started))


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


def _require_shared(home: RunDir, resume: bool) -> None:
    if resume and not home.is_run():
        raise RunError(
            f"this worker cannot read the run {home.path}: a multi-worker run resumes from the "
            "chief's run directory, which every worker must see on a shared filesystem"
        )


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


# --------------------------------------------------------------------------- start or resume


def _open(
    cfg: Config | None, run: RunDir, home: RunDir, resume: bool, overrides: Sequence[str], reporter: Reporter
) -> _Session:
    """`run`: where this process writes; `home`: the run directory (the same, but for a
    multi-worker run's other workers, who resume from `home` and write to scratch)."""
    chief = run is home
    if resume:
        if chief:
            run.remove_partial_writes()
        _require_shared(home, resume)
        cfg = _resumed_config(home, overrides, write=chief)
    assert cfg is not None
    device = configure_device(cfg.train.device, cfg.train.cpu_threads)
    cluster = distribute.setup(cfg.train, device)  # before TensorFlow's first op
    lstm_kernel = _lstm_kernel(device, cfg.data.padding, reporter)
    saved = saved_index(home) if resume else None
    splits = prepare(cfg, saved, reporter.indexing)
    # A run killed before its first checkpoint resumes from scratch, with its saved config.
    from_checkpoint = resume and home.checkpoint("last").is_file()
    if cluster.spec is not None:  # before any variable: creating one is a collective (a broadcast)
        _check_workers_agree(cluster, home, cfg, splits, read_state(home.checkpoint("last")) if from_checkpoint else {})
    with cluster.strategy.scope():  # variables (weights, optimizer) are mirrored under it
        if from_checkpoint:
            model, state = _from_checkpoint(home, cfg, splits)
        else:
            if chief:
                if not resume:
                    run.clear()  # --overwrite: the old run goes only once the new data has loaded
                    run.write_config(cfg)
                save_transform(run, splits.transform)
            if chief and splits.index is not None and saved is None:
                splits.index.save(run.file(SHARD_INDEX))
            model, state = _new_model(cfg, splits, device), TrainState()
        if cluster.distributed and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # not inside the step's tf.function
    if resume and state.batch == 0:  # a finished run given more epochs or patience trains on
        state.stop_reason = _stop_reason(state, cfg.train, _monitor(splits))
        state.finished = state.stop_reason is not None
    loss_fn = make_loss_fn(cfg)
    if cluster.distributed:
        train_step = distribute.make_train_step(cluster, model, model.optimizer, loss_fn)
        eval_step = distribute.make_eval_step(cluster, model, loss_fn)
    else:
        train_step, eval_step = _make_train_step(model, model.optimizer, loss_fn), make_eval_step(model, loss_fn)
    return _Session(
        cfg,
        run,
        home,
        cluster,
        splits,
        model,
        model.optimizer,
        state,
        device if not cluster.distributed else f"{device}, {cluster.describe()}",
        lstm_kernel,
        from_checkpoint,
        train_step=train_step,
        eval_step=eval_step,
        writer=tf.summary.create_file_writer(str(run.tensorboard_dir)),
        own_replicas=distribute.local_replica_ids(cluster) if cluster.spec is not None and splits.streaming else None,
    )


def _check_workers_agree(
    cluster: distribute.Cluster, home: RunDir, cfg: Config, splits: Splits, saved: dict[str, Any]
) -> None:
    """Every worker must start at the same position of the same run: one started fresh
    beside others that resume (or with other data or batches) would build other variables
    and train on other batches, and the collectives would wait on each other."""
    state = TrainState.from_dict(saved) if saved else TrainState()
    where = (bool(saved), state.epoch, state.batch)
    setup = (cfg.train.batch_size, cfg.train.seed, cfg.train.epochs, len(splits.train), int(splits.train.num_steps))
    with cluster.peer_errors(home.path):
        if distribute.agree(cluster, *where, *setup):
            return
    start = f"resuming at epoch {state.epoch}, batch {state.batch}" if saved else "starting afresh"
    raise RunError(
        f"the workers of this multi-worker run do not start from the same point (this one: {start}, "
        f"{len(splits.train)} training sequences, batch size {cfg.train.batch_size}); start every "
        f"worker with the same command and data: all with --config for a new run, or all with "
        f"'seqmask train {home.path} --resume'"
    )


def _monitor(splits: Splits) -> str:
    """The figure early stopping and the schedule watch: the validation loss if there is one."""
    return "val_loss" if len(splits.validation) else "loss"


def _resumed_config(run: RunDir, overrides: Sequence[str], write: bool = True) -> Config:
    """The run's saved config, with the overrides a resumed run may take (saved back)."""
    cfg = apply_resume_overrides(run.read_raw_config(), overrides, source=str(run.config_path))
    if overrides and write:
        run.write_config(cfg)
    return cfg


def _from_checkpoint(run: RunDir, cfg: Config, splits: Splits) -> tuple[keras.Model, TrainState]:
    if not same_transform(load_transform(run, cfg), splits.transform):
        raise RunError(
            f"cannot resume {run}: the training data changed since the run started "
            "(its normalization statistics or vocabulary differ)"
        )
    model, raw_state = load_checkpoint(run.checkpoint("last"), compile=True)
    expected = model.inputs[0].shape[-1]
    if expected != splits.train.num_features:
        raise RunError(f"{run}: the model takes {expected} features but the data has {splits.train.num_features}")
    return model, TrainState.from_dict(raw_state)


def _new_model(cfg: Config, splits: Splits, device: str) -> keras.Model:
    # The one use of global random state: the initial weights. Batches are drawn from
    # (seed, epoch) alone (batching.py) and the step itself is deterministic, so nothing
    # is re-seeded per epoch (re-seeding TensorFlow's global generator every epoch makes
    # every later step slower: BENCHMARKS.md, "Training throughput").
    keras.utils.set_random_seed(cfg.train.seed)
    vocab_size = len(splits.transform) if isinstance(splits.transform, Vocabulary) else None
    model = build_autoencoder(
        cfg.model,
        splits.train.num_features,
        cfg.data.padding,
        fused=device == "cpu",
        vocab_size=vocab_size,
        embedding_dim=cfg.input.embedding_dim,
        seed=cfg.train.seed,
        future_fraction=cfg.train.future_fraction if cfg.train.target == "composite" else 0.0,
    )
    model.compile(optimizer=_optimizer(cfg.train))  # so checkpoints carry the optimizer state
    return model


def _optimizer(train_cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam with gradient clipping on the global norm; AdamW where weight decay is asked for."""
    rate, clip = train_cfg.learning_rate, train_cfg.clip_norm
    if train_cfg.weight_decay:
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=train_cfg.weight_decay, global_clipnorm=clip)
    return keras.optimizers.Adam(learning_rate=rate, global_clipnorm=clip)


def _lstm_kernel(device: str, padding: str, reporter: Reporter) -> str:
    """Which LSTM the model runs, in words; builds seqmask's CPU kernel first if it will.

    The fused layers (the kernel) are used on CPU with post padding (model.py); pre
    padding needs Keras's masked LSTM inside the recurrence, and a GPU runs cuDNN's.
    """
    if device != "cpu":
        return "Keras (cuDNN)"
    if padding != "post":
        return "Keras (masked, for pre padding)"
    if native.needs_build():
        reporter.building_kernel()
    return native.status()


def _make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn: StepFn) -> StepFn:
    values_spec = model.inputs[0]

    @tf.function(input_signature=batch_signature(values_spec.shape[-1], values_spec.dtype))
    def train_step(values: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            predictions = model([values, lengths], training=True)  # (batch, time, features)
            sums, counts, hits = loss_fn(values, lengths, predictions)  # (batch,) x3
            total, count = tf.reduce_sum(sums), tf.reduce_sum(counts)
            # The batch's own exact mean; max() guards a batch with nothing scored.
            loss = total / tf.maximum(count, 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return tf.stack([total, count, tf.reduce_sum(hits)])  # one tensor: one copy out per step

    return train_step


def _start_info(s: _Session) -> TrainStart:
    state = s.state
    return TrainStart(
        run_dir=str(s.home),
        resumed_at=(state.epoch, state.batch) if s.resumed_from_checkpoint else None,
        already_finished=state.finished,
        stop_reason=state.stop_reason,
        device=s.device,
        lstm_kernel=s.lstm_kernel,
        train_sequences=len(s.splits.train),
        validation_sequences=len(s.splits.validation),
        num_features=s.splits.train.num_features,
        batch_size=s.batch_size,
        parameters=s.model.count_params(),
    )


# --------------------------------------------------------------------------- one epoch


def _run_epoch(s: _Session, reporter: Reporter, should_stop: Callable[[], bool]) -> float:
    """Runs the rest of the current epoch's batches; returns when the epoch started
    (`time.perf_counter()` time, counting the part run before a resume)."""
    cfg, state, train_seqs = s.cfg, s.state, s.splits.train
    epoch = state.epoch
    batches = epoch_batches(train_seqs, s.batch_size, cfg.train.batching, cfg.train.seed, epoch, cfg.data.window_shards)
    reporter.epoch_start(epoch, len(batches))
    started = time.perf_counter() - state.epoch_seconds

    def make(k: int) -> tuple[np.ndarray, np.ndarray]:
        batch = batches[k]
        rows = None
        if s.own_replicas is not None:  # multi_worker: read this worker's part of the batch only
            rows = distribute.rows_of_replicas(len(batch), s.cluster.num_replicas, s.own_replicas)
        return padded_batch(train_seqs, batch, cfg.train.batching, s.splits.max_len, cfg.data.padding, rows=rows)

    # Streaming: the shards of upcoming batches are read while this one trains.
    ahead = Prefetcher(make, state.batch, len(batches)) if s.splits.streaming else None
    try:
        return _run_batches(s, reporter, should_stop, batches, started, make, ahead)
    finally:
        if ahead is not None:
            ahead.close()
            s.input_wait += ahead.waited
        # Before the end's calibration, which reads its samples through the same split.
        s.train_sequences_read = getattr(train_seqs, "sequences_read", 0)


def _run_batches(
    s: _Session,
    reporter: Reporter,
    should_stop: Callable[[], bool],
    batches: Sequence[np.ndarray],
    started: float,
    make: Callable[[int], tuple[np.ndarray, np.ndarray]],
    ahead: Prefetcher[tuple[np.ndarray, np.ndarray]] | None,
) -> float:
    cfg, state, train_seqs, epoch = s.cfg, s.state, s.splits.train, s.state.epoch
    real_steps_done = np.cumsum([train_seqs.lengths[b].sum() for b in batches])  # after batch k
    global_step = int(s.optimizer.iterations.numpy())
    every = cfg.train.checkpoint_every_batches
    while state.batch < len(batches):
        k = state.batch
        values, lengths = ahead.get(k) if ahead is not None else make(k)
        if s.cluster.distributed:
            # A stop asked of any worker comes back summed over all of them, so every worker
            # checkpoints after this same batch.
            total, count, hits, stops = s.train_step(values, lengths, np.float32(should_stop())).numpy().tolist()
        else:
            total, count, hits = s.train_step(values, lengths).numpy().tolist()
        if not math.isfinite(total):
            raise Diverged(
                f"the training loss became {total} at epoch {epoch}, batch {k + 1}; "
                "likely causes: a learning rate too high (train.learning_rate), unnormalized "
                "features (data.normalize: standard), or no gradient clipping (train.clip_norm). "
                f"The last good checkpoint is kept in {s.home.checkpoint('last')}"
            )
        state.add_batch(total, count, hits, seconds=time.perf_counter() - started)
        reporter.batch_end(epoch, k + 1, state.epoch_loss, real_steps_done[k] / max(state.epoch_seconds, 1e-9))
        global_step += 1
        interrupted = stops > 0 if s.cluster.distributed else should_stop()
        if interrupted or (every and global_step % every == 0):
            s.save_last()
        if interrupted:
            raise Interrupted(s.home.path, epoch, k + 1)
    return started


# --------------------------------------------------------------------------- end of an epoch


def _end_epoch(s: _Session, started: float) -> EpochRow:
    """Validation, the history row, early stopping and the schedule, then the checkpoint."""
    cfg, state = s.cfg, s.state
    tokens = cfg.input.kind == "tokens"
    validation = s.splits.validation
    val_batch = inference_batch_size(cfg.train.batch_size)
    val = score(s.eval_step, validation, val_batch, cfg.data.padding) if len(validation) else None
    row = EpochRow(
        epoch=state.epoch,
        loss=state.epoch_loss,
        val_loss=val.loss if val else None,
        accuracy=state.epoch_accuracy if tokens else None,
        val_accuracy=val.accuracy if val and tokens else None,
        seconds=time.perf_counter() - started,
        learning_rate=float(s.optimizer.learning_rate.numpy()),
        train_real_steps=int(s.splits.train.num_steps),
    )
    state.history.append(row)
    _log_scalars(s.writer, row)
    _track_best(s, row)
    state.next_epoch()
    state.stop_reason = _stop_reason(state, cfg.train, s.monitor)
    state.finished = state.stop_reason is not None
    s.run.write_history(state.history)
    s.save_last()
    return row


def _log_scalars(writer: Any, row: EpochRow) -> None:
    with writer.as_default():
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
            value = getattr(row, key)
            if value is not None:
                tf.summary.scalar(key, value, step=row.epoch)
    writer.flush()


def _track_best(s: _Session, row: EpochRow) -> None:
    """A new best is checkpointed; otherwise the patience counters advance, and after
    `lr_patience` epochs without a new best the learning rate is cut by `lr_factor`."""
    train_cfg, state, monitor = s.cfg.train, s.state, s.monitor
    current = getattr(row, monitor)
    if state.best_loss is None or current < state.best_loss - train_cfg.min_delta:
        state.best_loss, state.best_epoch, state.bad_epochs, state.plateau = current, row.epoch, 0, 0
        s.save("best", {"epoch": row.epoch, monitor: current})
        return
    state.bad_epochs += 1
    state.plateau += 1
    if train_cfg.lr_patience and state.plateau >= train_cfg.lr_patience:
        # The rate lives in the optimizer, so checkpoints carry the schedule too.
        lr = float(s.optimizer.learning_rate.numpy())
        s.optimizer.learning_rate.assign(max(lr * train_cfg.lr_factor, train_cfg.min_learning_rate))
        state.plateau = 0


def _stop_reason(state: TrainState, train_cfg: TrainConfig, monitor: str) -> str | None:
    """Why training stops after the epochs done so far (state.epoch - 1), or None."""
    if train_cfg.patience and state.bad_epochs >= train_cfg.patience:
        return f"early stopping: no improvement in {monitor} for {train_cfg.patience} epochs"
    if state.epoch > train_cfg.epochs:
        return "reached train.epochs"
    return None


# --------------------------------------------------------------------------- the end


def _padding_fraction(
    seqs: Sequences | ShardedSequences, batch_size: int, batching: Batching, seed: int, max_len: int, window: int
) -> float:
    """Fraction of the steps of one epoch's training batches that are padding."""
    padded = 0
    for b in epoch_batches(seqs, batch_size, batching, seed, 1, window):
        padded += len(b) * batch_time_len(seqs.lengths[b], batching, max_len)
    return 1.0 - seqs.num_steps / padded


def _in_memory(seqs: Sequences | ShardedSequences) -> Sequences | None:
    return seqs.in_memory() if isinstance(seqs, ShardedSequences) else seqs


def _data_metrics(s: _Session) -> dict[str, Any]:
    """How the data was read: one file in memory, or shards (streamed or not)."""
    index = s.splits.index
    if index is None:
        return {"sharded": False}
    return {
        "sharded": True,
        "shards": len(index.shards),
        "streaming": s.splits.streaming,
        "input_wait_seconds": s.input_wait,  # this session's, not counting before a resume
        # Training sequences this process read from the shards in this session: under
        # multi_worker only its replicas' rows of each batch.
        "train_sequences_read": s.train_sequences_read,
    }


def _calibrate(s: _Session, keep: bool = False) -> Calibrated:
    """The detector of the best checkpoint, fitted on the validation split (detect.py). A
    run that cannot be calibrated (no validation data, a singular covariance) has still
    trained well: it is told why, and `seqmask calibrate` can fit one later. `keep`: a
    valid saved detector stays as it is."""
    if keep:
        try:
            saved = load_detector(s.run, "best")
        except RunError:
            saved = None
        if saved is not None:
            return Calibrated(saved.score, saved.how)
    if not len(s.splits.validation):
        return Calibrated(None, f"no validation data: fit one with 'seqmask calibrate {s.run} --data FILE'")
    model, _ = load_checkpoint(s.run.checkpoint("best"))
    run = LoadedRun(s.run, s.cfg, s.splits.transform, model, "best")
    validation, train = _in_memory(s.splits.validation), _in_memory(s.splits.train)
    where = "the validation split"
    if validation is None or train is None:  # streamed: samples, read from the shards
        assert isinstance(s.splits.train, ShardedSequences)
        train = reference_sample(s.splits.train, s.cfg.train.seed)
        validation, where = calibration_sample(s.splits.validation, s.cfg.train.seed)
    try:
        detector = calibrate_on(run, validation, train, where)
    except DetectError as e:
        return Calibrated(None, str(e))
    return Calibrated(detector.score, detector.how)


def _metrics(s: _Session) -> dict[str, Any]:
    cfg, state, splits = s.cfg, s.state, s.splits
    best, final = state.best_row(), state.history[-1]
    seconds = sum(row.seconds for row in state.history)
    tokens = cfg.input.kind == "tokens"
    return {
        "monitor": s.monitor,
        "best_epoch": state.best_epoch,
        "best_loss": best.loss,
        "best_val_loss": best.val_loss,
        "best_val_accuracy": best.val_accuracy,
        # Tokens: perplexity = exp(mean cross-entropy per scored token).
        "best_val_perplexity": math.exp(best.val_loss) if tokens and best.val_loss is not None else None,
        "final_epoch": final.epoch,
        "final_loss": final.loss,
        "final_val_loss": final.val_loss,
        "epochs_run": len(state.history),
        "stop_reason": state.stop_reason,
        "train_sequences": len(splits.train),
        "validation_sequences": len(splits.validation),
        "train_real_steps": int(splits.train.num_steps),
        "validation_real_steps": int(splits.validation.num_steps) if len(splits.validation) else 0,
        "max_len": splits.max_len,
        "batch_size": s.batch_size,
        "padding_fraction": _padding_fraction(
            splits.train, s.batch_size, cfg.train.batching, cfg.train.seed, splits.max_len, cfg.data.window_shards
        ),
        "data": _data_metrics(s),
        "train_seconds": seconds,
        "real_steps_per_second": sum(row.train_real_steps for row in state.history) / max(seconds, 1e-9),
        "device": s.device,
        "distribute": s.cluster.as_dict(),
        "lstm_kernel": s.lstm_kernel,
        "versions": {"seqmask": __version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }
