"""Tests for seqmask.config: defaults, every error kind, overrides, paths, round trip, fuzz."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqmask import config as config_module
from seqmask.config import (
    Config,
    DataConfig,
    Decoder,
    DetectConfig,
    Device,
    InputConfig,
    ModelConfig,
    Padding,
    TrainConfig,
    apply_overrides,
    apply_resume_overrides,
    check_choice,
    choices_of,
    config_from_dict,
    config_to_dict,
    load_config,
)
from seqmask.errors import ConfigError, SeqmaskDeprecationWarning

MINIMAL = {"data": {"train": "train.csv"}}

FULL_YAML = """\
data:
  train: data/train.csv
  validation: data/val.csv
  validation_split: 0          # an int for a float key
  format: csv
  id_column: seq
  step_column: t
  feature_columns: [a, b, c]
  id_key: name
  values_key: steps
  tokens_key: words
  max_len: 100
  padding: post
  truncating: none
  normalize: none
input:
  kind: tokens
  min_count: 2
  max_size: 1000
  vocabulary: null
  embedding_dim: 16
model:
  units: 128
  num_layers: 2
  latent_dim: 16
  decoder: remask
  decoder_units: 96
train:
  epochs: 50
  batch_size: 32
  learning_rate: 1e-3          # YAML 1.1 reads this as the string "1e-3"
  patience: 0
  min_delta: 0.001
  clip_norm: null
  seed: 7
  loss: last_step
  error: mae
  target: next_step
  device: cpu
  batching: pad_to_max
  checkpoint_every_batches: 500
