"""``--set section.key=value`` overrides, and the two entry points that take them:
:func:`load_config` (a user's config file) and :func:`apply_resume_overrides` (the saved
config of a run resumed with ``train --resume``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqmask.config._compat import RENAMED_KEYS, RESUME_OVERRIDABLE, _both_names, _renamed, _warn_renamed
from seqmask.config._messages import _SECTION_NAMES, _show, _show_typed, _unknown_key
from seqmask.config._parse import _parse_yaml, config_from_dict, config_to_dict
from seqmask.config._sections import Config
from seqmask.config._spec import _SECTIONS
from seqmask.errors import ConfigError


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
