"""A loaded run: a trained model with the config and transform it was trained with.

`load_run` reads a run directory (config, saved transform, a checkpoint) into a
`LoadedRun`; `run_data` reads data as that run reads data. Evaluate, encode, detect,
report and export all start from a `LoadedRun`. (Three types, three names: `RunDir` is the
directory on disk, `LoadedRun` what is read from it, `seqmask.api.Run` the API's handle.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from seqmask.config import Config
from seqmask.data import Normalizer, Sequences
from seqmask.data.inputs import Data, sequences_from
from seqmask.data.vocab import Vocabulary
from seqmask.errors import DataError, RunError
from seqmask.model.devices import configure_device
from seqmask.run.checkpoints import load_checkpoint
from seqmask.run.directory import Checkpoint, RunDir
from seqmask.run.splits import apply_transform, load_transform, validation_split


@dataclass(frozen=True)
class LoadedRun:
    run_dir: RunDir
    cfg: Config
    transform: Normalizer | Vocabulary  # as saved by train
    model: keras.Model
    checkpoint: Checkpoint


def load_run(run_dir: str | Path | RunDir, checkpoint: Checkpoint = "best") -> LoadedRun:
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    cfg = run.require().read_config()
    transform = load_transform(run, cfg)
    path = run.require_checkpoint(checkpoint)
    # A run trained on a GPU is still usable on a machine without one.
    configure_device(cfg.train.device if cfg.train.device != "gpu" else "auto", cfg.train.cpu_threads)
    model, _ = load_checkpoint(path)
    return LoadedRun(run, cfg, transform, model, checkpoint)


def run_data(run: LoadedRun, data: Data = None, *, lengths: Any = None, ids: Any = None) -> Sequences:
    """`data` read as the run reads data (a file, or an in-memory form: inputs.py), or the
    run's own validation split if None; transformed as the run's training data was."""
    if data is None:
        seqs = validation_split(run.cfg, run.run_dir)
        if not len(seqs):
            raise RunError(f"{run.run_dir} was trained without validation data; pass --data FILE")
    else:
        seqs = sequences_from(data, run.cfg, lengths=lengths, ids=ids)
    expected = run.model.inputs[0].shape[-1]
    if not seqs.is_tokens and seqs.num_features != expected:
        raise DataError(f"{seqs.source}: has {seqs.num_features} features but the run's model takes {expected}")
    return apply_transform(run.transform, seqs)
