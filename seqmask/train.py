"""Training: config -> run directory.

The loop is written out rather than left to `model.fit`, for three reasons:
  * the epoch loss must be Σ error over every real step ÷ Σ real steps (Keras's running
    figure weights batch means by batch size, a different number);
  * an interrupted run must resume at the exact batch, with the same shuffling;
  * a NaN must stop training at the batch that produced it, keeping the last good checkpoint.

Reporting goes through a `reporter` object (see `Reporter`); this module never prints.
"""

import math
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import seqmask
from seqmask import native, runs
from seqmask.batching import batch_time_len, padded_batch, training_batches
from seqmask.checkpoints import load_checkpoint, save_checkpoint
from seqmask.config import config_from_dict, config_to_dict
from seqmask.dataset import load_transform, prepare, same_transform, save_transform
from seqmask.devices import configure_device
from seqmask.errors import Interrupted, RunError
from seqmask.model import build_autoencoder
from seqmask.scoring import batch_signature, make_eval_step, make_loss_fn, score


class Reporter:
    """Receives progress; the CLI's implementation draws it. Every method is optional."""

    def start(self, info): ...
    def building_kernel(self): ...
    def epoch_start(self, epoch, num_batches): ...
    def batch_end(self, epoch, batch, loss, real_steps_per_s): ...
    def epoch_end(self, row): ...


class Diverged(RunError):
    """The loss became NaN or Inf."""


def _fresh_state():
    return {
        "epoch": 1,  # the epoch to run next (1-based)
        "batch": 0,  # the next batch within it
        "epoch_sum": 0.0,  # Σ w·e of the batches of this epoch already run
        "epoch_count": 0.0,  # Σ w of those batches
        "epoch_hits": 0.0,  # Σ w·hit (tokens: correctly predicted steps)
        "epoch_seconds": 0.0,
        "best_loss": None,  # best monitored loss so far, and its epoch
        "best_epoch": None,
        "bad_epochs": 0,  # epochs since the best one (early-stopping patience)
        "plateau": 0,  # epochs since the best one or the last learning-rate cut
        "history": [],
        "finished": False,
        "stop_reason": None,
    }


