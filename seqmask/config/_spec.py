"""The spec tables: how each key of each section is checked (kind, range, choices).

A key's default lives on its dataclass field (``_sections``); its row here says what a
value must be. A choice key has no row: :func:`_section_spec` builds its spec from the
field's ``Literal`` type. ``_SECTIONS`` ties each section name to its dataclass and table.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, get_origin, get_type_hints

from seqmask.config._choices import choices_of
from seqmask.config._sections import DataConfig, DetectConfig, InputConfig, ModelConfig, TrainConfig


@dataclass(frozen=True)
class _Range:
    """An interval of accepted numbers. Open ends exclude the bound itself."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            return False
        return True

    def __str__(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi}")
        return " and ".join(parts)


@dataclass(frozen=True)
class _Spec:
    """How one key is checked. Its default lives on the dataclass field."""

    kind: Literal["int", "float", "bool", "str", "path", "choice", "columns"]
    range: _Range | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    auto: bool = False  # the string "auto" is accepted too
    even: bool = False  # an int that must be even


# The keys that are not choices. A choice key has no row: `_section_spec` makes its spec
# from the field's Literal type, so its values are written only there.
_DATA_SPEC: dict[str, _Spec] = {
    "train": _Spec("path"),
    "validation": _Spec("path", nullable=True),
    "validation_split": _Spec("float", _Range(0, 1, hi_open=True)),
    "id_column": _Spec("str"),
    "step_column": _Spec("str", nullable=True),
    "feature_columns": _Spec("columns", nullable=True),
    "id_key": _Spec("str"),
    "values_key": _Spec("str"),
    "tokens_key": _Spec("str"),
    "max_len": _Spec("int", _Range(1), nullable=True),
    "window_shards": _Spec("int", _Range(1)),
}

_INPUT_SPEC: dict[str, _Spec] = {
    "min_count": _Spec("int", _Range(1)),
    "max_size": _Spec("int", _Range(3), nullable=True),
    "vocabulary": _Spec("path", nullable=True),
    "embedding_dim": _Spec("int", _Range(1)),
}

_MODEL_SPEC: dict[str, _Spec] = {
    "units": _Spec("int", _Range(1)),
    "num_layers": _Spec("int", _Range(1, 8)),
    "latent_dim": _Spec("int", _Range(1)),
    "decoder_units": _Spec("int", _Range(1), nullable=True),
    "bidirectional": _Spec("bool"),
    "input_stats": _Spec("bool"),
    "decoder_positions": _Spec("int", _Range(0), even=True),
    "dropout": _Spec("float", _Range(0, 1, hi_open=True)),
    "input_dropout": _Spec("float", _Range(0, 1, hi_open=True)),
    "input_noise": _Spec("float", _Range(0)),
}

_TRAIN_SPEC: dict[str, _Spec] = {
    "epochs": _Spec("int", _Range(1)),
    "batch_size": _Spec("int", _Range(1), auto=True),
    "learning_rate": _Spec("float", _Range(0, 1, lo_open=True)),
    "patience": _Spec("int", _Range(0)),
    "min_delta": _Spec("float", _Range(0)),
    "lr_patience": _Spec("int", _Range(0)),
    "lr_factor": _Spec("float", _Range(0, 1, lo_open=True, hi_open=True)),
    "min_learning_rate": _Spec("float", _Range(0)),
    "clip_norm": _Spec("float", _Range(0, lo_open=True), nullable=True),
    "weight_decay": _Spec("float", _Range(0)),
    "future_fraction": _Spec("float", _Range(0, 1, lo_open=True, hi_open=True)),
    # NumPy's legacy seeding, used under Keras' set_random_seed, takes 0 .. 2**32 - 1.
    "seed": _Spec("int", _Range(0, 2**32 - 1)),
    "cpu_threads": _Spec("int", _Range(1), nullable=True),
    "checkpoint_every_batches": _Spec("int", _Range(1), nullable=True),
    "replicas": _Spec("int", _Range(1), nullable=True),
    "worker_timeout": _Spec("float", _Range(4)),
    "startup_timeout": _Spec("float", _Range(1)),
}


_DETECT_SPEC: dict[str, _Spec] = {
    "top_fraction": _Spec("float", _Range(0, 1, lo_open=True)),
    "neighbors": _Spec("int", _Range(1)),
    "quantile": _Spec("float", _Range(0, 1, lo_open=True, hi_open=True)),
    "length_bins": _Spec("int", _Range(1, 64)),
}


def _section_spec(cls: type, rows: dict[str, _Spec]) -> dict[str, _Spec]:
    """Every key of `cls` in field order: its row in `rows`, or for a Literal field a
    choice spec holding the Literal's values. A field with both, or neither, is a bug."""
    hints = get_type_hints(cls)
    table = {}
    for f in fields(cls):
        hint = hints[f.name]
        literal = choices_of(hint) if get_origin(hint) is Literal else ()
        if bool(literal) == (f.name in rows):
            raise TypeError(f"{cls.__name__}.{f.name} needs a spec row or a Literal type, not both")
        table[f.name] = _Spec("choice", choices=literal) if literal else rows[f.name]
    return table


# Section name -> (its dataclass, its spec table). The order is the order of Config.
_SECTIONS: dict[str, tuple[type, dict[str, _Spec]]] = {
    "data": (DataConfig, _section_spec(DataConfig, _DATA_SPEC)),
    "input": (InputConfig, _section_spec(InputConfig, _INPUT_SPEC)),
    "model": (ModelConfig, _section_spec(ModelConfig, _MODEL_SPEC)),
    "train": (TrainConfig, _section_spec(TrainConfig, _TRAIN_SPEC)),
    "detect": (DetectConfig, _section_spec(DetectConfig, _DETECT_SPEC)),
}