"""


def with_(section: str, **values: Any) -> dict[str, Any]:
    """MINIMAL with `values` set in `section`."""
    raw = {"data": dict(MINIMAL["data"])}
    raw.setdefault(section, {}).update(values)
    return raw


def error_of(raw: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- defaults and schema


def test_dataclass_defaults_read_naturally() -> None:
    cfg = Config(DataConfig(train="x.csv"))
    assert cfg.input == InputConfig() and cfg.input.kind == "values"
    inp = cfg.input
    assert (inp.min_count, inp.max_size, inp.vocabulary, inp.embedding_dim) == (1, None, None, 32)
    assert (cfg.data.id_key, cfg.data.values_key, cfg.data.tokens_key) == ("id", "values", "tokens")
    assert cfg.model.units == 64
    assert cfg.model.decoder == "repeat"
    assert cfg.train.learning_rate == 0.002
    assert cfg.train.clip_norm == 1.0
    assert cfg.data.padding == "post"
    assert ModelConfig().latent_dim == 128
    assert ModelConfig().decoder_positions == 16
    assert TrainConfig().batch_size == "auto"
    assert TrainConfig().epochs == 200


def test_minimal_config_gets_every_default(tmp_path: Path) -> None:
    cfg = config_from_dict(MINIMAL, base_dir=tmp_path)
    assert cfg == Config(DataConfig(train=str(tmp_path / "train.csv")))


def test_dataclasses_are_frozen() -> None:
    cfg = config_from_dict(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.units = 3  # type: ignore[misc]
    assert dataclasses.replace(cfg.model, units=3).units == 3


def test_spec_tables_match_dataclasses() -> None:
    for name, (cls, spec) in config_module._SECTIONS.items():
        assert [f.name for f in dataclasses.fields(cls)] == list(spec), name
        hints = typing.get_type_hints(cls)
        for key, field_spec in spec.items():
            # A choice key is exactly a Literal field, and its choices are the Literal's values.
            is_literal = typing.get_origin(hints[key]) is typing.Literal
            assert (field_spec.kind == "choice") == is_literal, key
            assert field_spec.choices == (typing.get_args(hints[key]) if is_literal else ()), key
    assert [f.name for f in dataclasses.fields(Config)] == list(config_module._SECTIONS)


def test_a_field_needs_exactly_one_of_spec_row_and_literal_type() -> None:
    @dataclasses.dataclass(frozen=True)
    class Both:
        side: config_module.Padding = "post"

    @dataclasses.dataclass(frozen=True)
    class Neither:
        count: int = 1

    with pytest.raises(TypeError, match="Both.side needs a spec row or a Literal type, not both"):
        config_module._section_spec(Both, {"side": config_module._Spec("str")})
    with pytest.raises(TypeError, match="Neither.count"):
        config_module._section_spec(Neither, {})
    assert config_module._section_spec(Both, {})["side"].choices == ("post", "pre")


def test_check_choice() -> None:
    assert choices_of(Padding) == ("post", "pre")
    assert check_choice("padding", "pre", Padding) == "pre"
    with pytest.raises(ValueError, match=r"^padding must be one of \('post', 'pre'\), got 'middle'$"):
        check_choice("padding", "middle", Padding)
    with pytest.raises(ValueError, match=r"^batching must be one of \('bucket', 'pad_to_max'\), got None$"):
        check_choice("batching", None, config_module.Batching)


def test_defaults_pass_their_own_checks() -> None:
    # Every default must be a value the parser itself accepts unchanged.
    cfg = Config(DataConfig(train=os.path.abspath("x.csv")))
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_module_imports_without_tensorflow() -> None:
    code = "import sys, seqmask.config; assert not {'tensorflow', 'keras', 'numpy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- a full config


def test_full_config_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL_YAML))
    d, m, t = cfg.data, cfg.model, cfg.train
    assert d.train == str(tmp_path / "data" / "train.csv")
    assert d.validation == str(tmp_path / "data" / "val.csv")
    assert d.validation_split == 0.0 and isinstance(d.validation_split, float)
    assert (d.format, d.id_column, d.step_column) == ("csv", "seq", "t")
    assert d.feature_columns == ("a", "b", "c")
    assert (d.id_key, d.values_key, d.tokens_key) == ("name", "steps", "words")
    assert (d.max_len, d.padding, d.truncating, d.normalize) == (100, "post", "none", "none")
    assert cfg.input == InputConfig(kind="tokens", min_count=2, max_size=1000, vocabulary=None, embedding_dim=16)
    assert m == ModelConfig(units=128, num_layers=2, latent_dim=16, decoder="remask", decoder_units=96)
    assert t == TrainConfig(
        epochs=50,
        batch_size=32,
        learning_rate=0.001,
        patience=0,
        min_delta=0.001,
        clip_norm=None,
        seed=7,
        loss="last_step",
        error="mae",
        target="next_step",
        device="cpu",
        batching="pad_to_max",
        checkpoint_every_batches=500,
    )


def test_empty_sections_mean_defaults() -> None:
    cfg = config_from_dict({"data": {"train": "a"}, "model": None, "train": None})
    assert cfg.model == ModelConfig() and cfg.train == TrainConfig()


# --------------------------------------------------------------------------- error messages


def test_unknown_key_did_you_mean() -> None:
    message = error_of(with_("model", unit=3), source="configs/x.yaml")
    assert message == "unknown key 'model.unit' in configs/x.yaml; did you mean 'model.units'?"


def test_unknown_key_lists_valid_keys_when_nothing_is_close() -> None:
    message = error_of(with_("model", zzzz=3))
    assert "unknown key 'model.zzzz'" in message
    assert "did you mean" not in message
    assert "'units', 'num_layers', 'latent_dim', 'decoder', 'decoder_units'" in message


def test_unknown_key_in_the_wrong_section_points_to_the_right_one() -> None:
    assert "did you mean 'model.units'?" in error_of(with_("train", units=3))
    assert "did you mean 'train.epochs'?" in error_of({**MINIMAL, "epochs": 3})


def test_unknown_top_level_key() -> None:
    message = error_of({**MINIMAL, "modle": {}}, source="c.yaml")
    assert message == "unknown key 'modle' in c.yaml; did you mean 'model'?"


def test_unknown_non_string_key() -> None:
    assert "unknown key 'model.1'" in error_of({**MINIMAL, "model": {1: 2}})


@pytest.mark.parametrize("raw", [{}, {"data": {}}, {"data": None}, {"model": {"units": 3}}])
def test_missing_required_key(raw: Any) -> None:
    assert error_of(raw, source="c.yaml") == "missing required key 'data.train' in c.yaml"


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "batch_size", "64x", "'train.batch_size' must be an integer or \"auto\", got '64x' (str)"),
        ("train", "batch_size", True, "'train.batch_size' must be an integer or \"auto\", got True (bool)"),
        (
            "train",
            "batch_size",
            "atuo",
            "'train.batch_size' must be an integer or \"auto\", got 'atuo' (str); did you mean 'auto'?",
        ),
        ("model", "decoder_positions", 3, "'model.decoder_positions' must be an even number, got 3; did you mean 4?"),
        ("train", "future_fraction", 1.0, "'train.future_fraction' must be > 0 and < 1, got 1.0"),
        ("train", "epochs", 10.0, "'train.epochs' must be an integer, got 10.0 (float)"),
        ("model", "units", None, "'model.units' must be an integer, got null"),
        ("model", "decoder_units", "x", "'model.decoder_units' must be an integer or null, got 'x' (str)"),
        ("train", "learning_rate", "fast", "'train.learning_rate' must be a number, got 'fast' (str)"),
        ("train", "learning_rate", False, "'train.learning_rate' must be a number, got False (bool)"),
        ("train", "min_delta", [1], "'train.min_delta' must be a number, got [1] (list)"),
        ("train", "min_delta", float("inf"), "'train.min_delta' must be a finite number, got inf"),
        ("train", "min_delta", "nan", "'train.min_delta' must be a finite number, got 'nan'"),
        ("train", "min_delta", 10**400, "'train.min_delta' must be a finite number"),
        ("data", "id_column", "", "'data.id_column' must be a non-empty string, got '' (str)"),
        ("data", "id_column", 3, "'data.id_column' must be a non-empty string, got 3 (int)"),
        ("data", "train", None, "'data.train' must be a file path (a non-empty string), got null"),
        ("data", "validation", 5, "'data.validation' must be a file path (a non-empty string) or null"),
        ("data", "train", "a\0b", "'data.train' must be a file path, got 'a\\x00b', which has a NUL"),
        ("data", "feature_columns", [], "'data.feature_columns' must be a non-empty list of column names"),
        ("data", "feature_columns", "a", "'data.feature_columns' must be a non-empty list of column names"),
        ("data", "feature_columns", ["a", 1], "but it holds 1 (int)"),
        ("data", "feature_columns", ["a", "b", "a"], "'data.feature_columns' lists 'a' more than once"),
    ],
)
def test_wrong_type(section: str, key: str, value: Any, expected: str) -> None:
    assert expected in error_of(with_(section, **{key: value}))


def test_long_values_are_shortened_in_messages() -> None:
    message = error_of(with_("train", batch_size="x" * 10_000))
    assert len(message) < 200 and "'train.batch_size' must be an integer" in message


def test_float_keys_accept_ints_and_float_strings() -> None:
    cfg = config_from_dict(with_("train", learning_rate="1e-3", min_delta=1, clip_norm=" 2.5 "))
    assert cfg.train.learning_rate == 0.001
    assert cfg.train.min_delta == 1.0 and isinstance(cfg.train.min_delta, float)
    assert cfg.train.clip_norm == 2.5


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        (
            "model",
            "decoder",
            "remsk",
            "'model.decoder' must be one of 'repeat', 'remask', 'crop', got 'remsk'; did you mean 'remask'?",
        ),
        (
            "train",
            "device",
            "GPU",
            "'train.device' must be one of 'auto', 'cpu', 'gpu', got 'GPU'; did you mean 'gpu'?",
        ),
        ("model", "decoder", "zzzzz", "'model.decoder' must be one of 'repeat', 'remask', 'crop', got 'zzzzz'"),
        ("data", "padding", 3, "'data.padding' must be one of 'post', 'pre', got 3 (int)"),
        ("data", "truncating", None, "'data.truncating' must be one of 'post', 'pre', 'none', got null"),
    ],
)
def test_choice(section: str, key: str, value: Any, expected: str) -> None:
    assert error_of(with_(section, **{key: value})) == expected


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "learning_rate", 0, "'train.learning_rate' must be > 0 and <= 1, got 0.0"),
        ("train", "learning_rate", 1.5, "'train.learning_rate' must be > 0 and <= 1, got 1.5"),
        ("data", "validation_split", 1, "'data.validation_split' must be >= 0 and < 1, got 1.0"),
        ("data", "validation_split", -0.1, "'data.validation_split' must be >= 0 and < 1, got -0.1"),
        ("model", "num_layers", 9, "'model.num_layers' must be >= 1 and <= 8, got 9"),
        ("model", "units", 0, "'model.units' must be >= 1, got 0"),
        ("data", "max_len", 0, "'data.max_len' must be >= 1, got 0"),
        ("train", "patience", -1, "'train.patience' must be >= 0, got -1"),
        ("train", "clip_norm", 0, "'train.clip_norm' must be > 0, got 0.0"),
        ("train", "seed", 2**32, "'train.seed' must be >= 0 and <= 4294967295, got 4294967296"),
        ("train", "checkpoint_every_batches", 0, "'train.checkpoint_every_batches' must be >= 1, got 0"),
    ],
)
def test_out_of_range(section: str, key: str, value: Any, expected: str) -> None:
    assert error_of(with_(section, **{key: value})) == expected


def test_range_edges_are_accepted() -> None:
    cfg = config_from_dict(
        {
            "data": {"train": "a", "validation_split": 0, "max_len": 1},
            "model": {"num_layers": 8, "units": 1},
            "train": {"learning_rate": 1, "patience": 0, "seed": 2**32 - 1},
        }
    )
    assert cfg.data.validation_split == 0.0 and cfg.train.learning_rate == 1.0


@pytest.mark.parametrize("value", [[1, 2], "abc", 3, True])
def test_section_that_is_not_a_mapping(value: Any) -> None:
    message = error_of({**MINIMAL, "model": value}, source="c.yaml")
    assert "section 'model' in c.yaml must be a mapping" in message


# --------------------------------------------------------------------------- file errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        (
            "- a\n- b\n",
            "must hold a mapping with the sections 'data', 'input', 'model', 'train' and 'detect', "
            "got ['a', 'b'] (list)",
        ),
        ("42\n", "got 42 (int)"),
        ("just text\n", "got 'just text' (str)"),
        ("data:\n  train: a\nmodel:\n  units: [1\n", "invalid YAML in"),
        ("data:\n  train: a\n   bad: indent\n", "at line 3"),
        ("data:\n  train: 2020-13-45\n", "invalid YAML in"),
        ("data:\n  train: !!int abc\n", "invalid YAML in"),
        ("data: !!timestamp nope\n", "invalid YAML in"),
        ("data:\n  train: !!python/object/apply:os.system ['echo hi']\n", "invalid YAML in"),
        ("[" * 1500 + "]" * 1500, "invalid YAML in"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_missing_file_directory_and_non_utf8(tmp_path: Path) -> None:
    for path, expected in [
        (tmp_path / "nope.yaml", "does not exist"),
        (tmp_path, "is a directory"),
        (tmp_path / "nul\0.yaml", "cannot read"),
    ]:
        with pytest.raises(ConfigError, match=expected) as info:
            load_config(path)
        assert str(path) in str(info.value)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"data:\n  train: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_config(binary)
    assert str(binary) in str(info.value)


def test_unknown_key_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: a\nmodel:\n  unit: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"unknown key 'model.unit' in {path}; did you mean 'model.units'?"


# --------------------------------------------------------------------------- combinations


def test_gpu_needs_post_padding() -> None:
    raw = {"data": {"train": "a", "padding": "pre"}, "model": {"decoder": "remask"}, "train": {"device": "gpu"}}
    assert error_of(raw) == (
        "'data.padding' is 'pre' but 'train.device' is 'gpu': "
        "the cuDNN LSTM kernel needs post padding; use padding: post"
    )


@pytest.mark.parametrize("decoder", ["repeat", "crop"])
def test_repeat_and_crop_decoders_need_post_padding(decoder: Decoder) -> None:
    raw = {"data": {"train": "a", "padding": "pre"}, "model": {"decoder": decoder}}
    message = error_of(raw)
    assert f"'data.padding' is 'pre' but 'model.decoder' is {decoder!r}" in message
    assert "padded steps, which come first" in message
    assert "use padding: post or decoder: remask" in message


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_pre_padding_is_fine_with_remask_off_gpu(device: Device) -> None:
    raw = {"data": {"train": "a", "padding": "pre"}, "model": {"decoder": "remask"}, "train": {"device": device}}
    assert config_from_dict(raw).data.padding == "pre"


def test_input_section_values_and_errors() -> None:
    cfg = config_from_dict(with_("input", kind="tokens", min_count=3, max_size=3, embedding_dim=1))
    assert (cfg.input.kind, cfg.input.min_count, cfg.input.max_size, cfg.input.embedding_dim) == ("tokens", 3, 3, 1)
    assert error_of(with_("input", kind="token")) == (
        "'input.kind' must be one of 'values', 'tokens', got 'token'; did you mean 'tokens'?"
    )
    assert error_of(with_("input", min_count=0)) == "'input.min_count' must be >= 1, got 0"
    assert error_of(with_("input", max_size=2)) == "'input.max_size' must be >= 3, got 2"
    assert error_of(with_("input", embedding_dim=0)) == "'input.embedding_dim' must be >= 1, got 0"
    assert "'input.embedding_dim' must be an integer, got 1.5 (float)" in error_of(with_("input", embedding_dim=1.5))
    message = error_of(with_("input", vocabulary=3))
    assert "'input.vocabulary' must be a file path (a non-empty string) or null" in message
    assert "did you mean 'input.min_count'?" in error_of(with_("input", mincount=2))
    assert "did you mean 'input.embedding_dim'?" in error_of(with_("model", embedding_dim=8))
    assert "section 'input' in <config> must be a mapping" in error_of({**MINIMAL, "input": [1]})


def test_input_vocabulary_resolves_against_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "data:\n  train: ../data/t.txt\ninput:\n  kind: tokens\n  vocabulary: ../vocab.txt\n"
    path = write(tmp_path / "configs", text)
    monkeypatch.chdir(tmp_path / "configs" / "..")
    cfg = load_config(path)
    assert cfg.input.vocabulary == str(tmp_path / "vocab.txt")
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_input_vocabulary_cross_checks() -> None:
    assert "'input.vocabulary' is set but 'input.kind' is 'values'" in error_of(with_("input", vocabulary="v.txt"))
    message = error_of(with_("input", kind="tokens", vocabulary="v.txt", min_count=2))
    assert message.startswith("'input.min_count' is set but so is 'input.vocabulary'")
    message = error_of(with_("input", kind="tokens", vocabulary="v.txt", max_size=10))
    assert message.startswith("'input.max_size' is set but so is 'input.vocabulary'")
    # normalization is simply not applied to tokens: no error
    cfg = config_from_dict({"data": {"train": "t.txt", "normalize": "standard"}, "input": {"kind": "tokens"}})
    assert cfg.data.normalize == "standard"


def test_jsonl_keys() -> None:
    cfg = config_from_dict(with_("data", id_key="name", values_key="x", tokens_key="w"))
    assert (cfg.data.id_key, cfg.data.values_key, cfg.data.tokens_key) == ("name", "x", "w")
    assert "'data.id_key' must be a non-empty string, got '' (str)" in error_of(with_("data", id_key=""))
    assert error_of(with_("data", values_key="id")).startswith("'data.id_key' and 'data.values_key' are both 'id'")
    message = error_of(with_("data", tokens_key="values"))
    assert message.startswith("'data.values_key' and 'data.tokens_key' are both 'values'")


def test_step_column_must_differ_from_id_column() -> None:
    message = error_of(with_("data", id_column="k", step_column="k"))
    assert "'data.step_column' and 'data.id_column' are both 'k'" in message


# --------------------------------------------------------------------------- overrides


def test_overrides_set_values_and_leave_the_input_alone() -> None:
    raw = {"data": {"train": "a"}, "model": {"units": 8}}
    out = apply_overrides(
        raw,
        [
            "train.learning_rate=0.01",
            "model.decoder=crop",
            "data.max_len=null",
            "data.feature_columns=[x, y]",
            "model.units = 16",
            "data.id_column=a=b",
        ],
    )
    assert raw == {"data": {"train": "a"}, "model": {"units": 8}}
    assert out["train"] == {"learning_rate": 0.01}
    assert out["model"] == {"units": 16, "decoder": "crop"}
    assert out["data"] == {"train": "a", "max_len": None, "feature_columns": ["x", "y"], "id_column": "a=b"}
    cfg = config_from_dict(out)
    assert cfg.train.learning_rate == 0.01 and cfg.model.decoder == "crop"


def test_overrides_through_load_config(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: a.csv\n")
    cfg = load_config(path, ["train.learning_rate=1e-4", "data.train=other.csv"])
    assert cfg.train.learning_rate == 1e-4
    assert cfg.data.train == str(tmp_path / "other.csv")
    assert load_config(path, "model.units=5").model.units == 5  # a bare string is one override


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.learning_rate", "--set 'train.learning_rate' must look like section.key=value"),
        ("model.unit=3", "unknown key 'model.unit' in --set 'model.unit=3'; did you mean 'model.units'?"),
        ("modle.units=3", "unknown key 'modle' in --set 'modle.units=3'; did you mean 'model'?"),
        ("model=3", "--set 'model=3' must set one key inside a section"),
        ("model.units.x=3", "must set one key inside a section, like 'model.units', got 'model.units.x'"),
        ("=3", "unknown key '' in --set '=3'"),
        ("model.units=[1", "invalid YAML in --set 'model.units=[1'"),
    ],
)
def test_bad_overrides(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(dict(MINIMAL), [override])
    assert expected in str(info.value)


def test_override_values_get_the_usual_checks(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: a.csv\n")
    expected = (
        r"^'train\.batch_size' must be an integer or \"auto\", got '64x' \(str\) "
        r"\(from --set 'train\.batch_size=64x'\)$"
    )
    with pytest.raises(ConfigError, match=expected):
        load_config(path, ["train.batch_size=64x"])
    with pytest.raises(ConfigError, match="did you mean 'remask'"):
        load_config(path, ["model.decoder=remsk"])


def test_override_into_a_section_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="section 'model' is not a mapping"):
        apply_overrides({**MINIMAL, "model": [1]}, ["model.units=3"])


# --------------------------------------------------------------------------- renamed keys

OLD, NEW = "train.checkpoint_every_steps", "train.checkpoint_every_batches"
RENAMED = rf"'{OLD}' in .* is deprecated: it is now '{NEW}'"
SAVED_BEFORE_RENAME = FIXTURES / "run_before_lengths" / "config.yaml"


def test_renamed_keys_table_maps_old_names_to_real_keys() -> None:
    for old, new in config_module.RENAMED_KEYS.items():
        (old_section, old_key), (new_section, new_key) = old.split("."), new.split(".")
        assert old_key not in config_module._SECTIONS[old_section][1], old
        assert new_key in config_module._SECTIONS[new_section][1], new


def test_an_old_key_in_a_file_warns_naming_the_new_key(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: a.csv\ntrain:\n  checkpoint_every_steps: 5\n")
    with pytest.warns(SeqmaskDeprecationWarning, match=RENAMED) as record:
        cfg = load_config(path)
    assert len(record) == 1 and str(path) in str(record[0].message)
    assert cfg.train.checkpoint_every_batches == 5
    with pytest.warns(SeqmaskDeprecationWarning, match=RENAMED):  # --set under the new name replaces it
        assert load_config(path, [f"{NEW}=6"]).train.checkpoint_every_batches == 6


def test_an_old_key_in_set_warns_naming_the_new_key(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: a.csv\ntrain:\n  checkpoint_every_batches: 5\n")
    with pytest.warns(SeqmaskDeprecationWarning, match=RENAMED) as record:
        cfg = load_config(path, ["train.checkpoint_every_steps=7"])
    assert len(record) == 1 and f"--set '{OLD}=7'" in str(record[0].message)
    assert cfg.train.checkpoint_every_batches == 7
    with pytest.warns(SeqmaskDeprecationWarning, match=RENAMED):
        out = apply_overrides(dict(MINIMAL), [f"{OLD}=null"])
    assert out["train"] == {"checkpoint_every_batches": None}


def test_the_new_key_alone_is_silent(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: a.csv\ntrain:\n  checkpoint_every_batches: 5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(path, [f"{NEW}=6"]).train.checkpoint_every_batches == 6


def test_a_config_saved_before_the_rename_loads_silently() -> None:
    raw = yaml.safe_load(SAVED_BEFORE_RENAME.read_text(encoding="utf-8"))
    assert "checkpoint_every_steps" in raw["train"]  # the fixture really has the old name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = config_from_dict(raw, source=str(SAVED_BEFORE_RENAME))
        assert cfg.train.checkpoint_every_batches is None
        assert config_from_dict(with_("train", checkpoint_every_steps=4)).train.checkpoint_every_batches == 4
    assert "checkpoint_every_batches" in config_to_dict(cfg)["train"]  # saved again under the new name
    assert "checkpoint_every_steps" not in config_to_dict(cfg)["train"]


def test_both_names_is_an_error_naming_both(tmp_path: Path) -> None:
    both = f"'{OLD}' and '{NEW}' are both set in"
    assert error_of(with_("train", checkpoint_every_steps=1, checkpoint_every_batches=2), source="c.yaml") == (
        f"{both} c.yaml; '{OLD}' is the old name of '{NEW}': remove it"
    )
    text = "data:\n  train: a.csv\ntrain:\n  checkpoint_every_steps: 1\n  checkpoint_every_batches: 2\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{both} {path};"):
        load_config(path)
    with pytest.warns(SeqmaskDeprecationWarning), pytest.raises(ConfigError, match=f"^{both} the --set overrides;"):
        apply_overrides(dict(MINIMAL), [f"{NEW}=1", f"{OLD}=2"])


def test_a_bad_value_under_the_old_name_blames_the_override(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: a.csv\n")
    expected = f"^'{NEW}' must be >= 1, got 0 \\(from --set '{OLD}=0'\\)$"
    with pytest.warns(SeqmaskDeprecationWarning), pytest.raises(ConfigError, match=expected):
        load_config(path, [f"{OLD}=0"])


def test_an_old_name_in_the_wrong_section_points_to_the_new_key() -> None:
    assert error_of(with_("model", checkpoint_every_steps=3)).endswith(f"did you mean '{NEW}'?")


# --------------------------------------------------------------------------- resume overrides


def _saved(tmp_path: Path) -> dict[str, Any]:
    """A run's saved config, as config_to_dict writes it."""
    return config_to_dict(config_from_dict(with_("train", epochs=10, patience=3), base_dir=tmp_path))