def _make_train_step(model, optimizer, loss_fn):
    values_spec = model.inputs[0]

    @tf.function(input_signature=batch_signature(values_spec.shape[-1], values_spec.dtype))
    def train_step(values, lengths):
        with tf.GradientTape() as tape:
            predictions = model([values, lengths], training=True)  # (batch, time, features)
            sums, counts, hits = loss_fn(values, lengths, predictions)  # (batch,) x3
            total, count = tf.reduce_sum(sums), tf.reduce_sum(counts)
            # The batch's own exact mean; max() guards a batch with nothing scored.
            loss = total / tf.maximum(count, 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.stack([total, count, tf.reduce_sum(hits)])  # one tensor: one copy out per step

    return train_step


def _lstm_kernel(device, padding, reporter):
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


def _prepare_run_dir(run_dir, overwrite):
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunError(
                f"{run_dir} already exists; use --resume {run_dir} to continue it, "
                "--overwrite to replace it, or choose another --run-dir"
            )
        if not (run_dir / runs.CONFIG).exists() and not (run_dir / runs.CHECKPOINTS).exists():
            raise RunError(f"{run_dir} is not empty and is not a seqmask run: refusing to overwrite it")
        shutil.rmtree(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create run directory {run_dir}: {e.strerror or e}") from e
    return run_dir


def _check_compatible(model, num_features, run_dir):
    expected = model.inputs[0].shape[-1]
    if expected != num_features:
        raise RunError(
            f"{run_dir}: the model takes {expected} features but the data has {num_features}"
        )


def train(cfg, run_dir, *, resume=False, overwrite=False, reporter=None, should_stop=None):
    """Trains `cfg` into `run_dir` (or continues the run there). Returns the metrics dict."""
    reporter = reporter or Reporter()
    should_stop = should_stop or (lambda: False)
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / runs.CONFIG).is_file():
            raise RunError(f"cannot resume {run_dir}: it is not a seqmask run directory (no {runs.CONFIG})")
        cfg = config_from_dict(runs.read_yaml(run_dir / runs.CONFIG), source=str(run_dir / runs.CONFIG))
        runs.remove_partial_writes(run_dir)
    device = configure_device(cfg.train.device, cfg.train.cpu_threads)
    padding = cfg.data.padding
    lstm_kernel = _lstm_kernel(device, padding, reporter)
    splits = prepare(cfg)
    train_seqs, val_seqs = splits.train, splits.validation
    num_features = train_seqs.num_features
    vocab_size = len(splits.transform) if cfg.input.kind == "tokens" else None

    # A run killed before its first checkpoint resumes from scratch, with its saved config.
    from_checkpoint = resume and runs.checkpoint_path(run_dir, "last").is_file()
    if from_checkpoint:
        if not same_transform(load_transform(run_dir, cfg), splits.transform):
            raise RunError(
                f"cannot resume {run_dir}: the training data changed since the run started "
                "(its normalization statistics or vocabulary differ)"
            )
        model, state = load_checkpoint(runs.checkpoint_path(run_dir, "last"), compile=True)
        _check_compatible(model, num_features, run_dir)
        optimizer = model.optimizer
    else:
        if not resume:
            run_dir = _prepare_run_dir(run_dir, overwrite)
            runs.write_yaml(run_dir / runs.CONFIG, config_to_dict(cfg))
        save_transform(run_dir, splits.transform)
        # The one use of global random state: the initial weights. Batches are drawn from
        # (seed, epoch) alone (batching.py) and the step itself is deterministic, so nothing
        # is re-seeded per epoch (re-seeding TensorFlow's global generator every epoch was
        # measured to make every later step ~25 % slower).
        keras.utils.set_random_seed(cfg.train.seed)
        model = build_autoencoder(
            cfg.model, num_features, padding, fused=device == "cpu",
            vocab_size=vocab_size, embedding_dim=cfg.input.embedding_dim,
        )
        optimizer = keras.optimizers.Adam(
            learning_rate=cfg.train.learning_rate, global_clipnorm=cfg.train.clip_norm
        )
        model.compile(optimizer=optimizer)  # so checkpoints carry the optimizer state
        state = _fresh_state()

    loss_fn = make_loss_fn(cfg)
    train_step = _make_train_step(model, optimizer, loss_fn)
    eval_step = make_eval_step(model, loss_fn)
    last_path = runs.checkpoint_path(run_dir, "last")
    best_path = runs.checkpoint_path(run_dir, "best")
    monitor = "val_loss" if len(val_seqs) else "loss"
    writer = tf.summary.create_file_writer(str(run_dir / runs.TENSORBOARD))
    batch_size, max_len = cfg.train.batch_size, splits.max_len
    every = cfg.train.checkpoint_every_steps

    reporter.start(
        {
            "run_dir": str(run_dir),
            "resumed_at": (state["epoch"], state["batch"]) if from_checkpoint else None,
            "already_finished": state["finished"],
            "device": device,
            "lstm_kernel": lstm_kernel,
            "train_sequences": len(train_seqs),
            "validation_sequences": len(val_seqs),
            "num_features": num_features,
            "parameters": model.count_params(),
        }
    )
    while not state["finished"] and state["epoch"] <= cfg.train.epochs:
        epoch = state["epoch"]
        batches = training_batches(
            train_seqs.lengths, batch_size, cfg.train.batching, cfg.train.seed, epoch
        )
        reporter.epoch_start(epoch, len(batches))
        real_steps_done = np.cumsum([train_seqs.lengths[b].sum() for b in batches])  # after batch k
        global_step = int(optimizer.iterations.numpy())
        started = time.perf_counter() - state["epoch_seconds"]
        while state["batch"] < len(batches):
            k = state["batch"]
            values, lengths = padded_batch(train_seqs, batches[k], cfg.train.batching, max_len, padding)
            total, count, hits = train_step(values, lengths).numpy().tolist()
            if not math.isfinite(total):
                raise Diverged(
                    f"the training loss became {total} at epoch {epoch}, batch {k + 1}; "
                    "likely causes: a learning rate too high (train.learning_rate), unnormalized "
                    "features (data.normalize: standard), or no gradient clipping (train.clip_norm). "
                    f"The last good checkpoint is kept in {last_path}"
                )
            state["epoch_sum"] += total
            state["epoch_count"] += count
            state["epoch_hits"] += hits
            state["batch"] = k + 1
            seconds = time.perf_counter() - started
            state["epoch_seconds"] = seconds
            reporter.batch_end(
                epoch,
                k + 1,
                state["epoch_sum"] / max(state["epoch_count"], 1.0),
                real_steps_done[k] / max(seconds, 1e-9),
            )
            global_step += 1
            interrupted = should_stop()
            if interrupted or (every and global_step % every == 0):
                save_checkpoint(model, last_path, state)
            if interrupted:
                raise Interrupted(run_dir, epoch, k + 1)

        tokens = cfg.input.kind == "tokens"
        val = score(eval_step, val_seqs, batch_size, padding) if len(val_seqs) else None
        row = {
            "epoch": epoch,
            "loss": state["epoch_sum"] / max(state["epoch_count"], 1.0),
            "val_loss": val.loss if val else None,
            "accuracy": state["epoch_hits"] / max(state["epoch_count"], 1.0) if tokens else None,
            "val_accuracy": val.accuracy if val and tokens else None,
            "seconds": time.perf_counter() - started,
            "learning_rate": float(optimizer.learning_rate.numpy()),
            "real_steps": int(train_seqs.num_steps),
        }
        state["history"].append(row)
        with writer.as_default():
            for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
                if row[key] is not None:
                    tf.summary.scalar(key, row[key], step=epoch)
        writer.flush()

        current = row[monitor]
        if state["best_loss"] is None or current < state["best_loss"] - cfg.train.min_delta:
            state.update(best_loss=current, best_epoch=epoch, bad_epochs=0, plateau=0)
            save_checkpoint(model, best_path, {"epoch": epoch, monitor: current})
        else:
            state["bad_epochs"] += 1
            state["plateau"] += 1
            if cfg.train.lr_patience and state["plateau"] >= cfg.train.lr_patience:
                # The rate lives in the optimizer, so checkpoints carry the schedule too.
                lr = float(optimizer.learning_rate.numpy())
                optimizer.learning_rate.assign(max(lr * cfg.train.lr_factor, cfg.train.min_learning_rate))
                state["plateau"] = 0
        if cfg.train.patience and state["bad_epochs"] >= cfg.train.patience:
            state["finished"], state["stop_reason"] = True, f"early stopping: no improvement in {monitor} for {cfg.train.patience} epochs"
        elif epoch >= cfg.train.epochs:
            state["finished"], state["stop_reason"] = True, "reached train.epochs"
        state.update(epoch=epoch + 1, batch=0, epoch_sum=0.0, epoch_count=0.0, epoch_hits=0.0, epoch_seconds=0.0)
        runs.write_history(run_dir / runs.HISTORY, state["history"])
        save_checkpoint(model, last_path, state)
        reporter.epoch_end(row)

    metrics = _metrics(cfg, state, splits, device, lstm_kernel, monitor)
    runs.write_json(run_dir / runs.METRICS, metrics)
    return metrics


def _padding_fraction(seqs, batch_size, batching, seed, max_len):
    """Fraction of the steps of one epoch's training batches that are padding."""
    padded = 0
    for b in training_batches(seqs.lengths, batch_size, batching, seed, 1):
        padded += len(b) * batch_time_len(seqs.lengths[b], batching, max_len)
    return 1.0 - seqs.num_steps / padded


def _metrics(cfg, state, splits, device, lstm_kernel, monitor):
    history = state["history"]
    best = next(row for row in history if row["epoch"] == state["best_epoch"])
    final = history[-1]
    seconds = sum(row["seconds"] for row in history)
    return {
        "monitor": monitor,
        "best_epoch": state["best_epoch"],
        "best_loss": best["loss"],
        "best_val_loss": best["val_loss"],
        "best_val_accuracy": best.get("val_accuracy"),
        # Tokens: perplexity = exp(mean cross-entropy per scored token).
        "best_val_perplexity": (
            math.exp(best["val_loss"]) if cfg.input.kind == "tokens" and best["val_loss"] is not None else None
        ),
        "final_epoch": final["epoch"],
        "final_loss": final["loss"],
        "final_val_loss": final["val_loss"],
        "epochs_run": len(history),
        "stop_reason": state["stop_reason"],
        "train_sequences": len(splits.train),
        "validation_sequences": len(splits.validation),
        "train_real_steps": int(splits.train.num_steps),
        "validation_real_steps": int(splits.validation.num_steps) if len(splits.validation) else 0,
        "max_len": splits.max_len,
        "padding_fraction": _padding_fraction(
            splits.train, cfg.train.batch_size, cfg.train.batching, cfg.train.seed, splits.max_len
        ),
        "train_seconds": seconds,
        "real_steps_per_second": sum(row["real_steps"] for row in history) / max(seconds, 1e-9),
        "device": device,
        "lstm_kernel": lstm_kernel,
        "versions": {"seqmask": seqmask.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }
