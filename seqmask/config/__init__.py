"""Run configuration: a tree of frozen dataclasses read from a YAML file.

A config file has five sections, ``data``, ``input``, ``model``, ``train`` and ``detect``.
Only ``data.train`` is required; every other key has a default (the comment next to
each field says why it is what it is), so the file a user writes stays short::

    data:
      train: ../data/sensors.csv     # relative to this file, not to the cwd
    model:
      units: 128
    train:
      learning_rate: 1e-3

Loading is strict. An unknown key, a wrong type, a value out of range or an
incompatible combination raises :class:`~seqmask.errors.ConfigError` with a
one-line message naming the key path, the offending value and what was
expected. Whatever YAML comes in, the result is a :class:`Config` or a
``ConfigError``, never another exception. YAML is read with ``yaml.safe_load``
only: nothing in a config is ever executed.

How it is organised: each section is an explicit frozen dataclass holding the
defaults, and a small spec table beside it gives each key's kind and range. A key
with a fixed set of values is typed with one of the ``Literal`` aliases below, the
one place its choices are written: the parser takes them from the field's type,
and the modules that take the same value as an argument check it with
:func:`check_choice`. One generic parser walks the tables, so adding a key takes
one dataclass field plus, unless it is a choice, one table row. Type conversions
are few and deliberate: an int is accepted for a float key, and so is a string
that parses as a float, because YAML 1.1 reads ``1e-3`` as the *string* "1e-3".

This module must import in milliseconds: never import TensorFlow or Keras here.
"""

from __future__ import annotations

import difflib
import math
import os
import reprlib
import warnings
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from seqmask.errors import ConfigError, SeqmaskDeprecationWarning

__all__ = [
    "Aggregate",
    "AnomalyScore",
    "Batching",
    "Distribute",
    "Config",
    "DataConfig",
    "DataFormat",
    "Decoder",
    "DetectConfig",
    "Device",
    "InputConfig",
    "InputKind",
    "Loss",
    "ModelConfig",
    "Normalize",
    "Padding",
    "StepError",
    "Target",
    "TrainConfig",
    "Truncating",
    "RENAMED_KEYS",
    "RESUME_OVERRIDABLE",
    "KEYS_ADDED",
    "with_keys_added",
    "apply_overrides",
    "apply_resume_overrides",
    "check_choice",
    "choices_of",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]


# --------------------------------------------------------------------------- choices

# Each key with a fixed set of values, declared once. The parser reads a field's choices
# from its type; other modules import the alias to type and check the same argument.
DataFormat = Literal["auto", "npz", "csv", "jsonl", "parquet", "npy_dir", "csv_dir", "tokens_text"]
Padding = Literal["post", "pre"]
Truncating = Literal["post", "pre", "none"]
Normalize = Literal["standard", "none"]
InputKind = Literal["values", "tokens"]
Decoder = Literal["repeat", "remask", "crop"]
Loss = Literal["per_step", "last_step"]
StepError = Literal["mse", "mae"]
Target = Literal["reconstruct", "next_step", "reverse", "composite"]
Pooling = Literal["none", "mean", "max", "mean_max"]
Device = Literal["auto", "cpu", "gpu"]
Batching = Literal["bucket", "pad_to_max"]
Distribute = Literal["auto", "none", "mirrored", "multi_worker"]
Streaming = Literal["auto", "on", "off"]
AnomalyScore = Literal["combined", "density", "latent", "mahalanobis", "error"]
Aggregate = Literal["top", "mean", "max"]

_T = TypeVar("_T")


