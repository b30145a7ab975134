"""Opening a run: a new one, or one resumed from its directory (its saved config and
overrides, its checkpoint), the workers' agreement on where a multi-worker run starts, and
the `TrainStart` the reporter shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from seqmask.config import Config, apply_resume_overrides
from seqmask.errors import RunError
from seqmask.model.devices import configure_device
from seqmask.run.checkpoints import read_state
from seqmask.run.directory import SHARD_INDEX, RunDir
from seqmask.run.splits import Splits, prepare, save_transform, saved_index
from seqmask.run.state import TrainState
from seqmask.training import distribute
from seqmask.training._epoch import _stop_reason
from seqmask.training._model import _from_checkpoint, _lstm_kernel, _make_steps, _new_model
from seqmask.training._session import _monitor, _Session
from seqmask.training.progress import Reporter, TrainStart


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
    train_step, eval_step = _make_steps(cfg, cluster, model)
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


def _require_shared(home: RunDir, resume: bool) -> None:
    if resume and not home.is_run():
        raise RunError(
            f"this worker cannot read the run {home.path}: a multi-worker run resumes from the "
            "chief's run directory, which every worker must see on a shared filesystem"
        )


def _resumed_config(run: RunDir, overrides: Sequence[str], write: bool = True) -> Config:
    """The run's saved config, with the overrides a resumed run may take (saved back)."""
    cfg = apply_resume_overrides(run.read_raw_config(), overrides, source=str(run.config_path))
    if overrides and write:
        run.write_config(cfg)
    return cfg


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
