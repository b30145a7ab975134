"""seqmask.data.readers: dispatch, NPZ and CSV happy paths, every user error, and fuzzing.

The other formats have their own files: test_readers_jsonl.py, test_readers_parquet.py,
test_readers_files.py (csv_dir / npy_dir) and test_readers_text.py (tokens_text).
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT
from hypothesis import given
from hypothesis import strategies as st
from readers_support import FUZZ

from seqmask.data import Sequences, readers
from seqmask.data.readers import read_sequences
from seqmask.errors import DataError

REPO = ROOT


def write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def error(path, **kw) -> str:
    with pytest.raises(DataError) as e:
        read_sequences(path, **kw)
    msg = str(e.value)
    assert str(path) in msg, msg
    assert "\n" not in msg, msg
    return msg


def save_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


# -- dispatch ------------------------------------------------------------------


def test_unknown_extension_lists_supported(tmp_path):
    msg = error(write(tmp_path / "x.dat", "id,x\na,1\n"))
    for ext in (".npz", ".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".parquet", ".txt"):
        assert ext in msg, msg
    assert "directory or glob pattern" in msg and "format" in msg


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.csv", "csv"),
        ("a.CSV.GZ", "csv"),
        ("a.npz", "npz"),
        ("a.jsonl", "jsonl"),
        ("a.jsonl.gz", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.txt", "tokens_text"),
    ],
)
def test_detect_format_by_extension(name, fmt):
    assert readers.detect_format(name) == fmt


def test_supported_tables():
    assert set(readers.SUPPORTED_FORMATS) == {"npz", "csv", "jsonl", "parquet", "npy_dir", "csv_dir", "tokens_text"}
    assert set(readers.SUPPORTED_EXTENSIONS) == {".csv.gz", ".csv", ".npz", ".jsonl.gz", ".jsonl", ".parquet", ".txt"}
    # the config's format enum (data.format's Literal type) is exactly "auto" plus the reader table
    from seqmask.config import DataFormat, choices_of

    assert set(choices_of(DataFormat)) == {"auto", *readers.SUPPORTED_FORMATS}


def test_explicit_format_overrides_extension(tmp_path):
    p = write(tmp_path / "x.txt", "id,x\na,1\n")
    assert read_sequences(p, format="csv").values.tolist() == [[1.0]]
    assert read_sequences(p).ids.tolist() == ["1", "2"]  # as token text
    msg = error(p, format="hdf5")
    assert "unknown data format 'hdf5'" in msg and "csv" in msg and "parquet" in msg


def test_missing_file_and_directory(tmp_path):
    assert "not found" in error(tmp_path / "nope.csv")
    assert "not found" in error(tmp_path / "nope.npz")
    d = tmp_path / "dir.csv"
    d.mkdir()
    assert "directory" in error(d)
    assert "directory" in error(tmp_path)


def test_permission_error(tmp_path, monkeypatch):
    p = write(tmp_path / "x.csv", "id,x\na,1\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(readers._common, "open", denied, raising=False)
    assert "permission denied" in error(p)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_permission_error_real(tmp_path):
    p = write(tmp_path / "x.csv", "id,x\na,1\n")
    p.chmod(0)
    try:
        assert "permission" in error(p)
    finally:
        p.chmod(0o644)


# -- NPZ -------------------------------------------------------------------------


def test_npz_happy_path(tmp_path):
    p = save_npz(
        tmp_path / "x.npz",
        values=np.arange(10, dtype=np.float64).reshape(5, 2),
        lengths=np.array([2, 3]),
        ids=np.array(["b", "a"]),
        labels=np.array([1, 2]),  # extra arrays are ignored
    )
    s = read_sequences(p)
    assert isinstance(s, Sequences)
    assert s.source == str(p)
    assert s.ids.tolist() == ["b", "a"]
    assert s.lengths.tolist() == [2, 3]
    assert s.values.dtype == np.float32
    assert s.sequence(1).tolist() == [[4, 5], [6, 7], [8, 9]]


def test_npz_defaults_and_conversions(tmp_path):
    p = save_npz(tmp_path / "x.npz", values=np.array([1, 2, 3], dtype=np.int32), lengths=np.array([1, 2]))
    s = read_sequences(p)
    assert s.values.shape == (3, 1) and s.values.dtype == np.float32
    assert s.ids.tolist() == ["0", "1"]
    p = save_npz(tmp_path / "y.npz", values=np.zeros((3, 1)), lengths=np.array([1.0, 2.0]), ids=np.array([10, 7]))
    s = read_sequences(p)
    assert s.ids.tolist() == ["10", "7"] and s.lengths.tolist() == [1, 2]
    p = save_npz(tmp_path / "z.npz", values=np.zeros((1, 1)), lengths=[1], ids=np.array([b"q"]))
    assert read_sequences(p).ids.tolist() == ["q"]


@pytest.mark.parametrize(
    "arrays, expected",
    [
        (dict(lengths=[1]), "missing array 'values'"),
        (dict(values=np.zeros((1, 1))), "missing array 'lengths'"),
        (dict(values=np.zeros((1, 1, 1)), lengths=[1]), "2-D"),
        (dict(values=np.zeros((1, 0)), lengths=[1]), "no features"),
        (dict(values=np.array([["a"]]), lengths=[1]), "must hold numbers"),
        (dict(values=np.array([[True]]), lengths=[1]), "must hold numbers"),
        (dict(values=np.zeros((2, 1)), lengths=[[2]]), "'lengths' must be 1-D"),
        (dict(values=np.zeros((2, 1)), lengths=[0.5, 1.5]), "must hold integers"),
        (dict(values=np.zeros((2, 1)), lengths=np.array(["2"])), "must hold integers"),
        (dict(values=np.zeros((0, 1)), lengths=np.zeros(0, dtype=int)), "no sequences"),
        (dict(values=np.zeros((2, 1)), lengths=[2, 0], ids=["a", "b"]), "sequence 'b' (index 1) is empty"),
        (dict(values=np.zeros((2, 1)), lengths=[3, -1]), "negative length"),
        (dict(values=np.zeros((3, 1)), lengths=[1, 1]), "adds up to 2 steps but 'values' has 3 rows"),
        (dict(values=np.zeros((3, 1)), lengths=np.array([2**63 + 5], dtype=np.uint64)), "'values' has 3 rows"),
        (dict(values=np.zeros((2, 1)), lengths=[1, 1], ids=["a"]), "'ids' has 1 entries but 'lengths' has 2"),
        (dict(values=np.zeros((2, 1)), lengths=[1, 1], ids=[["a", "b"]]), "'ids' must be 1-D"),
        (dict(values=np.zeros((2, 1)), lengths=[1, 1], ids=[1.5, 2.5]), "strings or integers"),
        (dict(values=np.zeros((3, 1)), lengths=[1, 1, 1], ids=["a", "b", "a"]), "id 'a' appears more than once"),
        (
            dict(values=np.array([[0.0, 1], [2, 3], [4, np.nan]]), lengths=[1, 2], ids=["a", "b"]),
            "sequence 'b' (index 1) has a NaN/Inf value at step 1 (0-based), feature 1",
        ),
        (dict(values=np.array([[np.inf]]), lengths=[1]), "NaN/Inf"),
        (dict(values=np.array([[1e300]]), lengths=[1]), "too large for float32"),
    ],
)
def test_npz_errors(tmp_path, arrays, expected):
    p = tmp_path / "bad data.npz"
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    msg = error(p)
    assert expected in msg, msg


def test_npz_object_array(tmp_path):
    p = save_npz(tmp_path / "o.npz", values=np.zeros((2, 1)), lengths=[1, 1], ids=np.array(["a", 1], dtype=object))
    assert "Python objects" in error(p)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"hello world", "not an .npz archive"),
        (b"PK\x03\x04garbage", "corrupt or truncated"),
    ],
)
def test_npz_not_an_archive(tmp_path, content, expected):
    assert expected in error(write(tmp_path / "x.npz", content))


def test_npz_truncated_and_npy(tmp_path):
    p = save_npz(tmp_path / "x.npz", values=np.zeros((50, 2)), lengths=[50])
    raw = p.read_bytes()
    write(p, raw[: len(raw) // 2])
    error(p)
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    assert "single .npy array" in error(write(tmp_path / "y.npz", buf.getvalue()))


def test_npz_offsets_happy_path(tmp_path):
    p = save_npz(
        tmp_path / "x.npz",
        values=np.arange(12, dtype=np.float32).reshape(6, 2),
        offsets=np.array([0, 1, 4, 6]),
        ids=np.array(["c", "a", "b"]),
    )
    s = read_sequences(p)
    assert s.ids.tolist() == ["c", "a", "b"]
    assert s.lengths.tolist() == [1, 3, 2]
    assert s.sequence(2).tolist() == [[8, 9], [10, 11]]
    p = save_npz(tmp_path / "y.npz", values=np.zeros(3), offsets=np.array([0.0, 3.0]))
    s = read_sequences(p)
    assert s.ids.tolist() == ["0"] and s.lengths.tolist() == [3]


@pytest.mark.parametrize(
    "arrays, expected",
    [
        (dict(values=np.zeros((2, 1)), lengths=[2], offsets=[0, 2]), "both 'lengths' and 'offsets'"),
        (dict(values=np.zeros((2, 1))), "missing array 'lengths' (or 'offsets')"),
        (dict(values=np.zeros((2, 1)), offsets=[[0, 2]]), "'offsets' must be 1-D"),
        (dict(values=np.zeros((2, 1)), offsets=np.zeros(0, dtype=int)), "'offsets' is empty"),
        (dict(values=np.zeros((2, 1)), offsets=[0]), "no sequences"),
        (dict(values=np.zeros((2, 1)), offsets=[1, 2]), "'offsets' must start at 0, got 1"),
        (dict(values=np.zeros((2, 1)), offsets=[0, 0.5, 2]), "must hold integers"),
        (dict(values=np.zeros((2, 1)), offsets=np.array(["0", "2"])), "must hold integers"),
        (dict(values=np.zeros((4, 1)), offsets=[0, 3, 2, 4]), "offsets[2] = 2 is less than offsets[1] = 3"),
        (dict(values=np.zeros((4, 1)), offsets=[0, -1, 4]), "offsets[1] = -1 is less than offsets[0] = 0"),
        (dict(values=np.zeros((4, 1)), offsets=[0, 2, 3]), "'offsets' ends at 3 but 'values' has 4 rows"),
        (dict(values=np.zeros((4, 1)), offsets=[0, 2, 5]), "'offsets' ends at 5 but 'values' has 4 rows"),
        (
            dict(values=np.zeros((4, 1)), offsets=np.array([0, 2**63 + 5], dtype=np.uint64)),
            "ends at 9223372036854775813",
        ),
        (
            dict(values=np.zeros((4, 1)), offsets=[0, 2, 2, 4], ids=["a", "b", "c"]),
            "sequence 'b' (index 1) is empty (offsets[1] and offsets[2] are both 2)",
        ),
        (dict(values=np.zeros((4, 1)), offsets=[0, 2, 4], ids=["a"]), "'ids' has 1 entries but 'offsets' describes 2"),
        (
            dict(values=np.array([[0.0], [1], [np.nan]]), offsets=[0, 1, 3], ids=["a", "b"]),
            "sequence 'b' (index 1) has a NaN/Inf value at step 1",
        ),
    ],
)
def test_npz_offsets_errors(tmp_path, arrays, expected):
    p = tmp_path / "bad offsets.npz"
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    msg = error(p)
    assert expected in msg, msg


def test_npz_rejects_csv_options(tmp_path):
    p = save_npz(tmp_path / "x.npz", values=np.zeros((1, 1)), lengths=[1])
    assert "apply only to tables of one row per step" in error(p, step_column="step")
    assert "apply only to tables of one row per step" in error(p, feature_columns=["x"])


# -- CSV happy paths -----------------------------------------------------------


def test_csv_basic_order_and_ids(tmp_path):
    p = write(tmp_path / "x.csv", "id,x,y\nb,1,2\nb,3,4\n007,5,6\n")
    s = read_sequences(p)
    assert s.source == str(p)
    assert s.ids.tolist() == ["b", "007"]  # first-appearance order; ids stay strings
    assert s.lengths.tolist() == [2, 1]
    assert s.values.dtype == np.float32
    assert s.values.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_csv_split_ids_are_gathered_stably(tmp_path):
    p = write(tmp_path / "x.csv", "id,x\na,1\nb,2\na,3\nc,4\nb,5\na,6\n")
    s = read_sequences(p)
    assert s.ids.tolist() == ["a", "b", "c"]
    assert s.lengths.tolist() == [3, 2, 1]
    assert s.values[:, 0].tolist() == [1, 3, 6, 2, 5, 4]


def test_csv_step_column_sorts_within_sequence(tmp_path):
    p = write(tmp_path / "x.csv", "x,id,t\n30,a,3\n10,a,1\n99,b,0\n20,a,2\n")
    s = read_sequences(p, step_column="t")
    assert s.ids.tolist() == ["a", "b"]
    assert s.num_features == 1  # t is not a feature
    assert s.values[:, 0].tolist() == [10, 20, 30, 99]
    s = read_sequences(p)  # without it, t is a feature and file order is kept
    assert s.num_features == 2
    assert s.values[:3, 0].tolist() == [30, 10, 20]


def test_csv_float_steps_and_negative_steps(tmp_path):
    p = write(tmp_path / "x.csv", "id,t,x\na,0.5,2\na,-1,1\na,2.25,3\n")
    assert read_sequences(p, step_column="t").values[:, 0].tolist() == [1, 2, 3]


def test_csv_feature_columns_selection_and_order(tmp_path):
    p = write(tmp_path / "x.csv", "id,label,x,y\na,circle,1,2\na,circle,3,4\n")
    s = read_sequences(p, feature_columns=["y", "x"])
    assert s.values.tolist() == [[2, 1], [4, 3]]
    msg = error(p, feature_columns=["x", "z"])
    assert "'z'" in msg and "'label'" in msg and "'y'" in msg  # lists what is available


def test_csv_feature_names_are_the_header_names(tmp_path):
    p = write(tmp_path / "x.csv", "y,id,t,x\n1,a,0,2\n")
    assert read_sequences(p).feature_names == ("y", "t", "x")  # header order, the id left out
    assert read_sequences(p, step_column="t").feature_names == ("y", "x")
    s = read_sequences(p, feature_columns=["x", "y"])
    assert s.feature_names == ("x", "y") and s.values.tolist() == [[2, 1]]  # in the order asked for
    npz = read_sequences(save_npz(tmp_path / "x.npz", values=np.zeros((2, 3)), lengths=[2]))
    assert npz.feature_names == () and npz.feature_labels == ("f0", "f1", "f2")  # NPZ has no names


def test_csv_custom_id_column(tmp_path):
    p = write(tmp_path / "x.csv", "seq,x\nq,1\n")
    assert read_sequences(p, id_column="seq").ids.tolist() == ["q"]
    msg = error(p)
    assert "no id column 'id'" in msg and "'seq'" in msg


def test_csv_quoting_crlf_bom_blank_lines_and_whitespace(tmp_path):
    content = '\ufeff"id","x"\r\n"a,1",1.5\r\n\r\n"b ""q""", 2e3 \r\n"a,1","-.5"\r\n\r\n'
    s = read_sequences(write(tmp_path / "x.csv", content.encode("utf-8")))
    assert s.ids.tolist() == ["a,1", 'b "q"']
    assert s.values[:, 0].tolist() == [1.5, -0.5, 2000.0]


