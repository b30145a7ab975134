"""The config's view of the data: read -> truncate -> split -> transform.

The transform turns what a reader gives into what the model takes, and is fitted on the
training split only:
  * numeric values: standardization (`Normalizer`: per-feature mean and std over the
    training split's real steps), or the identity with `normalize: none`;
  * tokens: a `Vocabulary` built from the training split (or given), mapping tokens to ids.
It is saved in the run directory, and evaluate and encode apply the saved one. Every file
is read through `seqmask.data.loading.load`.

A directory or glob of shard files (`seqmask.data.shards`) is indexed first: one pass gives every
sequence's length and place, the validation split (a seeded rule per id) and the training
split's statistics. Training then reads batches from the shards (`ShardedSequences`) or,
with `data.streaming: off` or small data, reads them all into memory first; `load` of
shards (evaluate, encode, detect) reads them all.
"""

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqmask.config import Config
from seqmask.data import Normalizer, Sequences, split
from seqmask.data.loading import check_targets, load, shard_reader
from seqmask.data.shards import (
    Holdout,
    ShardIndex,
    build_index,
    find_shards,
    holdout,
    split_positions,
)
from seqmask.data.streaming import ShardedSequences, should_stream
from seqmask.data.vocab import Vocabulary
from seqmask.errors import DataError, RunError
from seqmask.run.directory import NORMALIZATION, SHARD_INDEX, VOCABULARY, RunDir


@dataclass(frozen=True)
class Splits:
    train: Sequences | ShardedSequences  # transformed
    validation: Sequences | ShardedSequences  # transformed; may be empty: early stopping then watches the training loss
    transform: Normalizer | Vocabulary
    max_len: int  # the time length no batch exceeds
    index: ShardIndex | None = field(default=None, repr=False)  # sharded data: the training shards' index
    streaming: bool = False  # sharded data read from the shards while training (not held in memory)


def raw_splits(cfg: Config, run: RunDir | None = None) -> tuple[Sequences, Sequences]:
    """(train, validation) as the config defines them, checked, not transformed. Sharded
    data: split by the index `run` saved when it trained (checked), else indexed now."""
    shards = find_shards(cfg.data.train)
    if shards is not None:  # the split training made: by the index's rule, in memory here
        read = shard_reader(cfg)
        index = shard_index(cfg, shards, saved_index(run) if run is not None else None)
        train_rows, val_rows = split_positions(index)
        train = dataclasses.replace(index.read(train_rows, read), source=str(cfg.data.train))
        validation = (
            load(cfg.data.validation, cfg)
            if cfg.data.validation
            else dataclasses.replace(index.read(val_rows, read), source=str(cfg.data.train))
        )
        return train, validation
    train = load(cfg.data.train, cfg)
    if cfg.data.validation:
        validation = load(cfg.data.validation, cfg)
        if not train.is_tokens and validation.num_features != train.num_features:
            raise DataError(
                f"{validation.source}: has {validation.num_features} features but "
                f"{train.source} has {train.num_features}"
            )
    else:
        train, validation = split(train, cfg.data.validation_split, cfg.train.seed)
    for part in (train, validation):
        if len(part):
            check_targets(part, cfg.train)
    return train, validation


def validation_split(cfg: Config, run: RunDir | None = None) -> Sequences:
    """`raw_splits(cfg, run)[1]`, reading no more than it needs: for sharded training
    data, the validation file, or only the held-out sequences' rows of the shards."""
    shards = find_shards(cfg.data.train)
    if shards is None:
        return raw_splits(cfg, run)[1]
    if cfg.data.validation:
        return load(cfg.data.validation, cfg)
    index = shard_index(cfg, shards, saved_index(run) if run is not None else None)
    _, val_rows = split_positions(index)
    return dataclasses.replace(index.read(val_rows, shard_reader(cfg)), source=str(cfg.data.train))


def fit_transform(cfg: Config, train: Sequences) -> Normalizer | Vocabulary:
    """The transform for this run, fitted on the (raw) training split."""
    if cfg.input.kind == "tokens":
        if cfg.input.vocabulary:
            return Vocabulary.load(cfg.input.vocabulary)
        return Vocabulary.build(train, cfg.input.min_count, cfg.input.max_size)
    if cfg.data.normalize == "standard":
        return Normalizer.fit(train)
    return Normalizer.identity(train.num_features)


def apply_transform(transform: Normalizer | Vocabulary, seqs: Sequences) -> Sequences:
    return transform.encode(seqs) if isinstance(transform, Vocabulary) else transform.apply(seqs)


def save_transform(run: RunDir, transform: Normalizer | Vocabulary) -> None:
    if isinstance(transform, Vocabulary):
        transform.save(run.file(VOCABULARY))
    else:
        run.write_json(NORMALIZATION, transform.to_dict())


def load_transform(run: RunDir, cfg: Config) -> Normalizer | Vocabulary:
    name = VOCABULARY if cfg.input.kind == "tokens" else NORMALIZATION
    if not run.file(name).is_file():
        kind = "token run" if cfg.input.kind == "tokens" else "run"
        raise RunError(f"{run} is not a complete {kind}: missing {name}")
    if cfg.input.kind == "tokens":
        return Vocabulary.load(run.file(name))
    return Normalizer.from_dict(run.read_json(name))


def same_transform(a: Normalizer | Vocabulary, b: Normalizer | Vocabulary) -> bool:
    if isinstance(a, Vocabulary) or isinstance(b, Vocabulary):
        return isinstance(a, Vocabulary) and isinstance(b, Vocabulary) and a.tokens == b.tokens
    return np.allclose(a.mean, b.mean) and np.allclose(a.std, b.std)