def test_resume_overridable_keys_exist() -> None:
    for key_path in config_module.RESUME_OVERRIDABLE:
        section, key = key_path.split(".")
        assert key in config_module._SECTIONS[section][1], key_path


def test_resume_overrides_set_the_allowed_keys(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    allowed = [
        "train.epochs=50",
        "train.patience=0",
        "train.min_delta=0.01",
        "train.lr_patience=4",
        "train.min_learning_rate=1e-6",
        "train.checkpoint_every_batches=20",
        "train.distribute=multi_worker",
        "train.replicas=2",
        "train.worker_timeout=30",
        "train.startup_timeout=900",
        "data.streaming=on",
        "detect.score=mahalanobis",
        "detect.aggregate=max",
        "detect.top_fraction=0.2",
        "detect.neighbors=3",
        "detect.quantile=0.95",
        "detect.length_bins=1",
    ]
    assert len(allowed) == len(config_module.RESUME_OVERRIDABLE)
    cfg = apply_resume_overrides(saved, allowed, source="run/config.yaml")
    expected = dataclasses.replace(
        config_from_dict(saved).train,
        epochs=50,
        patience=0,
        min_delta=0.01,
        lr_patience=4,
        min_learning_rate=1e-6,
        checkpoint_every_batches=20,
        distribute="multi_worker",
        replicas=2,
        worker_timeout=30.0,
        startup_timeout=900.0,
    )
    assert cfg.train == expected
    assert cfg.detect == DetectConfig("mahalanobis", "max", 0.2, 3, 0.95, 1)
    assert cfg.data == dataclasses.replace(config_from_dict(saved).data, streaming="on")
    assert (cfg.input, cfg.model) == (InputConfig(), ModelConfig())
    assert apply_resume_overrides(saved, []) == config_from_dict(saved)
    assert apply_resume_overrides(saved, "train.epochs=11").train.epochs == 11  # a bare string is one override


@pytest.mark.parametrize("override", ["train.batch_size=64", "model.units=8", "data.max_len=5", "train.seed=1"])
def test_resume_refuses_other_keys_listing_the_allowed_ones(tmp_path: Path, override: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_resume_overrides(_saved(tmp_path), ["train.epochs=50", override], source="run/config.yaml")
    message = str(info.value)
    assert message.startswith(f"--set {override!r} cannot be used with --resume")
    assert all(repr(key) in message for key in config_module.RESUME_OVERRIDABLE)


def test_resume_overrides_are_checked_like_set(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    with pytest.raises(ConfigError, match=r"^'train.epochs' must be >= 1, got 0 \(from --set 'train.epochs=0'\)$"):
        apply_resume_overrides(saved, ["train.epochs=0"], source="run/config.yaml")
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        apply_resume_overrides(saved, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="^run/config.yaml is empty"):
        apply_resume_overrides(None, ["train.epochs=3"], source="run/config.yaml")


def test_resume_a_run_saved_before_the_rename(tmp_path: Path) -> None:
    saved = yaml.safe_load(SAVED_BEFORE_RENAME.read_text(encoding="utf-8"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the saved old name is not the user's: no warning
        cfg = apply_resume_overrides(saved, [f"{NEW}=3", "train.epochs=9"], source="run/config.yaml")
    assert (cfg.train.checkpoint_every_batches, cfg.train.epochs) == (3, 9)
    with pytest.warns(SeqmaskDeprecationWarning, match=RENAMED):  # the user's --set is
        assert apply_resume_overrides(saved, [f"{OLD}=4"]).train.checkpoint_every_batches == 4


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "configs", "data:\n  train: ../data/a.csv\n  validation: b.csv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path)
    assert cfg.data.train == str(tmp_path / "data" / "a.csv")
    assert cfg.data.validation == str(tmp_path / "configs" / "b.csv")


def test_relative_config_path_still_resolves_against_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "configs", "data:\n  train: a.csv\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/config.yaml").data.train == str(tmp_path / "configs" / "a.csv")


def test_absolute_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = config_from_dict({"data": {"train": "/abs/a.csv", "validation": "~/v.csv"}}, base_dir=tmp_path)
    assert cfg.data.train == "/abs/a.csv"
    assert cfg.data.validation == str(tmp_path / "home" / "v.csv")


def test_no_base_dir_means_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_from_dict(MINIMAL).data.train == str(tmp_path / "train.csv")


# --------------------------------------------------------------------------- round trip


def test_round_trip_through_dict_and_yaml(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL_YAML))
    plain = config_to_dict(cfg)
    assert plain["data"]["feature_columns"] == ["a", "b", "c"]
    assert config_from_dict(plain) == cfg
    # A saved config is self-contained: loaded from another directory it is the same config.
    saved = write(tmp_path / "runs" / "r1", yaml.safe_dump(plain), name="saved.yaml")
    assert load_config(saved) == cfg


def test_config_to_dict_writes_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plain = config_to_dict(Config(DataConfig(train="rel.csv")))
    assert plain["data"]["train"] == str(tmp_path / "rel.csv")
    assert plain["data"]["validation"] is None
    assert set(plain) == {"data", "input", "model", "train", "detect"}
    assert plain["input"] == {
        "kind": "values",
        "min_count": 1,
        "max_size": None,
        "vocabulary": None,
        "embedding_dim": 32,
    }


# --------------------------------------------------------------------------- fuzz

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["1e-3", "post", "pre", "gpu", "remask", "crop", "nan", "-inf", "", " "])
)
_all_keys = sorted({key for _, spec in config_module._SECTIONS.values() for key in spec} | set(config_module._SECTIONS))
_keys = st.sampled_from(_all_keys) | st.text(max_size=8) | st.integers() | st.booleans() | st.none()
_yamlish = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=20,
)