def test_csv_no_trailing_newline_and_cr_only(tmp_path):
    assert read_sequences(write(tmp_path / "a.csv", "id,x\na,1\na,2")).lengths.tolist() == [2]
    assert read_sequences(write(tmp_path / "b.csv", "id,x\ra,1\rb,2\r")).lengths.tolist() == [1, 1]


def test_csv_gz(tmp_path):
    p = write(tmp_path / "x.csv.gz", gzip.compress(b"id,x\na,1\na,2\n"))
    assert read_sequences(p).values[:, 0].tolist() == [1, 2]
    assert "gzip" in error(write(tmp_path / "y.csv.gz", b"\x1f\x8b\x08\x00garbage"))


def test_csv_large_values_and_float32(tmp_path):
    p = write(tmp_path / "x.csv", "id,x\na,3e38\na,1e-50\na,-0\n")
    assert read_sequences(p).values[:, 0].tolist() == [np.float32(3e38), 0.0, 0.0]


# -- CSV errors: each names the file and the line ------------------------------


@pytest.mark.parametrize(
    "content, kw, expected",
    [
        ("id,x1,x2\na,1,2\n" + "a,1,2\n" * 14 + "a,1,abc\n", {}, "line 17: column 'x2' has non-numeric value 'abc'"),
        ("id,x\na,1\na,NA\n", {}, "line 3: column 'x' has non-numeric value 'NA'"),
        ("id,x\na,1\na,1_000\n", {}, "line 3: column 'x' has non-numeric value '1_000'"),
        ("id,x\na,1\na,1,2\n", {}, "line 3: expected 2 cells (id, x), found 3"),
        ("id,x,y\na,1,2\na,1\n", {}, "line 3: expected 3 cells"),
        ("id,x\na,1\n\n\nb\n", {}, "line 5: expected 2 cells"),
        ("id,x\na,1\na,\n", {}, "line 3: column 'x' is empty (missing value)"),
        ('id,x\na,1\na,""\n', {}, "line 3: column 'x' is empty (missing value)"),
        ("id,x\na,1\n,2\n", {}, "line 3: column 'id' is empty"),
        ("id,x\na,1\n\na,1\n\na,nan\n", {}, "line 6: column 'x' is NaN/Inf ('nan')"),
        ("id,x\na,-inf\n", {}, "line 2: column 'x' is NaN/Inf"),
        ("id,x\na,Infinity\n", {}, "line 2: column 'x' is NaN/Inf"),
        ("id,x\na,1e400\n", {}, "line 2: column 'x' value '1e400' is out of range"),
        ("id,x\na,1\na,1e39\n", {}, "line 3: column 'x' value '1e39' is too large for float32"),
        ("id,x\na,1\na,abc\na,1e39\n", {}, "line 3: column 'x' has non-numeric value 'abc'"),
        ("id,t,x\na,0,1\na,nan,1\n", {"step_column": "t"}, "line 3: column 't' is NaN/Inf"),
        ("id,t,x\na,0,1\na,,1\n", {"step_column": "t"}, "line 3: column 't' is empty"),
        (
            "id,t,x\na,0,1\nb,1,1\na,1,1\n\na,1,2\n",
            {"step_column": "t"},
            "line 6: step 1 of sequence 'a' appears twice (also on line 4)",
        ),
        ("", {}, "no sequences"),
        ("\n\n", {}, "no sequences"),
        ("id,x\n", {}, "no sequences"),
        ("id,x", {}, "no sequences"),
        ("id,x\n\n\n", {}, "no sequences"),
        ("\nid,x\na,1\n", {}, "line 1: empty"),
        ("id,x,x\na,1,2\n", {}, "line 1: column name 'x' appears more than once"),
        ("id,,x\na,1,2\n", {}, "line 1: column 2 of the header has no name"),
        ("id\na\n", {}, "no feature columns"),
        ("x,y\n1,2\n", {}, "no id column 'id'"),
        ("id,x\na,1\n", {"step_column": "t"}, "no step column 't'"),
        ("id,x\na,1\n", {"step_column": "id"}, "both 'id'"),
        ("id,x\na,1\n", {"feature_columns": ["id"]}, "cannot be both"),
        ("id,x\na,1\n", {"feature_columns": ["x", "x"]}, "listed twice"),
        ("id,x\na,1\n", {"feature_columns": []}, "no feature columns"),
    ],
)
def test_csv_errors(tmp_path, content, kw, expected):
    p = write(tmp_path / "my data.csv", content)
    msg = error(p, **kw)
    if expected.startswith("line "):
        assert msg.startswith(f"{p}, {expected}"), msg
    else:
        assert msg.startswith(f"{p}: ") and expected in msg, msg


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"id,x\na,1\n\xff\xfe,2\n", "line 3: column 'id' is not valid UTF-8"),
        (b"id,x\na,1\nb,2\xff\n", "line 3: column 'x'"),
        (b"i\xffd,x\na,1\n", "line 1: not valid UTF-8"),
    ],
)
def test_csv_non_utf8(tmp_path, content, expected):
    p = write(tmp_path / "x.csv", content)
    msg = error(p)
    assert f"{p}, {expected}" in msg, msg


