"""A file (or a directory or glob of shards) read, checked and truncated as the config says.

Everything that reads user data by path goes through `load`, so a file is read, checked
against `input.kind` and truncated the same way wherever it is used: training, evaluate,
encode, detect and the API.
"""

import dataclasses
import functools
from pathlib import Path

import numpy as np

from seqmask.config import Config, DataConfig, TrainConfig
from seqmask.data.readers import read_sequences
from seqmask.data.sequences import Sequences, truncate
from seqmask.data.shards import Reader, find_shards, read_all
from seqmask.data.streaming import ShardedSequences
from seqmask.errors import DataError


def load(path: str | Path, cfg: Config) -> Sequences:
    """One file, read, checked against `input.kind` and truncated as the config says; a
    directory or glob of shards, every shard so read, in shard order."""
    shards = find_shards(path)
    if shards is not None:
        return dataclasses.replace(read_all(shards, shard_reader(cfg)), source=str(path))
    return _load_file(path, cfg)


def shard_reader(cfg: Config) -> Reader:
    """How one shard is read: as `load` reads a file (one function object per call: the
    index's cache of decoded shards is keyed by it)."""
    return functools.partial(_load_file, cfg=cfg)


def _load_file(path: str | Path, cfg: Config) -> Sequences:
    data_cfg = cfg.data
    seqs = read_sequences(
        path,
        format=data_cfg.format,
        id_column=data_cfg.id_column,
        step_column=data_cfg.step_column,
        feature_columns=data_cfg.feature_columns,
        **_json_keys(data_cfg),
    )
    check_kind(seqs, cfg)
    return truncate(seqs, data_cfg.max_len, data_cfg.truncating)


def check_kind(seqs: Sequences, cfg: Config) -> None:
    """Numbers for `input.kind: values`, tokens for `tokens`."""
    if cfg.input.kind == "tokens" and not seqs.is_tokens:
        raise DataError(f"{seqs.source}: holds numeric values, but 'input.kind' is 'tokens'; set input.kind: values")
    if cfg.input.kind == "values" and seqs.is_tokens:
        raise DataError(f"{seqs.source}: holds tokens, but 'input.kind' is 'values'; set input.kind: tokens")


def _json_keys(data_cfg: DataConfig) -> dict[str, str]:
    return {"id_key": data_cfg.id_key, "values_key": data_cfg.values_key, "tokens_key": data_cfg.tokens_key}


def check_targets(seqs: Sequences | ShardedSequences, train_cfg: TrainConfig) -> None:
    """Every sequence must have something to score, or the loss would silently skip it."""
    if train_cfg.target != "next_step":
        return
    short = np.flatnonzero(seqs.lengths < 2)
    if train_cfg.loss == "last_step" and len(short):
        first = seqs.id_at(int(short[0])) if isinstance(seqs, ShardedSequences) else str(seqs.ids[short[0]])
        raise DataError(
            f"{seqs.source}: sequence '{first}' has length 1, so with "
            "target: next_step it has no step to predict and last_step has nothing to score "
            f"({len(short)} such sequence(s)); drop them or use target: reconstruct"
        )
    if len(short) == len(seqs):
        raise DataError(f"{seqs.source}: every sequence has length 1: target: next_step has nothing to predict")
