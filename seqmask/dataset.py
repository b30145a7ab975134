"""The config's view of the data: read -> truncate -> split -> transform.

The transform turns what a reader gives into what the model takes, and is fitted on the
training split only:
  * numeric values: standardization (`Normalizer`: per-feature mean and std over the
    training split's real steps), or the identity with `normalize: none`;
  * tokens: a `Vocabulary` built from the training split (or given), mapping tokens to ids.
It is saved in the run directory, and evaluate and encode apply the saved one. Everything
goes through `load`, so a file is read, truncated and checked the same way wherever it is
used.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqmask.config import Config, DataConfig, TrainConfig
from seqmask.data import Normalizer, Sequences, split, truncate
from seqmask.errors import DataError, RunError
from seqmask.readers import read_sequences
from seqmask.runs import NORMALIZATION, VOCABULARY, RunDir
from seqmask.vocab import Vocabulary


@dataclass(frozen=True)
class Splits:
    train: Sequences  # transformed
    validation: Sequences  # transformed; may be empty: early stopping then watches the training loss
    transform: Normalizer | Vocabulary
    max_len: int  # the time length no batch exceeds


def load(path: str | Path, cfg: Config) -> Sequences:
    """One file, read, checked against `input.kind` and truncated as the config says."""
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


def check_targets(seqs: Sequences, train_cfg: TrainConfig) -> None:
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
        raise DataError(f"{seqs.source}: every sequence has length 1: target: next_step has nothing to predict")


def raw_splits(cfg: Config) -> tuple[Sequences, Sequences]:
    """(train, validation) as the config defines them, checked, not transformed."""
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


def prepare(cfg: Config) -> Splits:
    """Training and validation data for `cfg`, transformed with training statistics."""
    train, validation = raw_splits(cfg)
    transform = fit_transform(cfg, train)
    longest = max(int(train.lengths.max()), int(validation.lengths.max()) if len(validation) else 0)
    return Splits(
        train=apply_transform(transform, train),
        validation=apply_transform(transform, validation) if len(validation) else validation,
        transform=transform,
        max_len=cfg.data.max_len or longest,
    )
