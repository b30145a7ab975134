"""seqmask.data.readers, JSONL: happy paths, every named error, and fuzzing."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from readers_support import BAD_BYTES, FUZZ, check_outcome, error, write

from seqmask.data.readers import read_sequences


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# -- happy paths -----------------------------------------------------------------------


def test_values_ids_and_order_kept(tmp_path):
    p = write(
        tmp_path / "x.jsonl",
        jsonl(
            {"id": "b", "values": [[1, 2], [3, 4.5]], "label": "ignored"},
            {"id": 7, "values": [[5, 6]]},
            {"id": "a", "values": [[-1e-3, 2e10]]},
        ),
    )
    s = read_sequences(p)
    assert s.source == str(p)
    assert s.ids.tolist() == ["b", "7", "a"]
    assert s.lengths.tolist() == [2, 1, 1]
    assert s.values.dtype == np.float32
    assert s.values.tolist() == [[1, 2], [3, 4.5], [5, 6], [np.float32(-1e-3), 2e10]]


def test_flat_values_are_one_feature(tmp_path):
    s = read_sequences(write(tmp_path / "x.jsonl", jsonl({"id": "a", "values": [1, 2.5, 3]})))
    assert s.values.shape == (3, 1) and s.values[:, 0].tolist() == [1, 2.5, 3]


def test_tokens_strings_and_ints(tmp_path):
    p = write(
        tmp_path / "x.jsonl",
        jsonl(
            {"id": "s1", "tokens": ["the", "cat", "sat"]},
            {"id": "s2", "tokens": [12, "x", 0]},
            {"id": "s3", "tokens": [5]},
        ),
    )
    s = read_sequences(p)
    assert s.is_tokens and s.values.ndim == 1
    assert s.values.tolist() == ["the", "cat", "sat", "12", "x", "0", "5"]
    assert s.lengths.tolist() == [3, 3, 1]
    assert s.ids.tolist() == ["s1", "s2", "s3"]


def test_custom_keys(tmp_path):
    p = write(tmp_path / "x.jsonl", jsonl({"name": "q", "seq": [[1], [2]]}, {"name": "r", "seq": [[3]]}))
    s = read_sequences(p, id_key="name", values_key="seq")
    assert s.ids.tolist() == ["q", "r"] and s.lengths.tolist() == [2, 1]
    p = write(tmp_path / "t.jsonl", jsonl({"k": 1, "words": ["a", "b"]}))
    assert read_sequences(p, id_key="k", tokens_key="words").values.tolist() == ["a", "b"]
    assert "missing key 'id'" in error(p)


def test_blank_lines_crlf_bom_and_gzip(tmp_path):
    content = '\ufeff{"id": "a", "values": [1]}\r\n\r\n   \n{"id": "b", "values": [2]}'
    s = read_sequences(write(tmp_path / "x.jsonl", content.encode("utf-8")))
    assert s.ids.tolist() == ["a", "b"]
    p = write(tmp_path / "x.jsonl.gz", gzip.compress(jsonl({"id": "a", "values": [[1, 2]]}).encode()))
    assert read_sequences(p).values.tolist() == [[1, 2]]
    assert "gzip" in error(write(tmp_path / "y.jsonl.gz", b"\x1f\x8b\x08\x00junk"))


def test_unicode_ids_and_tokens(tmp_path):
    p = write(tmp_path / "x.jsonl", jsonl({"id": "été", "tokens": ["naïve", "日本", "a b"]}))
    s = read_sequences(p)
    assert s.ids.tolist() == ["été"] and s.values.tolist() == ["naïve", "日本", "a b"]


# -- errors: each names the file and the line -------------------------------------------

R = '{"id": "a", "values": [[1, 2]]}\n'


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", ": no sequences"),
        ("\n  \n", ": no sequences"),
        (R + '{"id": "b", "values": [[1, 2]]\n', ", line 2: invalid JSON"),
        (R + "\n" + '{"id": "b" "values": 1}\n', ", line 3: invalid JSON (Expecting ',' delimiter at column 12)"),
        (R + "[1, 2]\n", ", line 2: expected a JSON object {...} per line, got a list"),
        ("null\n", ", line 1: expected a JSON object {...} per line, got null"),
        ('"text"\n', ", line 1: expected a JSON object"),
        ('{"values": [1]}\n', ", line 1: missing key 'id'"),
        ('{"id": "a"}\n', ", line 1: missing key 'values' (or 'tokens' for token sequences)"),
        ('{"id": "a", "values": [1], "tokens": ["x"]}\n', ", line 1: has both 'values' and 'tokens'"),
        ('{"id": null, "values": [1]}\n', ", line 1: 'id' must be a string or an integer, got null"),
        ('{"id": 1.5, "values": [1]}\n', ", line 1: 'id' must be a string or an integer, got the number 1.5"),
        ('{"id": true, "values": [1]}\n', ", line 1: 'id' must be a string or an integer, got true"),
        ('{"id": ["a"], "values": [1]}\n', ", line 1: 'id' must be a string or an integer, got a list"),
        ('{"id": "", "values": [1]}\n', ", line 1: 'id' is empty"),
        ('{"id": "a\\u0000", "values": [1]}\n', ", line 1: 'id' contains a NUL character"),
        ('{"id": "\\udc80", "values": [1]}\n', ", line 1: 'id' is not valid Unicode text"),
        (R + R, ", line 2: id 'a' appears more than once (also on line 1)"),
        ('{"id": 1, "values": [1]}\n{"id": "1", "values": [1]}\n', ", line 2: id '1' appears more than once"),
        ('{"id": "a", "values": []}\n', ", line 1: sequence 'a' is empty ('values' is [])"),
        ('{"id": "a", "tokens": []}\n', ", line 1: sequence 'a' is empty ('tokens' is [])"),
        ('{"id": "a", "values": null}\n', ", line 1: sequence 'a': 'values' must be a list of steps, got null"),
        (
            '{"id": "a", "values": {"x": 1}}\n',
            ", line 1: sequence 'a': 'values' must be a list of steps, got an object",
        ),
        ('{"id": "a", "values": 3}\n', ", line 1: sequence 'a': 'values' must be a list of steps, got the number 3"),
        ('{"id": "a", "values": [[1, 2], [3]]}\n', ", line 1: sequence 'a': step 1 has 1 features but step 0 has 2"),
        ('{"id": "a", "values": [[], []]}\n', ", line 1: sequence 'a': step 0 is an empty list"),
        (
            '{"id": "a", "values": [[1, "2"]]}\n',
            ", line 1: sequence 'a': step 0, feature 1 is the string '2', not a number",
        ),
        ('{"id": "a", "values": [[1], [null]]}\n', ", line 1: sequence 'a': step 1, feature 0 is null, not a number"),
        ('{"id": "a", "values": [[1], [false]]}\n', ", line 1: sequence 'a': step 1, feature 0 is false, not a number"),
        (
            '{"id": "a", "values": [[{"x": 1}]]}\n',
            ", line 1: sequence 'a': step 0, feature 0 is an object, not a number",
        ),
        ('{"id": "a", "values": [[[1]]]}\n', ", line 1: sequence 'a': step 0, feature 0 is a list: nested too deep"),
        ('{"id": "a", "values": [1, "x"]}\n', ", line 1: sequence 'a': step 1 is the string 'x', not a number"),
        ('{"id": "a", "values": [1, null]}\n', ", line 1: sequence 'a': step 1 is null"),
        ('{"id": "a", "values": [1, [2]]}\n', ", line 1: sequence 'a': 'values' mixes numbers and lists"),
        ('{"id": "a", "values": [[1, NaN]]}\n', ", line 1: sequence 'a': step 0, feature 1 is NaN/Inf"),
        ('{"id": "a", "values": [-Infinity]}\n', ", line 1: sequence 'a': step 0, feature 0 is NaN/Inf"),
        ('{"id": "a", "values": [[1], [1e400]]}\n', ", line 1: sequence 'a': step 1, feature 0 is NaN/Inf"),
        (
            '{"id": "a", "values": [[1e39]]}\n',
            ", line 1: sequence 'a': step 0, feature 0 value 1e+39 is too large for float32",
        ),
        ('{"id": "a", "values": [' + "9" * 400 + "]}\n", ", line 1: sequence 'a': step 0, feature 0 value '999"),
        ('{"id": "a", "values": [' + "9" * 5000 + "]}\n", ", line 1: invalid JSON"),
        (
            R + '{"id": "b", "values": [[1, 2, 3]]}\n',
            ", line 2: sequence 'b' has 3 features per step but earlier sequences (line 1) have 2",
        ),
        (R + '{"id": "b", "values": [1]}\n', ", line 2: sequence 'b' has 1 features per step"),
        (R + '{"id": "b", "tokens": ["x"]}\n', ", line 2: has 'tokens' but line 1 has 'values'"),
        (
            '{"id": "a", "tokens": "abc"}\n',
            ", line 1: sequence 'a': 'tokens' must be a list of tokens, got the string 'abc'",
        ),
        (
            '{"id": "a", "tokens": ["x", 1.5]}\n',
            ", line 1: sequence 'a': token 1 is the number 1.5; tokens must be strings or integers",
        ),
        ('{"id": "a", "tokens": ["x", null]}\n', ", line 1: sequence 'a': token 1 is null"),
        ('{"id": "a", "tokens": ["x", true]}\n', ", line 1: sequence 'a': token 1 is true"),
        ('{"id": "a", "tokens": [["x"]]}\n', ", line 1: sequence 'a': token 0 is a list"),
        ('{"id": "a", "tokens": ["x", ""]}\n', ", line 1: sequence 'a', token 1 is empty"),
        (
            '{"id": "a", "tokens": ["x\\ny"]}\n',
            ", line 1: sequence 'a', token 0 ('x\\ny') contains a NUL character or a line break",
        ),
        ('{"id": "a", "tokens": ["x\\u0000"]}\n', ", line 1: sequence 'a', token 0 ('x\\x00') contains a NUL"),
        ("[" * 100_000 + "]" * 100_000 + "\n", ", line 1: invalid JSON (nested too deep)"),
    ],
)
def test_errors(tmp_path, content, expected):
    p = write(tmp_path / "my data.jsonl", content)
    msg = error(p)
    assert msg.startswith(f"{p}{expected}"), msg


def test_non_utf8_line(tmp_path):
    p = write(tmp_path / "x.jsonl", R.encode() + b'{"id": "\xff", "values": [1]}\n')
    assert error(p) == f"{p}, line 2: not valid UTF-8 text (byte 0xff)"


def test_rejects_column_options(tmp_path):
    p = write(tmp_path / "x.jsonl", R)
    assert "apply only to tables of one row per step" in error(p, step_column="t")
    assert "apply only to tables of one row per step" in error(p, feature_columns=["x"])


# -- fuzzing -------------------------------------------------------------------------------

_VAL = st.floats(allow_nan=False, allow_infinity=False, width=32)
_ID = st.one_of(st.text(min_size=1, max_size=5).filter(lambda s: "\x00" not in s), st.integers(-(10**6), 10**6))
_TOKEN = st.one_of(
    st.text(min_size=1, max_size=6).filter(lambda s: not any(c in s for c in "\x00\r\n")),
    st.integers(-5, 10**6),
)


@st.composite
def dataset(draw):
    tokens = draw(st.booleans())
    ids = draw(st.lists(_ID, min_size=1, max_size=5, unique_by=str))
    width = draw(st.integers(1, 3))
    flat = draw(st.booleans()) and width == 1
    records = []
    for sid in ids:
        n = draw(st.integers(1, 5))
        if tokens:
            records.append({"id": sid, "tokens": draw(st.lists(_TOKEN, min_size=n, max_size=n))})
        else:
            rows = [draw(st.lists(_VAL, min_size=width, max_size=width)) for _ in range(n)]
            records.append({"id": sid, "values": [r[0] for r in rows] if flat else rows})
    return tokens, records


@FUZZ
@given(data=dataset(), blank=st.booleans(), gz=st.booleans())
def test_fuzz_valid_jsonl_loads_exactly(tmp_path_factory, data, blank, gz):
    tokens, records = data
    text = ("\n" if blank else "").join(json.dumps(r) + "\n" for r in records).encode()
    name = "d.jsonl.gz" if gz else "d.jsonl"
    p = write(tmp_path_factory.mktemp("jsonl") / name, gzip.compress(text) if gz else text)
    s = read_sequences(p)
    assert s.ids.tolist() == [str(r["id"]) for r in records]
    if tokens:
        assert s.values.tolist() == [str(t) for r in records for t in r["tokens"]]
    else:
        expected = np.concatenate(
            [np.asarray(r["values"], dtype=np.float32).reshape(len(r["values"]), -1) for r in records]
        )
        assert np.array_equal(s.values, expected)


# Values that are wrong somewhere a list of numbers/tokens is expected.
_JUNK = st.sampled_from(
    [
        None,
        True,
        False,
        "x",
        "1",
        "",
        1.5,
        10**30,
        10**300,
        [],
        [[]],
        [[[1]]],
        {},
        {"a": 1},
        float("nan"),
        float("inf"),
        1e39,
        -1e300,
        [1, [2]],
        [None],
        ["a", 1],
        "\x00",
        "a\nb",
    ]
)


@st.composite
def mutated(draw):
    _, records = draw(dataset())
    kind = draw(
        st.sampled_from(
            [
                "none",
                "junk_value",
                "junk_step",
                "junk_id",
                "drop_key",
                "dup_id",
                "mix",
                "not_object",
                "bytes",
                "truncate",
                "empty",
                "deep",
                "wrong_width",
                "both_keys",
            ]
        )
    )
    k = draw(st.integers(0, len(records) - 1))
    rec = records[k]
    key = "tokens" if "tokens" in rec else "values"
    if kind == "junk_value":
        rec[key] = draw(_JUNK)
    elif kind == "junk_step" and rec[key]:
        rec[key][draw(st.integers(0, len(rec[key]) - 1))] = draw(_JUNK)
    elif kind == "junk_id":
        rec["id"] = draw(_JUNK)
    elif kind == "drop_key":
        del rec[draw(st.sampled_from(["id", key]))]
    elif kind == "dup_id":
        records.append(dict(rec))
    elif kind == "mix":
        records.append(
            {"id": "mixed-in", ("values" if key == "tokens" else "tokens"): ["a"] if key == "values" else [1.0]}
        )
    elif kind == "not_object":
        records[k] = draw(_JUNK)
    elif kind == "deep":
        rec[key] = [[[[[1.0]]]]]
    elif kind == "wrong_width":
        records.append({"id": "wide", "values": [[1.0] * 7]})
    elif kind == "both_keys":
        rec["tokens" if key == "values" else "values"] = [1]
    text = "".join(json.dumps(r) + "\n" for r in records).encode()
    if kind == "bytes":
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.sampled_from(BAD_BYTES)) + text[pos:]
    elif kind == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif kind == "empty":
        text = b""
    return kind, text


@FUZZ
@given(case=mutated())
def test_fuzz_mutated_jsonl_never_crashes(tmp_path_factory, case):
    kind, text = case
    p = write(tmp_path_factory.mktemp("jsonl") / "fuzz data.jsonl", text)
    s = check_outcome(p)
    if kind == "none":
        assert s is not None


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_random_bytes(tmp_path_factory, raw):
    check_outcome(write(tmp_path_factory.mktemp("jsonl") / "r.jsonl", raw))