def test_csv_non_utf8_in_unused_column_is_fine(tmp_path):
    p = write(tmp_path / "x.csv", b"id,note,x\na,caf\xe9,1\n")
    assert read_sequences(p, feature_columns=["x"]).values.tolist() == [[1.0]]


def test_csv_line_numbers_far_into_a_file(tmp_path):
    rows = "".join(f"s{i // 10},{i}.5\n" for i in range(5000))
    p = write(tmp_path / "x.csv", "id,x\n" + rows + "s1,oops\n")
    assert f"{p}, line 5002: column 'x' has non-numeric value 'oops'" in error(p)
    p = write(tmp_path / "y.csv", "id,x\n" + rows.replace("s3,35.5", "s3,inf"))
    assert f"{p}, line 37: column 'x' is NaN/Inf ('inf')" in error(p)


# -- bundled example data ------------------------------------------------------


def test_bundled_example_data_is_consistent():
    npz = REPO / "data" / "trajectories.npz"
    csv_path = REPO / "data" / "trajectories.csv"
    labels = REPO / "data" / "trajectories_labels.csv"
    if not npz.exists():
        pytest.skip("run scripts/make_example_data.py")
    a = read_sequences(npz)
    b = read_sequences(csv_path, step_column="step")
    assert np.array_equal(a.values, b.values)
    assert a.lengths.tolist() == b.lengths.tolist()
    assert a.ids.tolist() == b.ids.tolist()
    assert len(a) >= 500 and a.num_features == 2
    assert a.lengths.min() == 1  # the length-1 edge case
    assert a.lengths.max() >= 100
    last_steps = a.values[a.offsets[1:] - 1]
    assert np.any(np.all(last_steps == 0, axis=1))  # a last step that is exactly all zeros
    assert npz.stat().st_size < 1_000_000
    text = labels.read_text().splitlines()
    assert text[0] == "id,family" and len(text) == len(a) + 1