_VALID = yaml.safe_load(FULL_YAML)
_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _config_or_config_error(call: Callable[[], object]) -> None:
    try:
        result = call()
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(result, Config)


@_FUZZ
@given(_yamlish)
def test_fuzz_arbitrary_data(raw: Any) -> None:
    _config_or_config_error(lambda: config_from_dict(raw))


@_FUZZ
@given(st.data())
def test_fuzz_mutations_of_a_valid_config(data: st.DataObject) -> None:
    raw = {name: dict(section) for name, section in _VALID.items()}
    for _ in range(data.draw(st.integers(1, 3))):
        section = data.draw(st.sampled_from(sorted(raw) + ["extra"]))
        action = data.draw(st.sampled_from(["set", "delete", "replace_section"]))
        if action == "replace_section":
            raw[section] = data.draw(_yamlish)
        elif isinstance(raw.get(section), dict):
            key = data.draw(st.sampled_from(sorted(raw[section], key=str) or ["units"]) | _keys)
            if action == "set":
                raw[section][key] = data.draw(_yamlish)
            else:
                raw[section].pop(key, None)
    _config_or_config_error(lambda: config_from_dict(raw))


@_FUZZ
@given(st.data())
def test_fuzz_overrides(data: st.DataObject) -> None:
    overrides = data.draw(
        st.lists(
            st.builds(
                lambda k, v: f"{k}={v}",
                st.sampled_from([f"{s}.{k}" for s, (_, spec) in config_module._SECTIONS.items() for k in spec])
                | st.text(max_size=10),
                st.text(max_size=10)
                | st.builds(lambda v: yaml.safe_dump(v, default_flow_style=True).strip(), _yamlish),
            )
            | st.text(max_size=10),
            max_size=3,
        )
    )
    _config_or_config_error(lambda: config_from_dict(apply_overrides(_VALID, overrides)))


@_FUZZ
@given(text=st.text(max_size=200) | st.builds(yaml.safe_dump, _yamlish))
def test_fuzz_file_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _config_or_config_error(lambda: load_config(path))
