"""Using a finished run: the masked loss of a checkpoint on any data, and latent vectors.

A run directory is all that is needed: its config says how to read and score data, its
saved transform (normalization statistics, or vocabulary) is applied to the new data, and
the checkpoint holds the model.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from seqmask import runs
from seqmask.batching import inference_batches, padded_batch
from seqmask.checkpoints import load_checkpoint
from seqmask.config import config_from_dict
from seqmask.data import Sequences
from seqmask.dataset import apply_transform, check_targets, load, load_transform, raw_splits
from seqmask.devices import configure_device
from seqmask.errors import DataError, RunError
from seqmask.model import encoder_from
from seqmask.scoring import Scores, batch_signature, make_eval_step, make_loss_fn, score


@dataclass(frozen=True)
class Run:
    run_dir: Path
    cfg: object
    transform: object  # Normalizer (values) or Vocabulary (tokens), as saved by train
    model: object
    checkpoint: str


@dataclass(frozen=True)
class Evaluation:
    data: Sequences  # the scored sequences (transformed)
    scores: Scores
    seconds: float

    @property
    def loss(self):
        return self.scores.loss


def load_run(run_dir, checkpoint="best"):
    run_dir = runs.require_run(run_dir)
    cfg = config_from_dict(runs.read_yaml(run_dir / runs.CONFIG), source=str(run_dir / runs.CONFIG))
    transform = load_transform(run_dir, cfg)
    path = runs.checkpoint_path(run_dir, checkpoint)
    if not path.is_file():
        raise RunError(f"{run_dir} has no {checkpoint} checkpoint yet ({path}); try --checkpoint last")
    configure_device(cfg.train.device if cfg.train.device != "gpu" else "auto", cfg.train.cpu_threads)
    model, _ = load_checkpoint(path)
    return Run(run_dir, cfg, transform, model, checkpoint)


def run_data(run, data=None):
    """`data` read as the run reads data, or the run's own validation split if None."""
    if data is None:
        _, seqs = raw_splits(run.cfg)
        if not len(seqs):
            raise RunError(f"{run.run_dir} was trained without validation data; pass --data FILE")
    else:
        seqs = load(data, run.cfg)
    expected = run.model.inputs[0].shape[-1]
    if not seqs.is_tokens and seqs.num_features != expected:
        raise DataError(f"{seqs.source}: has {seqs.num_features} features but the run's model takes {expected}")
    return apply_transform(run.transform, seqs)


def evaluate(run, data=None):
    seqs = run_data(run, data)
    check_targets(seqs, run.cfg.train)
    eval_step = make_eval_step(run.model, make_loss_fn(run.cfg))
    started = time.perf_counter()
    scores = score(eval_step, seqs, run.cfg.train.batch_size, run.cfg.data.padding)
    return Evaluation(seqs, scores, time.perf_counter() - started)


def encode(run, data, batch_size=None):
    """(sequences, latent (num_sequences, latent_dim) float32, seconds), in file order."""
    seqs = run_data(run, data)
    encoder = encoder_from(run.model)
    spec = encoder.inputs[0]

    @tf.function(input_signature=batch_signature(spec.shape[-1], spec.dtype))
    def encode_step(values, lengths):
        return encoder([values, lengths], training=False)  # (batch, latent_dim)

    latent = np.zeros((len(seqs), encoder.outputs[0].shape[-1]), np.float32)
    started = time.perf_counter()
    for indices in inference_batches(seqs.lengths, batch_size or run.cfg.train.batch_size):
        values, lengths = padded_batch(seqs, indices, "bucket", None, run.cfg.data.padding)
        latent[indices] = encode_step(values, lengths).numpy()
    return seqs, latent, time.perf_counter() - started