def choices_of(literal: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` alias, in the order it lists them: ``choices_of(Padding)``."""
    return get_args(literal)


def check_choice(name: str, value: _T, literal: Any) -> _T:
    """Returns `value` if it is one of the values of `literal`, else raises ``ValueError``.

    For arguments that code passes (a bad one is a programming error); a user's config
    values are checked when it is read, with a ``ConfigError`` naming the key path.
    """
    allowed = choices_of(literal)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class DataConfig:
    """Where the sequences come from and how they are brought to one length."""

    # Required: there is no sensible default data file. Stored as an absolute path.
    train: str
    # None: hold out `validation_split` of the training file, so one file is enough.
    validation: str | None = None
    # 0.2 is the usual hold-out. 0 with no `validation` file means no validation at
    # all; early stopping then watches the training loss. Unused when `validation` is set.
    validation_split: float = 0.2
    # "auto" picks the reader from the file extension (.npz, .csv[.gz], .jsonl[.gz],
    # .parquet, .txt = tokens_text), or for a directory or a glob pattern
    # ("recordings/*.csv") from the extensions of the files in it (csv_dir, npy_dir:
    # one file per sequence), so most configs never set it.
    format: DataFormat = "auto"
    # Long-format CSV/Parquet: "id" is the usual name of the sequence-id column.
    id_column: str = "id"
    # None: rows keep their file order inside a sequence, as most exports are written.
    step_column: str | None = None
    # None: every column but the id and step columns is a feature, the common case.
    feature_columns: tuple[str, ...] | None = None
    # JSONL objects (and Parquet files with one row per sequence): "id" names the
    # sequence, as in most exports.
    id_key: str = "id"
    # JSONL/Parquet: the key (column) holding a sequence's steps, a list of lists of
    # numbers (or a flat list: one feature). "values" matches the NPZ array name.
    values_key: str = "values"
    # JSONL/Parquet: the key (column) holding a token sequence, a list of strings or
    # integer ids. A record has either this key or `values_key`, never both.
    tokens_key: str = "tokens"
    # None: the longest sequence sets the length, so nothing is cut unless asked for.
    max_len: int | None = None
    # "post" keeps the real steps first, which the cuDNN kernel and the repeat and
    # crop decoders need.
    padding: Padding = "post"
    # "post" keeps a sequence's beginning. "none" makes a sequence longer than
    # max_len a data error instead of cutting it silently.
    truncating: Truncating = "post"
    # "standard" (zero mean, unit variance per feature over the real steps) keeps
    # the LSTM gates out of saturation whatever the units of the raw data. Token
    # input (input.kind: tokens) is never normalized, whatever this says.
    normalize: Normalize = "standard"
    # A directory or glob of shard files (.npz, .parquet, .jsonl): "on" reads the
    # sequences of upcoming batches from the shards while training, so memory does not
    # grow with the data; "off" reads every shard into memory first; "auto" streams when
    # the data, as float32, would take more than a tenth of this machine's memory
    # (reading it all in peaks at about five times that).
    # The same batches and numbers either way. Ignored for one file.
    streaming: Streaming = "auto"
    # Shards: batches are drawn (and bucketed by length) within windows of this many
    # shards, taken in a new random order each epoch; the shards of a window are what
    # streaming holds in memory. More shards per window: less padding, more memory.
    window_shards: int = 8


@dataclass(frozen=True)
class InputConfig:
    """What one step of a sequence is: a vector of numbers, or one token."""

    # "values": each step is a vector of numeric features, the common case (sensors,
    # trajectories). "tokens": each step is one token (a word, or an integer id kept
    # as text) that a vocabulary maps to an id and the model embeds; data.normalize
    # is then simply not applied, as there is nothing to standardize.
    kind: InputKind = "values"
    # Tokens only. 1: every token seen in the training split gets an id. Raise it to
    # send rare tokens (typos, one-off names) to <unk> instead.
    min_count: int = 1
    # Tokens only. None: no cap on the vocabulary. It counts the two reserved ids
    # (<pad> = 0, <unk> = 1), so 3 is the smallest vocabulary with a real token.
    max_size: int | None = None
    # Tokens only. None: build the vocabulary from the training split (most frequent
    # first). A path (relative to this file, like data paths): use that vocabulary
    # file, one token per line, "<pad>" and "<unk>" first, e.g. one saved by a run.
    vocabulary: str | None = None
    # Tokens only. 32 numbers per token: ample for vocabularies of a few thousand
    # tokens, and small next to the LSTM's own weights.
    embedding_dim: int = 32


@dataclass(frozen=True)
class ModelConfig:
    """The shape of the LSTM autoencoder."""

    # 64 is big enough for most multivariate sensor-like data and quick on a CPU.
    units: int = 64
    # One layer is usually enough for an autoencoder. Past 8, LSTMs rarely train well.
    num_layers: int = 1
    # 128: on the quality benchmark a linear probe reads a 128-number vector clearly
    # better than 32, at the same reconstruction; 256 adds little and costs time
    # (BENCHMARKS.md, "Quality"). Still a bottleneck: what feeds it (last states, pooled
    # outputs, input statistics) is several times wider.
    latent_dim: int = 128
    # "repeat" (the latent vector fed to the decoder at every step) is the classic,
    # simplest LSTM autoencoder decoder.
    decoder: Decoder = "repeat"
    # None: the decoder is as wide as the encoder, the usual symmetric autoencoder.
    decoder_units: int | None = None
    # A second encoder LSTM reads each sequence backwards from its own last real step, so
    # the latent vector also holds a summary that ends at step 0, the one a forward LSTM
    # remembers least. On the quality benchmark it lifts reconstruction most of all
    # (BENCHMARKS.md, "Quality": ablation).
    bidirectional: bool = True
    # What else the latent vector is built from besides the encoder's final state(s): the
    # mean and/or max of the encoder's last layer over each sequence's real steps. The
    # pooled outputs carry whole-sequence statistics that a last state forgets; with
    # bidirectional they give the best probe accuracy of the options measured.
    pooling: Pooling = "mean_max"
    # The latent vector also reads each input feature's mean, std, min and max over the
    # sequence's real steps (after normalization): moments an LSTM state carries only
    # approximately, and that a probe and the decoder's scale both need. On the quality
    # benchmark it adds probe accuracy on the long sets at no cost in R² (BENCHMARKS.md).
    input_stats: bool = True
    # The decoder also reads, at each step, sines and cosines of the step's index (counted
    # from the sequence's first real step) at decoder_positions / 2 frequencies, from
    # period 2 steps to period 10 000 (geometric). A decoder fed only the latent vector
    # has to count steps in its own state to place anything in time; with these it does
    # not. On the quality benchmark they lift reconstruction most on the long sets, and
    # the period-2 pair lets the decoder follow a signal that alternates every step
    # (BENCHMARKS.md, "Quality"). 0 turns them off; must be even.
    decoder_positions: int = 16
    # Dropout between stacked LSTM layers and on what feeds the latent Dense; training only.
    # Off: within a 60-epoch budget the benchmark's models underfit rather than overfit, and
    # dropout, input noise and weight decay together gave mixed results (BENCHMARKS.md).
    dropout: float = 0.0
    # Dropout on the encoder's input steps; training only.
    input_dropout: float = 0.0
    # Standard deviation of Gaussian noise added to the encoder's input in training (a
    # denoising autoencoder: the target stays the clean input). In the standardized units
    # of data.normalize, so 0.1 is a tenth of each feature's spread.
    input_noise: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fitted."""

    # A ceiling, not a target: early stopping ends most runs long before 200.
    epochs: int = 200
    # "auto": scales with the training split, so that an epoch is at least about 8 updates:
    # the largest power of two <= n / 8, between 4 and 32 (batching.batch_size_for). On a
    # few dozen sequences a fixed 32 is one update per epoch, and a 60-epoch budget leaves
    # the model untrained (BENCHMARKS.md, "Quality"). From 256 training sequences on it is
    # 32, which on the bundled data beats 64 on each of three seeds (BENCHMARKS.md,
    # "Defaults"). An integer fixes it.
    batch_size: int | Literal["auto"] = "auto"
    # A little above Adam's 0.001: with gradient clipping, LSTMs take it and converge sooner.
    learning_rate: float = 0.002
    # Epochs without validation improvement before stopping. 20 rides out the noisy
    # plateaus LSTMs often have: on the bundled data, 15 with a faster schedule stopped
    # early at a clearly worse loss with the older encoders, and is only even with 20 with
    # the current one (see BENCHMARKS.md, section "Defaults"); 0 never stops early.
    patience: int = 20
    # 0.0: any improvement counts, so the default does not depend on the loss scale.
    min_delta: float = 0.0
    # Halve the learning rate (lr_factor) after 10 epochs without improvement: a plateau
    # schedule finds the lower rates late training needs without tuning; with patience 20
    # a run gets two cuts before it stops. 0: constant rate.
    lr_patience: int = 10
    lr_factor: float = 0.5
    # The schedule never goes below this: smaller steps than 1e-5 rarely change anything.
    min_learning_rate: float = 1e-5
    # Clipping the global gradient norm at 1.0 guards LSTMs against exploding
    # gradients. None turns clipping off.
    clip_norm: float | None = 1.0
    # A fixed seed: two runs of one config give the same model unless asked otherwise.
    seed: int = 0
    # "per_step" scores every real (unpadded) step: the exact masked loss.
    loss: Loss = "per_step"
    # "mse" is the standard reconstruction error on standardized features.
    error: StepError = "mse"
    # "reconstruct" is the autoencoder's job. "next_step" predicts each step's successor.
    # "reverse" reconstructs each sequence's real steps in reverse order (the decoder's first
    # output is the last step): Srivastava et al. (2015) found it easier for LSTM
    # autoencoders, since the steps the encoder saw last are decoded first.
    # "composite" (Srivastava et al.'s composite model, in one decoder): in training the
    # encoder sees only the first (1 - future_fraction) of each sequence's real steps and
    # the decoder reconstructs them and predicts the rest, so the latent vector has to hold
    # where the sequence is going, not just where it has been. Validation, evaluate and
    # encode show the encoder the whole sequence and score plain reconstruction, so
    # val_loss is evaluate's loss.
    target: Target = "reconstruct"
    # target: composite only: the share of each sequence's real steps (rounded down, at
    # least one step left to the encoder) that the decoder predicts unseen.
    future_fraction: float = 0.25
    # AdamW's decoupled weight decay (Loshchilov & Hutter): 0 is plain Adam.
    weight_decay: float = 0.0
    # "auto" uses a GPU when TensorFlow sees one, and the CPU otherwise.
    device: Device = "auto"
    # CPU cores to train on. None: all of them. Each TensorFlow op runs on one thread (the
    # LSTM matmuls are too small to split well) and the batch is cut into this many slices
    # run in parallel; see seqmask/devices.py and BENCHMARKS.md.
    cpu_threads: int | None = None
    # "bucket" batches sequences of similar length, so little compute goes to padding.
    batching: Batching = "bucket"
    # None: one checkpoint per epoch, often enough unless epochs are very long. It counts
    # batches (optimizer updates), as the name says: "steps" are time steps everywhere else.
    checkpoint_every_batches: int | None = None
    # How training is spread over devices or machines (seqmask/distribute.py; README,
    # "Training on several GPUs or machines"). "auto": multi_worker when TF_CONFIG names two
    # or more workers, mirrored on two or more GPUs, else none. Every choice trains on the
    # same global batches (batch_size is the global batch) to the same numbers, up to the
    # order of float32 additions.
    distribute: Distribute = "auto"
    # mirrored: how many replicas. None: every GPU, or one CPU device. On a CPU, N > 1
    # splits it into N logical devices: a laptop can run (and a test check) a mirrored run.
    replicas: int | None = None
    # multi_worker: seconds without a heartbeat after which a worker counts as lost and the
    # others stop (exit 143). A killed worker is found sooner: its connection is refused.
    worker_timeout: float = 60.0
    # multi_worker: seconds every worker of TF_CONFIG has to start; after that the ones that
    # came stop with an error naming the missing ones (schedulers may start pods minutes apart).
    startup_timeout: float = 600.0


@dataclass(frozen=True)
class DetectConfig:
    """How `seqmask detect` scores sequences, and how the end of `train` calibrates it
    (seqmask/detect.py; the measurements are in BENCHMARKS.md, "Anomaly detection")."""

    # "combined": how far a sequence's latent vector sits from the training data's, relative
    # to how close those neighbours sit to each other ("density", a local outlier factor),
    # plus how unlike the validation split's its reconstruction errors are ("mahalanobis"),
    # each part standardized on the validation split. On the novelty benchmark it has the
    # best mean AUROC and beats the summary-statistics baselines on every UCR task: the
    # error part finds shapes the model cannot reconstruct, the density part sequences it
    # reconstructs well but that look like no training sequence (BENCHMARKS.md, "Anomaly
    # detection"). "latent": the plain mean distance to the `neighbors` nearest training
    # latent vectors. "error": evaluate's per-sequence error.
    score: AnomalyScore = "combined"
    # mahalanobis, combined: how a sequence's step scores become one score. "top": the mean
    # of its top_fraction highest step scores, which sees a short burst that a mean dilutes
    # and is steadier than the single worst step (BENCHMARKS.md).
    aggregate: Aggregate = "top"
    # aggregate: top: the share of a sequence's scored steps (rounded up, at least one).
    top_fraction: float = 0.1
    # latent, density, combined: 5 neighbours, the usual k for kNN outlier scores: one is at
    # the mercy of a single near-duplicate, many blur small clusters (3 and 10 measured worse).
    neighbors: int = 5
    # The default threshold flags 1 % of the validation split's sequences (and steps):
    # a rate a user can afford to look at. `seqmask calibrate` sets another.
    quantile: float = 0.99
    # Sequence thresholds per length range: up to this many ranges of equal count (each
    # with at least 20 validation sequences), so short and long normal sequences are
    # flagged at the same rate (BENCHMARKS.md, "Anomaly detection": score and length).
    # 1: one threshold for all lengths.
    length_bins: int = 4


@dataclass(frozen=True)
class Config:
    """A whole run configuration. `data` has no default because `data.train` is required."""

    data: DataConfig
    input: InputConfig = field(default_factory=InputConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)


# --------------------------------------------------------------------------- spec tables


@dataclass(frozen=True)
class _Range:
    """An interval of accepted numbers. Open ends exclude the bound itself."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            return False
        return True

    def __str__(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi}")
        return " and ".join(parts)


@dataclass(frozen=True)
class _Spec:
    """How one key is checked. Its default lives on the dataclass field."""

    kind: Literal["int", "float", "bool", "str", "path", "choice", "columns"]
    range: _Range | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    auto: bool = False  # the string "auto" is accepted too
    even: bool = False  # an int that must be even


# The keys that are not choices. A choice key has no row: `_section_spec` makes its spec
# from the field's Literal type, so its values are written only there.
_DATA_SPEC: dict[str, _Spec] = {
    "train": _Spec("path"),
    "validation": _Spec("path", nullable=True),
    "validation_split": _Spec("float", _Range(0, 1, hi_open=True)),
    "id_column": _Spec("str"),
    "step_column": _Spec("str", nullable=True),
    "feature_columns": _Spec("columns", nullable=True),
    "id_key": _Spec("str"),
    "values_key": _Spec("str"),
    "tokens_key": _Spec("str"),
    "max_len": _Spec("int", _Range(1), nullable=True),
    "window_shards": _Spec("int", _Range(1)),
}

_INPUT_SPEC: dict[str, _Spec] = {
    "min_count": _Spec("int", _Range(1)),
    "max_size": _Spec("int", _Range(3), nullable=True),
    "vocabulary": _Spec("path", nullable=True),
    "embedding_dim": _Spec("int", _Range(1)),
}

_MODEL_SPEC: dict[str, _Spec] = {
    "units": _Spec("int", _Range(1)),
    "num_layers": _Spec("int", _Range(1, 8)),
    "latent_dim": _Spec("int", _Range(1)),
    "decoder_units": _Spec("int", _Range(1), nullable=True),
    "bidirectional": _Spec("bool"),
    "input_stats": _Spec("bool"),
    "decoder_positions": _Spec("int", _Range(0), even=True),
    "dropout": _Spec("float", _Range(0, 1, hi_open=True)),
    "input_dropout": _Spec("float", _Range(0, 1, hi_open=True)),
    "input_noise": _Spec("float", _Range(0)),
}

_TRAIN_SPEC: dict[str, _Spec] = {
    "epochs": _Spec("int", _Range(1)),
    "batch_size": _Spec("int", _Range(1), auto=True),
    "learning_rate": _Spec("float", _Range(0, 1, lo_open=True)),
    "patience": _Spec("int", _Range(0)),
    "min_delta": _Spec("float", _Range(0)),
    "lr_patience": _Spec("int", _Range(0)),
    "lr_factor": _Spec("float", _Range(0, 1, lo_open=True, hi_open=True)),
    "min_learning_rate": _Spec("float", _Range(0)),
    "clip_norm": _Spec("float", _Range(0, lo_open=True), nullable=True),
    "weight_decay": _Spec("float", _Range(0)),
    "future_fraction": _Spec("float", _Range(0, 1, lo_open=True, hi_open=True)),
    # NumPy's legacy seeding, used under Keras' set_random_seed, takes 0 .. 2**32 - 1.
    "seed": _Spec("int", _Range(0, 2**32 - 1)),
    "cpu_threads": _Spec("int", _Range(1), nullable=True),
    "checkpoint_every_batches": _Spec("int", _Range(1), nullable=True),
    "replicas": _Spec("int", _Range(1), nullable=True),
    "worker_timeout": _Spec("float", _Range(4)),
    "startup_timeout": _Spec("float", _Range(1)),
}


_DETECT_SPEC: dict[str, _Spec] = {
    "top_fraction": _Spec("float", _Range(0, 1, lo_open=True)),
    "neighbors": _Spec("int", _Range(1)),
    "quantile": _Spec("float", _Range(0, 1, lo_open=True, hi_open=True)),
    "length_bins": _Spec("int", _Range(1, 64)),
}


def _section_spec(cls: type, rows: dict[str, _Spec]) -> dict[str, _Spec]:
    """Every key of `cls` in field order: its row in `rows`, or for a Literal field a
    choice spec holding the Literal's values. A field with both, or neither, is a bug."""
    hints = get_type_hints(cls)
    table = {}
    for f in fields(cls):
        hint = hints[f.name]
        literal = choices_of(hint) if get_origin(hint) is Literal else ()
        if bool(literal) == (f.name in rows):
            raise TypeError(f"{cls.__name__}.{f.name} needs a spec row or a Literal type, not both")
        table[f.name] = _Spec("choice", choices=literal) if literal else rows[f.name]
    return table


# Section name -> (its dataclass, its spec table). The order is the order of Config.
_SECTIONS: dict[str, tuple[type, dict[str, _Spec]]] = {
    "data": (DataConfig, _section_spec(DataConfig, _DATA_SPEC)),
    "input": (InputConfig, _section_spec(InputConfig, _INPUT_SPEC)),
    "model": (ModelConfig, _section_spec(ModelConfig, _MODEL_SPEC)),
    "train": (TrainConfig, _section_spec(TrainConfig, _TRAIN_SPEC)),
    "detect": (DetectConfig, _section_spec(DetectConfig, _DETECT_SPEC)),
}

# Keys that were renamed, old path -> new path: a later rename is one more row. A config
# file or --set that still uses an old name works, with a SeqmaskDeprecationWarning naming
# the new one; a config saved in a run directory before the rename loads silently (it is
# not the user's to edit). Giving both names is a ConfigError.
RENAMED_KEYS: dict[str, str] = {
    "train.checkpoint_every_steps": "train.checkpoint_every_batches",
}

# Keys added after runs were already being saved, with the value that a run saved before
# the key existed had in effect. A run's config.yaml holds every key (config_to_dict), so a
# missing one means the run predates it: reading it with today's default would describe a
# model the checkpoint does not hold. Applied to saved run configs only (runs.RunDir).
KEYS_ADDED: dict[str, Any] = {
    "model.bidirectional": False,
    "model.pooling": "none",
    "model.input_stats": False,
    "model.decoder_positions": 0,
    "model.dropout": 0.0,
    "model.input_dropout": 0.0,
    "model.input_noise": 0.0,
    "train.weight_decay": 0.0,
}


def with_keys_added(saved: Any) -> Any:
    """A saved run config with each key of KEYS_ADDED it lacks set to its old value."""
    if not isinstance(saved, dict):
        return saved
    out = {name: dict(section) if isinstance(section, dict) else section for name, section in saved.items()}
    for path, value in KEYS_ADDED.items():
        section, key = path.split(".")
        current = out.get(section)
        if isinstance(current, dict) and key not in current:
            current[key] = value
    return out


# The keys `train --resume --set` may change: none of them changes the model, the data or
# the batches, so the resumed run stays the run it continues, only trained longer or stopped
# otherwise. epochs is a ceiling; patience and min_delta decide when early stopping ends
# the run (its counters are in the checkpoint and keep counting); lr_patience and
# min_learning_rate decide when and how far the plateau schedule cuts the rate (the cuts
# already made live in the optimizer and stay); checkpoint_every_batches only says how
# often to save; the distribute keys only say where the same batches run (a run started on
# two GPUs may resume on one). The detect keys only say how the finished run is calibrated and scored.
RESUME_OVERRIDABLE: tuple[str, ...] = (
    "train.epochs",
    "train.patience",
    "train.min_delta",
    "train.lr_patience",
    "train.min_learning_rate",
    "train.checkpoint_every_batches",
    "train.distribute",
    "train.replicas",
    "train.worker_timeout",
    "train.startup_timeout",
    "data.streaming",
    "detect.score",
    "detect.aggregate",
    "detect.top_fraction",
    "detect.neighbors",
    "detect.quantile",
    "detect.length_bins",
)

_SECTION_NAMES = ", ".join(repr(s) for s in list(_SECTIONS)[:-1]) + f" and {list(_SECTIONS)[-1]!r}"

_KIND_WORDS = {
    "int": "an integer",
    "bool": "true or false",
    "float": "a number",
    "str": "a non-empty string",
    "path": "a file path (a non-empty string)",
    "columns": "a non-empty list of column names",
}


# --------------------------------------------------------------------------- messages

# reprlib keeps a message on one short line whatever the value: long strings are
# cut in the middle, nested containers are cut short, and cycles are safe.
_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 60
_repr.maxlevel = 2
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4


def _show(value: Any) -> str:
    """`value` as a short one-line repr for a message."""
    try:
        return _repr.repr(value)
    except Exception:  # a value whose repr fails must not hide the real error
        return f"<{type(value).__name__}>"


def _show_typed(value: Any) -> str:
    return "null" if value is None else f"{_show(value)} ({type(value).__name__})"


def _closest(word: str, candidates: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word.lower(), list(candidates), n=1)
    return matches[0] if matches else None


def _unknown_key(key: Any, valid: Sequence[str], section: str | None, source: str) -> ConfigError:
    """The error for `key` in `section` (None: the top level), with a hint if one fits."""
    name = str(key)
    prefix = f"{section}." if section else ""
    message = f"unknown key {_show(prefix + name)} in {source}"
    # A key that exists verbatim in another section was most likely put in the wrong one.
    elsewhere = [f"{s}.{name}" for s, (_, spec) in _SECTIONS.items() if s != section and name in spec]
    elsewhere += [new for old, new in RENAMED_KEYS.items() if old.partition(".")[2] == name]
    close = _closest(name, valid)
    if elsewhere:
        return ConfigError(f"{message}; did you mean {elsewhere[0]!r}?")
    if close is not None:
        return ConfigError(f"{message}; did you mean {prefix + close!r}?")
    return ConfigError(f"{message}; valid keys: {', '.join(map(repr, valid))}")


# --------------------------------------------------------------------------- parsing


def _parse_value(key_path: str, value: Any, spec: _Spec, base_dir: str) -> Any:
    """Check one raw value against its spec; return it converted to the field's type."""
    if value is None and spec.nullable:
        return None
    if value == "auto" and spec.auto:
        return value
    or_null = " or null" if spec.nullable else ' or "auto"' if spec.auto else ""

    if spec.kind == "choice":
        if isinstance(value, bool) and {"on", "off"} <= set(spec.choices):
            return "on" if value else "off"  # YAML 1.1 reads a bare on / off as true / false
        if isinstance(value, str) and value in spec.choices:
            return value
        message = f"{key_path!r} must be one of {', '.join(map(repr, spec.choices))}{or_null}, got "
        hint = _closest(value, spec.choices) if isinstance(value, str) else None
        if hint is not None:
            raise ConfigError(f"{message}{_show(value)}; did you mean {hint!r}?")
        raise ConfigError(message + (_show(value) if isinstance(value, str) else _show_typed(value)))

    wrong_type = ConfigError(f"{key_path!r} must be {_KIND_WORDS[spec.kind]}{or_null}, got {_show_typed(value)}")
    if spec.auto and isinstance(value, str) and _closest(value, ("auto",)) is not None:
        raise ConfigError(f"{wrong_type}; did you mean 'auto'?")
    if spec.kind == "bool":
        if not isinstance(value, bool):  # YAML's true/false only: 0, 1 and "yes" are refused
            raise wrong_type
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type
        result: Any = value
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise wrong_type
        try:
            result = float(value)  # a str: YAML 1.1 reads 1e-3 as a string
        except ValueError:
            raise wrong_type from None
        except OverflowError:  # an int too big for a float
            result = math.inf
        if not math.isfinite(result):
            raise ConfigError(f"{key_path!r} must be a finite number, got {_show(value)}")
    elif spec.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise wrong_type
        result = value
    elif spec.kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise wrong_type
        if "\0" in value:
            raise ConfigError(f"{key_path!r} must be a file path, got {_show(value)}, which has a NUL character")
        # Relative to the config file's directory, never the cwd; ~ is the user's home.
        result = os.path.abspath(os.path.join(base_dir, os.path.expanduser(value)))
    else:  # "columns"
        if not isinstance(value, list) or not value:
            raise wrong_type
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(f"{key_path!r} must be {_KIND_WORDS['columns']}, but it holds {_show_typed(item)}")
        seen: set[str] = set()
        for item in value:
            if item in seen:
                raise ConfigError(f"{key_path!r} lists {_show(item)} more than once")
            seen.add(item)
        result = tuple(value)

    if spec.range is not None and result not in spec.range:
        raise ConfigError(f"{key_path!r} must be {spec.range}, got {_show(result)}")
    if spec.even and result % 2:
        raise ConfigError(f"{key_path!r} must be an even number, got {_show(result)}; did you mean {result + 1}?")
    return result


def _parse_section(name: str, raw: Any, base_dir: str, source: str) -> Any:
    cls, spec = _SECTIONS[name]
    if raw is None:  # `model:` with nothing under it: all defaults
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"section {name!r} in {source} must be a mapping of keys to values, got {_show_typed(raw)}")
    for key in raw:
        if key not in spec:
            raise _unknown_key(key, list(spec), name, source)
    values = {}
    for f in fields(cls):
        if f.name in raw:
            values[f.name] = _parse_value(f"{name}.{f.name}", raw[f.name], spec[f.name], base_dir)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"missing required key {name + '.' + f.name!r} in {source}")
    return cls(**values)


def _check_combinations(cfg: Config) -> None:
    """Rules that involve more than one key, checked once every key is valid on its own."""
    data, inp, model, train = cfg.data, cfg.input, cfg.model, cfg.train
    if data.padding == "pre" and train.device == "gpu":
        raise ConfigError(
            "'data.padding' is 'pre' but 'train.device' is 'gpu': "
            "the cuDNN LSTM kernel needs post padding; use padding: post"
        )
    if data.padding == "pre" and model.decoder in ("repeat", "crop"):
        raise ConfigError(
            f"'data.padding' is 'pre' but 'model.decoder' is {model.decoder!r}: this decoder runs "
            "its LSTM over the padded steps, which come first with pre padding, so results would "
            "depend on the amount of padding; use padding: post or decoder: remask"
        )
    if data.step_column is not None and data.step_column == data.id_column:
        raise ConfigError(
            f"'data.step_column' and 'data.id_column' are both {data.id_column!r}; "
            "the sequence id and the step order must come from different columns"
        )
    keys = {"id_key": data.id_key, "values_key": data.values_key, "tokens_key": data.tokens_key}
    for a, b in (("id_key", "values_key"), ("id_key", "tokens_key"), ("values_key", "tokens_key")):
        if keys[a] == keys[b]:
            raise ConfigError(
                f"'data.{a}' and 'data.{b}' are both {keys[a]!r}; each names a different key of a JSONL record"
            )
    if inp.vocabulary is not None:
        if inp.kind != "tokens":
            raise ConfigError(
                "'input.vocabulary' is set but 'input.kind' is 'values': "
                "a vocabulary maps tokens to ids; set kind: tokens or remove vocabulary"
            )
        if inp.min_count != 1 or inp.max_size is not None:
            which = "min_count" if inp.min_count != 1 else "max_size"
            raise ConfigError(
                f"'input.{which}' is set but so is 'input.vocabulary': {which} shapes a vocabulary "
                "built from the training data and would be ignored; remove one of them"
            )


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(e.problem or e.context or "syntax error").split())
        raise ConfigError(f"invalid YAML in {where}{at}: {problem}") from None
    except Exception as e:
        # PyYAML's constructors leak plain exceptions on some inputs (ValueError for
        # `!!int abc` or the date 2020-13-45, AttributeError for `!!timestamp x`,
        # RecursionError for deep nesting). All of them mean the YAML is unusable.
        detail = " ".join(str(e).split()) or type(e).__name__
        raise ConfigError(f"invalid YAML in {where}: {detail}") from None


# --------------------------------------------------------------------------- renamed keys


def _both_names(old: str, new: str, where: str) -> ConfigError:
    return ConfigError(f"{old!r} and {new!r} are both set in {where}; {old!r} is the old name of {new!r}: remove it")


def _warn_renamed(old: str, new: str, where: str) -> None:
    warnings.warn(f"{old!r} in {where} is deprecated: it is now {new!r}", SeqmaskDeprecationWarning, stacklevel=4)


def _renamed(raw: dict[Any, Any], source: str, warn: bool) -> dict[Any, Any]:
    """A copy of `raw` with every old key name of RENAMED_KEYS moved to its new name.

    `warn`: the user wrote `raw` (a config file), so each old name gets a warning. Any
    section that is not a mapping is left as it is, for the parser to report.
    """
    result = dict(raw)
    for old, new in RENAMED_KEYS.items():
        (old_section, old_key), (new_section, new_key) = old.split("."), new.split(".")
        section = result.get(old_section)
        if not isinstance(section, dict) or old_key not in section:
            continue
        target = section if new_section == old_section else result.get(new_section)
        if target is not None and not isinstance(target, dict):
            continue
        if target is not None and new_key in target:
            raise _both_names(old, new, source)
        if warn:
            _warn_renamed(old, new, source)
        result[old_section] = {k: v for k, v in section.items() if k != old_key}
        result[new_section] = {**(result.get(new_section) or {}), new_key: section[old_key]}
    return result


# --------------------------------------------------------------------------- public API


def config_from_dict(raw: Any, base_dir: Path | str | None = None, source: str = "<config>") -> Config:
    """Check `raw` (a parsed YAML document) and build a Config from it.

    Relative paths in `data` resolve against `base_dir`, the config file's directory;
    with no `base_dir`, against the current directory at the time of the call.
    `source` names where `raw` came from in error messages. A key under an old name
    (RENAMED_KEYS) is read as the new one, silently: this is how the config saved in a
    run directory is read, and :func:`load_config` warns about a user's own file.
    """
    if raw is None:
        raise ConfigError(f"{source} is empty; a config needs at least 'data.train'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a mapping with the sections {_SECTION_NAMES}, got {_show_typed(raw)}")
    for key in raw:
        if key not in _SECTIONS:
            raise _unknown_key(key, list(_SECTIONS), None, source)
    base = os.path.abspath(base_dir if base_dir is not None else os.getcwd())
    try:
        raw = _renamed(raw, source, warn=False)  # a run saved before a rename: not the user's to fix
        sections = {name: _parse_section(name, raw.get(name), base, source) for name in _SECTIONS}
        cfg = Config(**sections)
        _check_combinations(cfg)
    except ConfigError as e:
        if source == "<config>" or source in str(e):
            raise
        raise ConfigError(f"{source}: {e}") from None  # every message names the file
    return cfg


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """`cfg` as plain YAML-safe data that `config_from_dict` turns back into an equal Config.

    Paths are written as absolute strings, so a saved config works from anywhere.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, (_, spec) in _SECTIONS.items():
        section = getattr(cfg, name)
        values = {}
        for f in fields(section):
            value = getattr(section, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif spec[f.name].kind == "path" and value is not None:
                value = os.path.abspath(value)
            values[f.name] = value
        out[name] = values
    return out


def _parse_override(item: Any) -> tuple[str, str, str]:
    """(key path as written, value text, where) of one ``section.key=value`` override.

    A key that does not exist is refused here, with the usual "did you mean" hint; an
    old name (RENAMED_KEYS) exists.
    """
    where = f"--set {_show(item)}"
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"{where} must look like section.key=value, e.g. train.learning_rate=0.01")
    key_path, _, text = item.partition("=")
    key_path = key_path.strip()
    parts = key_path.split(".")
    if parts[0] not in _SECTIONS:
        raise _unknown_key(parts[0], list(_SECTIONS), None, where)
    section, spec = parts[0], _SECTIONS[parts[0]][1]
    if len(parts) != 2:
        raise ConfigError(
            f"{where} must set one key inside a section, like {section + '.' + next(iter(spec))!r}, "
            f"got {_show(key_path)}"
        )
    if parts[1] not in spec and key_path not in RENAMED_KEYS:
        raise _unknown_key(parts[1], list(spec), section, where)
    return key_path, text, where


def _as_list(overrides: Sequence[str]) -> Sequence[str]:
    return [overrides] if isinstance(overrides, str) else overrides  # one override passed bare


def apply_overrides(raw: Any, overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each ``section.key=value`` override set in it.

    The value is parsed with ``yaml.safe_load`` (so ``null``, numbers and lists work)
    and is checked later, by `config_from_dict`, like any value from a file. A key
    that does not exist is refused here, with the same "did you mean" hint. A key under
    its old name (RENAMED_KEYS) sets the new one, with a SeqmaskDeprecationWarning.
    `raw` itself is not modified.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"cannot apply --set overrides: the config is not a mapping, got {_show_typed(raw)}")
    result = _renamed(raw, "the config", warn=False)  # so an override replaces a value under its old name
    written: dict[str, str] = {}  # key path -> as the user wrote it, old name or new
    for item in _as_list(overrides):
        key_path, text, where = _parse_override(item)
        new_path = RENAMED_KEYS.get(key_path, key_path)
        if new_path != key_path:
            _warn_renamed(key_path, new_path, where)
        if written.setdefault(new_path, key_path) != key_path:  # one --set under each name
            old_path = key_path if key_path in RENAMED_KEYS else written[new_path]
            raise _both_names(old_path, new_path, "the --set overrides")
        section, key = new_path.split(".")
        current = result.get(section)
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"cannot apply {where}: section {section!r} is not a mapping, got {_show_typed(current)}")
        result[section] = {**(current or {}), key: _parse_yaml(text, where)}
    return result


def _from_overrides(raw: dict[str, Any], overrides: Sequence[str], base_dir: Path | None, source: str) -> Config:
    """`config_from_dict` of `raw` with `overrides` applied; an error in a value that came
    from ``--set`` says so, or the user searches the file for it."""
    raw = apply_overrides(raw, overrides)
    try:
        return config_from_dict(raw, base_dir=base_dir, source=source)
    except ConfigError as e:
        for item in _as_list(overrides):
            key_path = str(item).partition("=")[0].strip()
            if f"{RENAMED_KEYS.get(key_path, key_path)!r}" in str(e):
                message = str(e).removeprefix(f"{source}: ")  # the value is not in the file
                raise ConfigError(f"{message} (from --set {item!r})") from None
        raise


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read the YAML config at `path`, apply ``--set`` `overrides`, and check it all.

    A key under an old name (RENAMED_KEYS), in the file or in `overrides`, is read as
    the new one, with a SeqmaskDeprecationWarning naming the new one.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {source} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {source} is a directory, not a file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {source} is not UTF-8 text (bad byte at offset {e.start})") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise ConfigError(f"cannot read config file {source}: {getattr(e, 'strerror', None) or e}") from None
    raw = _parse_yaml(text, source)
    if raw is None:
        raise ConfigError(f"config file {source} is empty; it needs at least 'data.train'")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {source} must hold a mapping with the sections {_SECTION_NAMES}, got {_show_typed(raw)}"
        )
    raw = _renamed(raw, source, warn=True)
    return _from_overrides(raw, overrides, path.absolute().parent, source)


def apply_resume_overrides(saved: Any, overrides: Sequence[str], source: str = "<config>") -> Config:
    """The config of a run resumed with ``--set`` `overrides` (``train --resume``).

    `saved` is the run's saved config (the parsed config.yaml of its run directory) and
    `source` names it in messages. It is checked as :func:`config_from_dict` checks it
    (old key names load silently), then each override is applied and checked as
    ``--set`` is. Only the keys of RESUME_OVERRIDABLE may be overridden: any other, which
    could change the model or the data of a run already under way, is a ConfigError that
    lists the keys that may.
    """
    for item in _as_list(overrides):
        key_path, _, where = _parse_override(item)
        if RENAMED_KEYS.get(key_path, key_path) not in RESUME_OVERRIDABLE:
            raise ConfigError(
                f"{where} cannot be used with --resume: a resumed run keeps its model and its data, "
                f"so only {', '.join(map(repr, RESUME_OVERRIDABLE))} may change"
            )
    cfg = config_from_dict(saved, source=source)
    if not _as_list(overrides):
        return cfg
    # The saved paths are absolute (config_to_dict), so no base directory is needed.
    return _from_overrides(config_to_dict(cfg), overrides, None, source)