def prepare(
    cfg: Config, saved_index: ShardIndex | None = None, on_shard: Callable[[int, int], None] | None = None
) -> Splits:
    """Training and validation data for `cfg`, transformed with training statistics.
    `saved_index`: a resumed run's index of its shards, checked against them; `on_shard`
    (done, total) follows the index pass."""
    shards = find_shards(cfg.data.train)
    if shards is not None:
        return _prepare_shards(cfg, shards, saved_index, on_shard)
    train, validation = raw_splits(cfg)
    transform = fit_transform(cfg, train)
    longest = max(int(train.lengths.max()), int(validation.lengths.max()) if len(validation) else 0)
    return Splits(
        train=apply_transform(transform, train),
        validation=apply_transform(transform, validation) if len(validation) else validation,
        transform=transform,
        max_len=cfg.data.max_len or longest,
    )


def _holdout(cfg: Config) -> Holdout:
    fraction = 0.0 if cfg.data.validation else cfg.data.validation_split
    return holdout(fraction, cfg.train.seed)


def saved_index(run: RunDir) -> ShardIndex | None:
    """The index of its shards a sharded run saved, or None (a run on one file)."""
    path = run.file(SHARD_INDEX)
    return ShardIndex.load(path) if path.is_file() else None


def shard_index(
    cfg: Config, shards: list[Path], saved: ShardIndex | None, on_shard: Callable[[int, int], None] | None = None
) -> ShardIndex:
    """`saved` once checked against the shards (none added, gone or changed), else the index
    built now, with the config's validation holdout."""
    if saved is None:
        return build_index(shards, shard_reader(cfg), holdout=_holdout(cfg), on_shard=on_shard)
    _check_same_shards(cfg.data.train, saved, shards)
    saved.check_unchanged()
    return saved


def sharded_splits(cfg: Config, run: RunDir, index: ShardIndex | None = None) -> Splits | None:
    """A sharded run's splits, read from the shards only when a part is taken (whatever
    data.streaming says), by the index it saved (`index`, when the caller has loaded it;
    checked against the shards); None for a run on one file."""
    shards = find_shards(cfg.data.train)
    if shards is None:
        return None
    return _prepare_shards(cfg, shards, index or saved_index(run), None, stream=True)


def _prepare_shards(
    cfg: Config,
    shards: list[Path],
    saved: ShardIndex | None,
    on_shard: Callable[[int, int], None] | None,
    stream: bool | None = None,
) -> Splits:
    """`prepare` for a directory or glob of shards: index (or check the saved index), split,
    normalize with the training split's statistics; stream (as data.streaming says, unless
    `stream` does) or read everything."""
    read = shard_reader(cfg)
    index = shard_index(cfg, shards, saved, on_shard)
    train_rows, val_rows = split_positions(index)
    if not len(train_rows):
        raise DataError(f"{cfg.data.train}: every sequence is held out for validation; lower data.validation_split")
    if cfg.data.normalize == "standard":
        transform = index.normalizer()
    else:
        transform = Normalizer.identity(index.num_features)
    window = cfg.data.window_shards + 1  # a window's shards, and one more being read
    source = str(cfg.data.train)
    train = ShardedSequences(index, train_rows, read, transform, source, window)
    validation: Sequences | ShardedSequences
    if cfg.data.validation:
        validation = _validation_file(cfg, transform, index.num_features)
    else:
        validation = ShardedSequences(index, val_rows, read, transform, source, window)
    streaming = should_stream(cfg.data.streaming, index) if stream is None else stream
    if not streaming:  # the same splits and batches, with every sequence read now
        train = train.load_all()
        if isinstance(validation, ShardedSequences):
            validation = validation.load_all()
    for part in (train, validation):
        if len(part):
            check_targets(part, cfg.train)
    longest = max(int(train.lengths.max()), int(validation.lengths.max()) if len(validation) else 0)
    return Splits(train, validation, transform, cfg.data.max_len or longest, index=index, streaming=streaming)


def _validation_file(cfg: Config, transform: Normalizer, num_features: int) -> Sequences | ShardedSequences:
    """data.validation beside sharded training data: a file (in memory) or shards (streamed)."""
    assert cfg.data.validation is not None
    shards = find_shards(cfg.data.validation)
    if shards is None:
        seqs = load(cfg.data.validation, cfg)
        if seqs.num_features != num_features:
            raise DataError(f"{seqs.source}: has {seqs.num_features} features but {cfg.data.train} has {num_features}")
        return transform.apply(seqs) if len(seqs) else seqs
    read = shard_reader(cfg)
    index = build_index(shards, read)
    if index.num_features != num_features:
        raise DataError(
            f"{cfg.data.validation}: has {index.num_features} features but {cfg.data.train} has {num_features}"
        )
    every = np.arange(index.num_sequences, dtype=np.int32 if index.num_sequences < 2**31 else np.int64)
    return ShardedSequences(index, every, read, transform, str(cfg.data.validation), cfg.data.window_shards + 1)


def _check_same_shards(path: str, index: ShardIndex, shards: list[Path]) -> None:
    """A resumed run's shards must be the ones it indexed: none added, none gone."""
    now = {os.path.abspath(p) for p in shards}
    then = set(index.shards)
    added, gone = sorted(now - then), sorted(then - now)
    if added or gone:
        what = f"new shard {added[0]}" if added else f"shard {gone[0]} is gone"
        raise DataError(
            f"{path}: the shards changed since the run was indexed ({what}); the run trained on the old "
            "shards: restore them, or start a new run"
        )
