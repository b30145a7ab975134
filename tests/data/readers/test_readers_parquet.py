"""seqmask.data.readers, Parquet: both layouts, every named error, and fuzzing."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from readers_support import FUZZ, check_outcome, error, write

from seqmask.data.readers import read_sequences


def parquet_bytes(table: pa.Table, **kw) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def save(path, table: pa.Table | dict, **kw):
    if isinstance(table, dict):
        table = pa.table(table)
    return write(path, parquet_bytes(table, **kw))


# -- one row per sequence ------------------------------------------------------------------


def test_rows_of_value_lists(tmp_path):
    p = save(
        tmp_path / "x.parquet",
        {"id": ["b", "a"], "values": [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]]], "note": ["x", "y"]},
    )
    s = read_sequences(p)
    assert s.source == str(p)
    assert s.ids.tolist() == ["b", "a"] and s.lengths.tolist() == [2, 1]
    assert s.values.dtype == np.float32 and s.values.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_rows_of_flat_lists_ints_and_large_lists(tmp_path):
    p = save(
        tmp_path / "x.parquet", {"id": [10, 20], "values": pa.array([[1, 2, 3], [4]], type=pa.large_list(pa.int32()))}
    )
    s = read_sequences(p)
    assert s.ids.tolist() == ["10", "20"] and s.values.shape == (4, 1)
    assert s.values[:, 0].tolist() == [1, 2, 3, 4]
    fixed = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], type=pa.list_(pa.float32(), 2))
    values = pa.ListArray.from_arrays(pa.array([0, 2, 3], type=pa.int32()), fixed)
    p = save(tmp_path / "y.parquet", pa.table({"id": ["a", "b"], "values": values}))
    assert read_sequences(p).values.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_rows_of_tokens(tmp_path):
    p = save(tmp_path / "x.parquet", {"id": ["s1", "s2"], "tokens": [["the", "cat"], ["sat"]]})
    s = read_sequences(p)
    assert s.is_tokens and s.values.tolist() == ["the", "cat", "sat"] and s.lengths.tolist() == [2, 1]
    p = save(
        tmp_path / "y.parquet", {"id": ["s1", "s2"], "tokens": pa.array([[3, 1], [40]], type=pa.list_(pa.int64()))}
    )
    assert read_sequences(p).values.tolist() == ["3", "1", "40"]
    dict_tokens = pa.array([["a", "b"], ["a"]], type=pa.list_(pa.dictionary(pa.int8(), pa.string())))
    p = save(tmp_path / "z.parquet", pa.table({"id": ["s1", "s2"], "tokens": dict_tokens}))
    assert read_sequences(p).values.tolist() == ["a", "b", "a"]


def test_custom_keys_and_many_row_groups(tmp_path):
    n = 50
    table = pa.table({"name": [f"q{i}" for i in range(n)], "seq": [[[float(i)]] * (i % 3 + 1) for i in range(n)]})
    p = save(tmp_path / "x.parquet", table, row_group_size=7)
    s = read_sequences(p, id_key="name", values_key="seq")
    assert s.ids.tolist() == [f"q{i}" for i in range(n)]
    assert s.lengths.tolist() == [i % 3 + 1 for i in range(n)]


# -- long format ---------------------------------------------------------------------------


def test_long_format_like_csv(tmp_path):
    p = save(
        tmp_path / "x.parquet",
        {
            "x": [30.0, 10.0, 99.0, 20.0],
            "id": ["a", "a", "b", "a"],
            "t": [3, 1, 0, 2],
            "y": pa.array([1, 2, 3, 4], pa.int16()),
        },
    )
    s = read_sequences(p, step_column="t")
    assert s.ids.tolist() == ["a", "b"] and s.lengths.tolist() == [3, 1]
    assert s.values[:, 0].tolist() == [10, 20, 30, 99] and s.num_features == 2
    s = read_sequences(p, feature_columns=["y"])  # file order, t unused
    assert s.values[:, 0].tolist() == [1, 2, 4, 3]


def test_long_format_feature_names_are_the_column_names(tmp_path):
    p = save(tmp_path / "x.parquet", {"y": [1.0, 2.0], "id": ["a", "a"], "t": [1, 0], "x": [3.0, 4.0]})
    assert read_sequences(p).feature_names == ("y", "t", "x")  # schema order, the id left out
    assert read_sequences(p, step_column="t").feature_names == ("y", "x")
    s = read_sequences(p, feature_columns=["x", "y"])
    assert s.feature_names == ("x", "y") and s.values.tolist() == [[3, 1], [4, 2]]  # in the order asked for
    rows = save(tmp_path / "r.parquet", {"id": ["a"], "values": [[[1.0, 2.0]]]})
    assert read_sequences(rows).feature_names == ()  # one list column: the features have no names
    assert read_sequences(save(tmp_path / "k.parquet", {"id": ["a"], "tokens": [["x"]]})).feature_names == ()


def test_long_format_integer_and_dictionary_ids(tmp_path):
    p = save(tmp_path / "x.parquet", {"id": [5, 3, 5], "v": [1.0, 2.0, 3.0]})
    s = read_sequences(p)
    assert s.ids.tolist() == ["5", "3"] and s.values[:, 0].tolist() == [1, 3, 2]
    ids = pa.array(["u", "v", "u"]).dictionary_encode()
    p = save(tmp_path / "y.parquet", pa.table({"id": ids, "v": [1.0, 2.0, 3.0]}))
    assert read_sequences(p).ids.tolist() == ["u", "v"]


def test_a_non_list_values_column_is_a_feature(tmp_path):
    p = save(tmp_path / "x.parquet", {"id": ["a", "a"], "values": [1.0, 2.0]})
    s = read_sequences(p)
    assert s.lengths.tolist() == [2] and s.values[:, 0].tolist() == [1, 2]


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table, kw, expected",
    [
        (
            {"id": pa.array([], pa.string()), "v": pa.array([], pa.float64())},
            {},
            ": no sequences (the file has no rows)",
        ),
        ({"seq": ["a"], "v": [1.0]}, {}, ": no id column 'id' (columns: 'seq', 'v')"),
        ({"id": ["a"], "v": [1.0]}, {"step_column": "t"}, ": no step column 't'"),
        ({"id": ["a"], "v": [1.0]}, {"feature_columns": ["w"]}, ": feature column 'w' not found"),
        ({"id": ["a"], "v": [1.0]}, {"feature_columns": ["id"]}, ": column 'id' cannot be both"),
        ({"id": ["a"], "v": [1.0]}, {"feature_columns": ["v", "v"]}, ": feature column 'v' is listed twice"),
        ({"id": ["a"]}, {}, ": no feature columns"),
        ({"id": ["a"], "v": ["x"]}, {}, ": column 'v' has type string; it must hold numbers"),
        ({"id": ["a"], "v": [True]}, {}, ": column 'v' has type bool; it must hold numbers"),
        ({"id": [1.5], "v": [1.0]}, {}, ": column 'id' has type double; ids must be strings or integers"),
        ({"id": ["a", None], "v": [1.0, 2.0]}, {}, ", row 2: column 'id' is null"),
        ({"id": ["a", ""], "v": [1.0, 2.0]}, {}, ", row 2: column 'id' is empty"),
        ({"id": ["a", "b\x00"], "v": [1.0, 2.0]}, {}, ", row 2: column 'id' contains a NUL character"),
        ({"id": ["a", "a", "a"], "v": [1.0, None, 2.0]}, {}, ", row 2: column 'v' is null (missing value)"),
        ({"id": ["a", "a", "a"], "v": [1.0, 2.0, float("nan")]}, {}, ", row 3: column 'v' is NaN/Inf"),
        ({"id": ["a", "a"], "v": [1.0, float("-inf")]}, {}, ", row 2: column 'v' is NaN/Inf"),
        ({"id": ["a", "a"], "v": [1.0, 1e39]}, {}, ", row 2: column 'v' value 1e+39 is too large for float32"),
        ({"id": ["a", "a"], "w": [1.0, None], "v": [1.0, float("nan")]}, {}, ", row 2: column 'w' is null"),
        (
            {"id": ["a", "a"], "t": [0.0, float("nan")], "v": [1.0, 2.0]},
            {"step_column": "t"},
            ", row 2: column 't' is NaN/Inf",
        ),
        (
            {"id": ["a", "b", "a"], "t": [1, 0, 1], "v": [1.0, 2.0, 3.0]},
            {"step_column": "t"},
            ", row 3: step 1 of sequence 'a' appears twice (also on row 1)",
        ),
        (
            {"id": ["a", "a"], "t": [0.5, 0.5], "v": [1.0, 2.0]},
            {"step_column": "t"},
            ", row 2: step 0.5 of sequence 'a' appears twice",
        ),
        # one row per sequence
        ({"values": [[1.0]]}, {}, ": no id column 'id' (columns: 'values'); a file with one row per sequence"),
        ({"id": ["a"], "values": [[1.0]], "tokens": [["x"]]}, {}, ": has both a 'values' and a 'tokens' list column"),
        (
            {"id": ["a"], "values": [[1.0]]},
            {"feature_columns": ["values"]},
            ": step_column and feature_columns apply only to tables of one row per step",
        ),
        (
            {"id": ["a", "a"], "values": [[1.0], [2.0]]},
            {},
            ": id 'a' appears more than once in column 'id' (row 1 and row 2)",
        ),
        ({"id": ["a", "b"], "values": [[1.0], None]}, {}, ", row 2: sequence 'b' has a null 'values'"),
        ({"id": ["a", "b"], "values": [[1.0], []]}, {}, ", row 2: sequence 'b' is empty"),
        ({"id": ["a", "b"], "values": [[[1.0]], [[2.0], None]]}, {}, ", row 2: sequence 'b', step 1 is null"),
        (
            {"id": ["a", "b"], "values": [[[1.0, 2.0]], [[2.0, 3.0], [4.0]]]},
            {},
            ", row 2: sequence 'b', step 1 has 1 features but the first step of row 1 has 2",
        ),
        ({"id": ["a"], "values": [[[], []]]}, {}, ", row 1: sequence 'a', step 0 has no features"),
        (
            {"id": ["a", "b"], "values": [[[1.0]], [[2.0], [None]]]},
            {},
            ", row 2: sequence 'b', step 1, feature 0 is null",
        ),
        (
            {"id": ["a", "b"], "values": [[1.0], [2.0, float("nan")]]},
            {},
            ", row 2: sequence 'b', step 1, feature 0 is NaN/Inf",
        ),
        (
            {"id": ["a"], "values": [[[1.0, 1e300]]]},
            {},
            ", row 1: sequence 'a', step 0, feature 1 value 1e+300 is too large for float32",
        ),
        ({"id": ["a"], "values": [["x"]]}, {}, ": column 'values' holds string values, not numbers"),
        ({"id": ["a"], "values": [[[[1.0]]]]}, {}, ": column 'values' holds list<element: double> values, not numbers"),
        ({"id": ["a", "b"], "tokens": [["x"], ["y", None]]}, {}, ", row 2: sequence 'b', step 1 is null"),
        ({"id": ["a", "b"], "tokens": [["x"], ["y", ""]]}, {}, ", row 2: sequence 'b', step 1: token is empty"),
        ({"id": ["a"], "tokens": [["x\ny"]]}, {}, ", row 1: sequence 'a', step 0: token ('x\\ny') contains"),
        (
            {"id": ["a"], "tokens": [[1.5]]},
            {},
            ": column 'tokens' holds double values; tokens must be strings or integers",
        ),
        ({"id": ["a"], "tokens": [[]]}, {}, ", row 1: sequence 'a' is empty"),
    ],
)
def test_errors(tmp_path, table, kw, expected):
    p = save(tmp_path / "my data.parquet", table)
    msg = error(p, **kw)
    assert msg.startswith(f"{p}{expected}"), msg


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "file is empty"),
        (b"id,x\na,1\n", "not a Parquet file"),
        (b"PAR1", "not a valid Parquet file"),
        (b"PAR1" + b"\x00" * 40 + b"PAR1", "not a valid Parquet file"),
    ],
)
def test_not_parquet(tmp_path, content, expected):
    p = write(tmp_path / "x.parquet", content)
    assert expected in error(p)


def test_duplicate_column_names(tmp_path):
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array([1.0]), pa.array([2.0])], names=["id", "v", "v"])
    assert "column name 'v' appears more than once" in error(save(tmp_path / "x.parquet", table))


# -- fuzzing -------------------------------------------------------------------------------

_VAL = st.floats(allow_nan=False, allow_infinity=False, width=32)
_ID = st.text(min_size=1, max_size=4).filter(lambda s: "\x00" not in s)


@st.composite
def long_table(draw):
    width = draw(st.integers(1, 3))
    ids = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    rows = []
    for sid in ids:
        n = draw(st.integers(1, 4))
        steps = draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n, unique=True))
        rows += [(sid, step, draw(st.lists(_VAL, min_size=width, max_size=width))) for step in steps]
    order = draw(st.permutations(range(len(rows))))
    rows = [rows[k] for k in order]  # ids split across non-adjacent rows, steps unordered
    return width, rows


@st.composite
def row_table(draw):
    tokens = draw(st.booleans())
    ids = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    width = draw(st.integers(1, 3))
    col = []
    for _ in ids:
        n = draw(st.integers(1, 4))
        if tokens:
            col.append(
                draw(
                    st.lists(
                        st.text(min_size=1, max_size=4).filter(lambda t: not any(c in t for c in "\x00\r\n")),
                        min_size=n,
                        max_size=n,
                    )
                )
            )
        else:
            col.append([draw(st.lists(_VAL, min_size=width, max_size=width)) for _ in range(n)])
    return tokens, ids, col


@FUZZ
@given(case=long_table(), use_step=st.booleans())
def test_fuzz_valid_long_parquet_loads_exactly(tmp_path_factory, case, use_step):
    width, rows = case
    table = {"id": [r[0] for r in rows], "step": [r[1] for r in rows]}
    for j in range(width):
        table[f"x{j}"] = pa.array([r[2][j] for r in rows], pa.float32())
    p = save(tmp_path_factory.mktemp("pq") / "d.parquet", table)
    s = read_sequences(p, step_column="step" if use_step else None, feature_columns=[f"x{j}" for j in range(width)])
    first = list(dict.fromkeys(r[0] for r in rows))
    assert s.ids.tolist() == first
    expected = []
    for sid in first:
        mine = [r for r in rows if r[0] == sid]
        if use_step:
            mine.sort(key=lambda r: r[1])
        expected += [r[2] for r in mine]
    assert np.array_equal(s.values, np.array(expected, dtype=np.float32))


@FUZZ
@given(case=row_table())
def test_fuzz_valid_row_parquet_loads_exactly(tmp_path_factory, case):
    tokens, ids, col = case
    key = "tokens" if tokens else "values"
    p = save(tmp_path_factory.mktemp("pq") / "d.parquet", {"id": ids, key: col})
    s = read_sequences(p)
    assert s.ids.tolist() == ids and s.lengths.tolist() == [len(c) for c in col]
    if tokens:
        assert s.values.tolist() == [t for c in col for t in c]
    else:
        assert np.array_equal(s.values, np.array([step for c in col for step in c], dtype=np.float32))


_JUNK_CELL = st.sampled_from([None, float("nan"), float("inf"), 1e39, -1e300])


@st.composite
def mutated(draw):
    if draw(st.booleans()):
        width, rows = draw(long_table())
        table = {"id": [r[0] for r in rows], "step": [float(r[1]) for r in rows]}
        for j in range(width):
            table[f"x{j}"] = [float(r[2][j]) for r in rows]
        kind = draw(st.sampled_from(["none", "cell", "id_null", "dup_step", "strings", "bytes", "truncate", "flip"]))
        n = len(rows)
        k = draw(st.integers(0, n - 1))
        col = draw(st.sampled_from(sorted(table)))
        if kind == "cell" and col != "id":
            table[col][k] = draw(_JUNK_CELL)
        elif kind == "id_null":
            table["id"][k] = None
        elif kind == "dup_step" and n > 1:
            table["step"][k] = table["step"][(k + 1) % n]
            table["id"][k] = table["id"][(k + 1) % n]
        elif kind == "strings":
            table["x0"] = [str(v) for v in table["x0"]]
        kw = {"step_column": "step"}
    else:
        tokens, ids, col = draw(row_table())
        key = "tokens" if tokens else "values"
        kind = draw(
            st.sampled_from(
                ["none", "null_row", "empty_row", "null_item", "ragged", "dup_id", "bytes", "truncate", "flip"]
            )
        )
        k = draw(st.integers(0, len(ids) - 1))
        if kind == "null_row":
            col[k] = None
        elif kind == "empty_row":
            col[k] = []
        elif kind == "null_item":
            col[k][0] = None
        elif kind == "ragged" and not tokens:
            col[k][0] = col[k][0] + [1.0]
        elif kind == "dup_id" and len(ids) > 1:
            ids[k] = ids[(k + 1) % len(ids)]
        table = {"id": ids, key: col}
        kw = {}
    raw = parquet_bytes(pa.table(table))
    if kind == "bytes":
        pos = draw(st.integers(0, len(raw)))
        raw = raw[:pos] + draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    elif kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        pos = draw(st.integers(0, len(raw) - 1))
        raw = raw[:pos] + bytes([raw[pos] ^ draw(st.integers(1, 255))]) + raw[pos + 1 :]
    return kind, raw, kw


@FUZZ
@given(case=mutated())
def test_fuzz_mutated_parquet_never_crashes(tmp_path_factory, case):
    kind, raw, kw = case
    p = write(tmp_path_factory.mktemp("pq") / "fuzz data.parquet", raw)
    s = check_outcome(p, **kw)
    if kind == "none":
        assert s is not None