# -- fuzzing: any input gives a correct load or a DataError naming the file ------

_ID = st.text(alphabet='abcXYZ019-_ ,"é', min_size=1, max_size=4).filter(lambda s: s.strip() == s and s != "")
_VAL = st.floats(allow_nan=False, allow_infinity=False, width=32)


def _csv_quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\r\n') else s


@st.composite
def csv_dataset(draw):
    n_features = draw(st.integers(1, 3))
    use_step = draw(st.booleans())
    ids = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    rows = []  # (id, step, values)
    for sid in ids:
        n = draw(st.integers(1, 5))
        steps = draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n, unique=True))
        for step in steps:
            rows.append((sid, step, draw(st.lists(_VAL, min_size=n_features, max_size=n_features))))
    # Shuffled: ids split across non-adjacent rows, steps out of order.
    order = draw(st.permutations(range(len(rows))))
    rows = [rows[k] for k in order]
    return n_features, use_step, rows


def _expected(n_features, use_step, rows):
    first = {}
    for sid, _, _ in rows:
        first.setdefault(sid, len(first))
    ids = sorted(first, key=first.get)
    values, lengths = [], []
    for sid in ids:
        mine = [r for r in rows if r[0] == sid]
        if use_step:
            mine.sort(key=lambda r: r[1])
        values += [r[2] for r in mine]
        lengths.append(len(mine))
    return ids, lengths, np.array(values, dtype=np.float32).reshape(-1, n_features)


