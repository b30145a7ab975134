"""Compatibility with older configs and runs: renamed keys, keys added later, and the keys
``train --resume --set`` may change.
"""

from __future__ import annotations

import warnings
from typing import Any

from seqmask.errors import ConfigError, SeqmaskDeprecationWarning

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
