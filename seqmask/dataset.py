"""The config's view of the data: read -> truncate -> split -> normalize.

Training fits the normalization on the real steps of the training split only; evaluate and
encode apply the statistics saved in the run. Both go through `load`, so a file is read,
truncated and checked the same way wherever it is used.
"""

from dataclasses import dataclass

import numpy as np

from seqmask.data import Normalizer, Sequences, split, truncate
from seqmask.errors import DataError
from seqmask.readers import read_sequences


@dataclass(frozen=True)
class Splits:
    train: Sequences
    validation: Sequences  # may be empty: early stopping then watches the training loss
    normalizer: Normalizer
    max_len: int  # the time length no batch exceeds


def load(path, data_cfg):
    """One file, read and truncated as the config says (not normalized)."""
    seqs = read_sequences(
        path,
        format=data_cfg.format,
        id_column=data_cfg.id_column,
        step_column=data_cfg.step_column,
        feature_columns=data_cfg.feature_columns,
    )
    return truncate(seqs, data_cfg.max_len, data_cfg.truncating)


def check_targets(seqs, train_cfg):
    """Every sequence must have something to score, or the loss would silently skip it."""
    if train_cfg.target != "next_step":
        return
    short = np.flatnonzero(seqs.lengths < 2)
    if train_cfg.loss == "last_step" and len(short):
        raise DataError(
            f"{seqs.source}: sequence '{seqs.ids[short[0]]}' has length 1, so with "
            "target: next_step it has no step to predict and last_step has nothing to score "
            f"({len(short)} such sequence(s)); drop them or use target: reconstruct"
        )
    if len(short) == len(seqs):
        raise DataError(
            f"{seqs.source}: every sequence has length 1: target: next_step has nothing to predict"
        )


def raw_splits(cfg):
    """(train, validation) as the config defines them, checked, not normalized."""
    train = load(cfg.data.train, cfg.data)
    if cfg.data.validation:
        validation = load(cfg.data.validation, cfg.data)
        if validation.num_features != train.num_features:
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


def prepare(cfg):
    """Training and validation data for `cfg`, normalized with training statistics."""
    train, validation = raw_splits(cfg)
    normalizer = (
        Normalizer.fit(train)
        if cfg.data.normalize == "standard"
        else Normalizer.identity(train.num_features)
    )
    longest = max(int(train.lengths.max()), int(validation.lengths.max()) if len(validation) else 0)
    return Splits(
        train=normalizer.apply(train),
        validation=normalizer.apply(validation) if len(validation) else validation,
        normalizer=normalizer,
        max_len=cfg.data.max_len or longest,
    )