def _render(n_features, use_step, rows, newline="\n") -> bytes:
    header = ["id"] + (["step"] if use_step else []) + [f"x{j}" for j in range(n_features)]
    lines = [",".join(header)]
    for sid, step, vals in rows:
        cells = [_csv_quote(sid)] + ([str(step)] if use_step else []) + [repr(float(v)) for v in vals]
        lines.append(",".join(cells))
    return (newline.join(lines) + newline).encode("utf-8")


_JUNK = st.sampled_from(
    [
        "",
        "abc",
        "nan",
        "inf",
        "-Infinity",
        "1e400",
        "-1e400",
        "1e39",
        "NA",
        "1,2",
        '"',
        '""',
        "\xff",
        " ",
        "0x1",
        "1_0",
        "é",
    ]
)


@st.composite
def mutated_csv(draw):
    n_features, use_step, rows = draw(csv_dataset())
    raw = _render(n_features, use_step, rows, newline=draw(st.sampled_from(["\n", "\r\n"])))
    lines = raw.split(b"\n")
    kind = draw(
        st.sampled_from(
            [
                "truncate",
                "drop_cell",
                "add_cell",
                "junk_cell",
                "bad_bytes",
                "dup_line",
                "empty",
                "blank_lines",
                "swap_lines",
                "header_only",
                "garbage",
            ]
        )
    )
    k = draw(st.integers(0, max(len(lines) - 2, 0)))
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == "drop_cell":
        lines[k] = lines[k].rsplit(b",", 1)[0]
        raw = b"\n".join(lines)
    elif kind == "add_cell":
        lines[k] = lines[k].rstrip(b"\r") + b",1"
        raw = b"\n".join(lines)
    elif kind == "junk_cell":
        cells = lines[k].rstrip(b"\r").split(b",")
        cells[draw(st.integers(0, len(cells) - 1))] = (
            draw(_JUNK).encode("latin-1", "replace") if draw(st.booleans()) else draw(_JUNK).encode()
        )
        lines[k] = b",".join(cells)
        raw = b"\n".join(lines)
    elif kind == "bad_bytes":
        pos = draw(st.integers(0, len(raw)))
        raw = raw[:pos] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\x80\x80", b'"', b"\r"])) + raw[pos:]
    elif kind == "dup_line":
        lines.insert(k + 1, lines[max(k, 1)] if len(lines) > 1 else lines[k])
        raw = b"\n".join(lines)
    elif kind == "empty":
        raw = b""
    elif kind == "blank_lines":
        lines.insert(k, b"")
        raw = b"\n".join(lines)
    elif kind == "swap_lines" and len(lines) > 2:
        lines[0], lines[-2] = lines[-2], lines[0]
        raw = b"\n".join(lines)
    elif kind == "header_only":
        raw = lines[0]
    elif kind == "garbage":
        raw = draw(st.binary(max_size=60))
    return n_features, use_step, raw


