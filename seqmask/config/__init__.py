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
with a fixed set of values is typed with one of the ``Literal`` aliases (``_choices``), the
one place its choices are written: the parser takes them from the field's type,
and the modules that take the same value as an argument check it with
:func:`check_choice`. One generic parser walks the tables, so adding a key takes
one dataclass field plus, unless it is a choice, one table row. Type conversions
are few and deliberate: an int is accepted for a float key, and so is a string
that parses as a float, because YAML 1.1 reads ``1e-3`` as the *string* "1e-3".

Modules (private; import every name from ``seqmask.config``):

- ``_choices``: the ``Literal`` aliases of the choice keys, :func:`choices_of` and :func:`check_choice`;
- ``_sections``: the section dataclasses and :class:`Config`, with each key's default;
- ``_spec``: the spec tables (kind and range of each key) and ``_SECTIONS``;
- ``_compat``: renamed keys, keys added after runs were saved, and the keys a resume may change;
- ``_messages``: the wording of errors (short reprs, "did you mean" hints);
- ``_parse``: checking values and sections, :func:`config_from_dict` and :func:`config_to_dict`;
- ``_overrides``: ``--set`` overrides, :func:`load_config` and :func:`apply_resume_overrides`.

This package must import in milliseconds: never import TensorFlow or Keras here.
"""

from __future__ import annotations

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
    StepError,
    Target,
    Truncating,
    check_choice,
    choices_of,
)
from seqmask.config._choices import Pooling as Pooling
from seqmask.config._choices import Streaming as Streaming
from seqmask.config._compat import KEYS_ADDED, RENAMED_KEYS, RESUME_OVERRIDABLE, with_keys_added
from seqmask.config._overrides import apply_overrides, apply_resume_overrides, load_config
from seqmask.config._parse import config_from_dict, config_to_dict
from seqmask.config._sections import Config, DataConfig, DetectConfig, InputConfig, ModelConfig, TrainConfig

# Private names the tests read (the spec tables and their helpers).
from seqmask.config._spec import _SECTIONS as _SECTIONS
from seqmask.config._spec import _section_spec as _section_spec
from seqmask.config._spec import _Spec as _Spec

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
