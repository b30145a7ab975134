"""Parsing: a raw YAML document, checked value by value against the spec tables, becomes a
:class:`Config` (and back: :func:`config_to_dict`).
"""

from __future__ import annotations

import math
import os
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import yaml

from seqmask.config._compat import _renamed
from seqmask.config._messages import _KIND_WORDS, _SECTION_NAMES, _closest, _show, _show_typed, _unknown_key
from seqmask.config._sections import Config
from seqmask.config._spec import _SECTIONS, _Spec
from seqmask.errors import ConfigError


def _parse_value(key_path: str, value: Any, spec: _Spec, base_dir: str) -> Any:
    """Check one raw value against its spec; return it converted to the field's type."""
    if value is None and spec.nullable:
        return None
    if value == "auto" and spec.auto:
        return value
    or_null = " or null" if spec.nullable else ' or "auto"' if spec.auto else ""

    if spec.kind == "choice":
        return _parse_choice(key_path, value, spec, or_null)

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
        result = _parse_float(key_path, value, wrong_type)
    elif spec.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise wrong_type
        result = value
    elif spec.kind == "path":
        result = _parse_path(key_path, value, base_dir, wrong_type)
    else:  # "columns"
        result = _parse_columns(key_path, value, wrong_type)

    if spec.range is not None and result not in spec.range:
        raise ConfigError(f"{key_path!r} must be {spec.range}, got {_show(result)}")
    if spec.even and result % 2:
        raise ConfigError(f"{key_path!r} must be an even number, got {_show(result)}; did you mean {result + 1}?")
    return result


def _parse_choice(key_path: str, value: Any, spec: _Spec, or_null: str) -> str:
    """A value of a choice key: one of `spec.choices`, with a "did you mean" for a near miss."""
    if isinstance(value, bool) and {"on", "off"} <= set(spec.choices):
        return "on" if value else "off"  # YAML 1.1 reads a bare on / off as true / false
    if isinstance(value, str) and value in spec.choices:
        return value
    message = f"{key_path!r} must be one of {', '.join(map(repr, spec.choices))}{or_null}, got "
    hint = _closest(value, spec.choices) if isinstance(value, str) else None
    if hint is not None:
        raise ConfigError(f"{message}{_show(value)}; did you mean {hint!r}?")
    raise ConfigError(message + (_show(value) if isinstance(value, str) else _show_typed(value)))


def _parse_float(key_path: str, value: Any, wrong_type: ConfigError) -> float:
    """A value of a float key: an int, a float, or a string that parses as a finite float."""
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
    return result


def _parse_path(key_path: str, value: Any, base_dir: str, wrong_type: ConfigError) -> str:
    """A value of a path key, made absolute against `base_dir`."""
    if not isinstance(value, str) or not value.strip():
        raise wrong_type
    if "\0" in value:
        raise ConfigError(f"{key_path!r} must be a file path, got {_show(value)}, which has a NUL character")
    # Relative to the config file's directory, never the cwd; ~ is the user's home.
    return os.path.abspath(os.path.join(base_dir, os.path.expanduser(value)))


def _parse_columns(key_path: str, value: Any, wrong_type: ConfigError) -> tuple[str, ...]:
    """A value of a columns key: a non-empty list of distinct non-empty strings, as a tuple."""
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
    return tuple(value)


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