_FUZZ = FUZZ


def _check_outcome(path: Path, **kw):
    try:
        s = read_sequences(path, **kw)
    except DataError as e:
        msg = str(e)
        assert str(path) in msg, msg
        assert "\n" not in msg, msg
        return None
    # any other exception fails the test
    assert isinstance(s, Sequences) and len(s) >= 1
    assert s.values.dtype == np.float32 and np.all(np.isfinite(s.values))
    assert int(s.lengths.sum()) == s.num_steps and s.lengths.min() >= 1
    assert len(set(s.ids.tolist())) == len(s)
    return s


@_FUZZ
@given(dataset=csv_dataset(), newline=st.sampled_from(["\n", "\r\n"]), gz=st.booleans())
def test_fuzz_valid_csv_loads_exactly(tmp_path_factory, dataset, newline, gz):
    n_features, use_step, rows = dataset
    raw = _render(n_features, use_step, rows, newline)
    d = tmp_path_factory.mktemp("csv")
    p = write(d / ("data.csv.gz" if gz else "data.csv"), gzip.compress(raw) if gz else raw)
    s = read_sequences(p, step_column="step" if use_step else None)
    ids, lengths, values = _expected(n_features, use_step, rows)
    assert s.ids.tolist() == ids
    assert s.lengths.tolist() == lengths
    assert np.array_equal(s.values, values)


