"""The calibration arguments (`Run.calibrate`, `seqmask calibrate`), checked before anything
is loaded, in the words of whichever interface took them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqmask.errors import ConfigError

if TYPE_CHECKING:
    pass


def check_threshold_rule(
    quantile: float | None,
    contamination: float | None,
    fpr: float | None,
    labels: Any,
    data: Any,
    score: str | None,
    cli: bool = False,
) -> None:
    """The calibration arguments, checked before anything is loaded; `cli` words them as
    the command line's options (`--quantile`), else as this API's arguments."""
    from seqmask.config import AnomalyScore, choices_of

    def name(n: str) -> str:
        return f"--{n}" if cli else n

    def needs(n: str) -> str:
        return f"--{n} FILE" if cli else f"{n}="

    rules = (("quantile", quantile), ("contamination", contamination), ("fpr", fpr))
    given = [name(n) for n, value in rules if value is not None]
    if len(given) > 1:
        raise ConfigError(
            f"give one of {name('quantile')}, {name('contamination')} and {name('fpr')}, not {' and '.join(given)}"
        )
    for n, value in rules:
        if value is not None and not 0 < value < 1:
            raise ConfigError(f"{name(n)} must be between 0 and 1 (exclusive), got {value}")
    if fpr is not None and labels is None:
        raise ConfigError(
            f"{name('fpr')} needs {needs('labels')}: "
            "the false-positive rate is measured on the sequences labelled normal"
        )
    if labels is not None and fpr is None:
        raise ConfigError(
            f"{name('labels')} is used with {name('fpr')} only "
            f"(detect {name('labels')} reports how well scores match labels)"
        )
    if fpr is not None and data is None:
        raise ConfigError(f"{name('fpr')} needs {needs('data')}: the labelled sequences to calibrate on")
    if score is not None and score not in choices_of(AnomalyScore):
        allowed = ", ".join(map(repr, choices_of(AnomalyScore)))
        raise ConfigError(f"{name('score')} must be one of {allowed}, got {score!r}")
