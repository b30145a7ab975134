"""The wording of config errors: short one-line reprs of values, what each kind of key
expects, and the "unknown key; did you mean ..." hint.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Sequence
from typing import Any

from seqmask.config._compat import RENAMED_KEYS
from seqmask.config._spec import _SECTIONS
from seqmask.errors import ConfigError

_SECTION_NAMES = ", ".join(repr(s) for s in list(_SECTIONS)[:-1]) + f" and {list(_SECTIONS)[-1]!r}"

_KIND_WORDS = {
    "int": "an integer",
    "bool": "true or false",
    "float": "a number",
    "str": "a non-empty string",
    "path": "a file path (a non-empty string)",
    "columns": "a non-empty list of column names",
}

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