@_FUZZ
@given(case=mutated_csv())
def test_fuzz_mutated_csv_never_crashes(tmp_path_factory, case):
    n_features, use_step, raw = case
    p = write(tmp_path_factory.mktemp("csv") / "fuzz data.csv", raw)
    _check_outcome(p, step_column="step" if use_step else None)
    _check_outcome(p)  # and with the step column (if any) read as a feature


@st.composite
def mutated_npz(draw):
    n = draw(st.integers(0, 4))
    lengths = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    f = draw(st.integers(1, 3))
    values = np.array(
        draw(st.lists(_VAL, min_size=sum(lengths) * f, max_size=sum(lengths) * f)), dtype=np.float32
    ).reshape(-1, f)
    arrays = {"values": values, "lengths": np.array(lengths, dtype=np.int64)}
    if draw(st.booleans()):
        arrays["ids"] = np.array([f"id{k}" for k in range(n)])
    kind = draw(
        st.sampled_from(
            [
                "none",
                "nan",
                "huge",
                "lengths_off",
                "zero_len",
                "neg_len",
                "float_len",
                "ids_count",
                "dup_ids",
                "int_ids",
                "drop_key",
                "values_3d",
                "values_1d",
                "str_values",
                "object",
                "truncate",
                "flip",
                "int_values",
                "offsets",
                "offsets_bad",
                "offsets_and_lengths",
            ]
        )
    )
    if kind == "nan" and values.size:
        values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "huge" and values.size:
        arrays["values"] = values.astype(np.float64)
        arrays["values"].flat[0] = 1e300
    elif kind == "lengths_off" and n:
        arrays["lengths"] = arrays["lengths"] + draw(st.sampled_from([-1, 1]))
    elif kind == "zero_len" and n:
        arrays["lengths"][draw(st.integers(0, n - 1))] = 0
    elif kind == "neg_len" and n:
        arrays["lengths"][0] = -arrays["lengths"][0]
    elif kind == "float_len":
        arrays["lengths"] = arrays["lengths"] + draw(st.sampled_from([0.0, 0.5]))
    elif kind == "ids_count":
        arrays["ids"] = np.array([f"id{k}" for k in range(n + 1)])
    elif kind == "dup_ids" and n >= 2:
        arrays["ids"] = np.array(["same"] * n)
    elif kind == "int_ids":
        arrays["ids"] = np.arange(n) * 3
    elif kind == "drop_key":
        del arrays[draw(st.sampled_from(["values", "lengths"]))]
    elif kind == "values_3d":
        arrays["values"] = values.reshape(1, *values.shape)
    elif kind == "values_1d" and f == 1:
        arrays["values"] = values.reshape(-1)
    elif kind == "str_values":
        arrays["values"] = values.astype(str)
    elif kind == "object":
        arrays["ids"] = np.array([object()] * n, dtype=object)
    elif kind == "int_values":
        arrays["values"] = np.nan_to_num(values).clip(-1e6, 1e6).astype(np.int64)
    elif kind in ("offsets", "offsets_bad", "offsets_and_lengths"):
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if kind == "offsets_bad":
            offsets = offsets.astype(np.float64) if draw(st.booleans()) else offsets
            how = draw(st.sampled_from(["shift", "swap", "drop", "negate", "float", "huge", "2d"]))
            if how == "shift":
                offsets = offsets + draw(st.sampled_from([-1, 1]))
            elif how == "swap" and offsets.size > 2:
                offsets[[1, 2]] = offsets[[2, 1]]
            elif how == "drop":
                offsets = offsets[:-1]
            elif how == "negate":
                offsets = -offsets
            elif how == "float":
                offsets = offsets + 0.5
            elif how == "huge":
                offsets = offsets.astype(np.uint64)
                offsets[-1] = np.uint64(2**64 - 1)
            elif how == "2d":
                offsets = offsets.reshape(1, -1)
        arrays["offsets"] = offsets
        if kind != "offsets_and_lengths":
            del arrays["lengths"]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    raw = buf.getvalue()
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == "flip" and raw:
        pos = draw(st.integers(0, len(raw) - 1))
        raw = raw[:pos] + bytes([raw[pos] ^ draw(st.integers(1, 255))]) + raw[pos + 1 :]
    return kind, arrays, raw


@_FUZZ
@given(case=mutated_npz())
def test_fuzz_npz_never_crashes(tmp_path_factory, case):
    kind, arrays, raw = case
    p = write(tmp_path_factory.mktemp("npz") / "fuzz data.npz", raw)
    s = _check_outcome(p)
    if kind in ("none", "offsets") and len(arrays["values"]) > 0:
        assert s is not None
        assert np.array_equal(s.values, arrays["values"])
        expected = arrays["lengths"] if kind == "none" else np.diff(arrays["offsets"])
        assert s.lengths.tolist() == expected.tolist()
