"""The keys with a fixed set of values: one ``Literal`` alias each, and the helpers that read them.

An alias is the one place a key's choices are written: the parser takes them from the
field's type (``_spec``), and the modules that take the same value as an argument type it
with the alias and check it with :func:`check_choice`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar, get_args

# Each key with a fixed set of values, declared once. The parser reads a field's choices
# from its type; other modules import the alias to type and check the same argument.
DataFormat = Literal["auto", "npz", "csv", "jsonl", "parquet", "npy_dir", "csv_dir", "tokens_text"]
Padding = Literal["post", "pre"]
Truncating = Literal["post", "pre", "none"]
Normalize = Literal["standard", "none"]
InputKind = Literal["values", "tokens"]
Decoder = Literal["repeat", "remask", "crop"]
Loss = Literal["per_step", "last_step"]
StepError = Literal["mse", "mae"]
Target = Literal["reconstruct", "next_step", "reverse", "composite"]
Pooling = Literal["none", "mean", "max", "mean_max"]
Device = Literal["auto", "cpu", "gpu"]
Batching = Literal["bucket", "pad_to_max"]
Distribute = Literal["auto", "none", "mirrored", "multi_worker"]
Streaming = Literal["auto", "on", "off"]
AnomalyScore = Literal["combined", "density", "latent", "mahalanobis", "error"]
Aggregate = Literal["top", "mean", "max"]

_T = TypeVar("_T")


def choices_of(literal: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` alias, in the order it lists them: ``choices_of(Padding)``."""
    return get_args(literal)


def check_choice(name: str, value: _T, literal: Any) -> _T:
    """Returns `value` if it is one of the values of `literal`, else raises ``ValueError``.

    For arguments that code passes (a bad one is a programming error); a user's config
    values are checked when it is read, with a ``ConfigError`` naming the key path.
    """
    allowed = choices_of(literal)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value
