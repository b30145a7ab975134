"""The section dataclasses: one frozen dataclass per config section, and :class:`Config`.

Each field holds its default, with a comment saying why it is what it is. How a key is
checked lives beside them, in ``_spec``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqmask.config._choices import (
    Aggregate,
    AnomalyScore,
    Batching,
    DataFormat,
    Decoder,
    Device,
    Distribute,
    InputKind,
    Loss,
    Normalize,
    Padding,
    Pooling,
    StepError,
    Streaming,
    Target,
    Truncating,
)


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
    # (reading it all in peaks at several times that: BENCHMARKS.md, "Streaming").
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
    # the mercy of a single near-duplicate, many blur small clusters (3 and 10 measured worse:
    # BENCHMARKS.md, "Anomaly detection").
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
