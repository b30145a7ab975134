"""seqmask.data.readers, one file per sequence (csv_dir / npy_dir): directories and glob
patterns, every named error, and fuzzing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from readers_support import BAD_BYTES, FUZZ, check_outcome, error, write

from seqmask.data.readers import detect_format, read_sequences


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a))
    return buf.getvalue()


# -- happy paths -----------------------------------------------------------------------------


def test_csv_directory_ids_and_sorted_order(tmp_path):
    d = tmp_path / "recordings"
    write(d / "walk-2.csv", "x,y\n1,2\n3,4\n")
    write(d / "run.csv", "x,y\n5,6\n")
    write(d / "walk-10.csv", "x,y\n7,8\n")
    s = read_sequences(d)
    assert s.source == str(d)
    assert s.ids.tolist() == ["run", "walk-10", "walk-2"]  # sorted by name (code points)
    assert s.lengths.tolist() == [1, 1, 2]
    assert s.values.tolist() == [[5, 6], [7, 8], [1, 2], [3, 4]]
    assert detect_format(d) == "csv_dir"


def test_csv_glob_feature_and_step_columns(tmp_path):
    write(tmp_path / "a.csv", "t,x,y\n1,10,11\n0,20,21\n")
    write(tmp_path / "b.csv", "y,t,x\n5,0,6\n")
    write(tmp_path / "c.txt", "not part of it")
    pattern = tmp_path / "*.csv"
    s = read_sequences(pattern, step_column="t", feature_columns=["x", "y"])
    assert s.source == str(pattern) and s.ids.tolist() == ["a", "b"]
    assert s.values.tolist() == [[20, 21], [10, 11], [6, 5]]
    assert detect_format(pattern) == "csv_dir"
    assert read_sequences(tmp_path / "?.csv", feature_columns=["x"]).lengths.tolist() == [2, 1]


def test_csv_files_skip_an_id_column_and_read_gzip_bom_crlf(tmp_path):
    import gzip

    write(tmp_path / "d" / "a.csv", "\ufeffid,x\r\nq,1\r\nq,2\r\n".encode("utf-8"))
    write(tmp_path / "d" / "b.csv.gz", gzip.compress(b"id,x\nq,3\n"))
    s = read_sequences(tmp_path / "d")
    assert s.ids.tolist() == ["a", "b"] and s.num_features == 1
    assert s.values[:, 0].tolist() == [1, 2, 3]


def test_csv_files_feature_names_are_the_header_names(tmp_path):
    d = tmp_path / "d"
    write(d / "a.csv", "id,y,t,x\nq,1,0,2\n")
    write(d / "b.csv", "x,t,y\n4,0,3\n")  # other columns' order: needs feature_columns
    assert read_sequences(d / "a*.csv").feature_names == ("y", "t", "x")  # header order, the id left out
    assert read_sequences(d / "a*.csv", step_column="t").feature_names == ("y", "x")
    s = read_sequences(d, feature_columns=["x", "y"])
    assert s.feature_names == ("x", "y") and s.values.tolist() == [[2, 1], [4, 3]]  # in the order asked for
    write(tmp_path / "n" / "a.npy", npy_bytes([[1.0, 2.0]]))
    assert read_sequences(tmp_path / "n").feature_names == ()  # .npy files have no names


def test_npy_directory_and_glob(tmp_path):
    d = tmp_path / "arrays"
    write(d / "b.npy", npy_bytes(np.arange(6, dtype=np.int16).reshape(3, 2)))
    write(d / "a.npy", npy_bytes([[1.5, 2.5]]))
    write(d / ".hidden.npy", b"junk")  # hidden files are left out
    (d / "subdir").mkdir()  # and so are sub-directories
    s = read_sequences(d)
    assert s.ids.tolist() == ["a", "b"] and s.lengths.tolist() == [1, 3]
    assert s.values.dtype == np.float32 and s.values.tolist() == [[1.5, 2.5], [0, 1], [2, 3], [4, 5]]
    assert read_sequences(d / "*.npy").ids.tolist() == ["a", "b"]
    assert detect_format(d) == "npy_dir"


def test_npy_one_dimensional_is_one_feature(tmp_path):
    write(tmp_path / "d" / "x.npy", npy_bytes([1.0, 2.0, 3.0]))
    s = read_sequences(tmp_path / "d", format="npy_dir")
    assert s.values.shape == (3, 1)


def test_recursive_glob(tmp_path):
    write(tmp_path / "p1" / "a.npy", npy_bytes([1.0]))
    write(tmp_path / "p2" / "b.npy", npy_bytes([2.0]))
    s = read_sequences(tmp_path / "**" / "*.npy")
    assert s.ids.tolist() == ["a", "b"]


def test_explicit_format_reads_only_its_files(tmp_path):
    d = tmp_path / "mixed"
    write(d / "a.csv", "x\n1\n")
    write(d / "b.npy", npy_bytes([2.0]))
    write(d / "README.md", "notes")
    assert read_sequences(d, format="csv_dir").ids.tolist() == ["a"]
    assert read_sequences(d, format="npy_dir").ids.tolist() == ["b"]


# -- errors --------------------------------------------------------------------------------------


def test_directory_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no .csv or .npy files" in error(empty)
    mixed = tmp_path / "mixed"
    write(mixed / "a.csv", "x\n1\n")
    write(mixed / "b.npy", npy_bytes([1.0]))
    assert "mixes .csv and .npy files" in error(mixed)
    other = tmp_path / "other"
    write(other / "a.csv", "x\n1\n")
    write(other / "notes.md", "hi")
    msg = error(other)
    assert "also holds 'notes.md'" in msg and "csv_dir" in msg
    only_other = tmp_path / "only_other"
    write(only_other / "notes.md", "hi")
    assert "has no .csv or .npy files (it holds e.g. 'notes.md')" in error(only_other)
    assert "no .npy files to read" in error(other, format="npy_dir")


def test_glob_and_path_errors(tmp_path):
    assert "no files match" in error(tmp_path / "*.csv")
    assert "no files match" in error(tmp_path / "nowhere" / "*.npy")
    assert "not found" in error(tmp_path / "nowhere", format="csv_dir")
    f = write(tmp_path / "a.csv", "x\n1\n")
    assert "is a file; one file per sequence needs a directory or a glob pattern" in error(f, format="csv_dir")


def test_duplicate_ids_name_both_files(tmp_path):
    a = write(tmp_path / "p1" / "a.npy", npy_bytes([1.0]))
    b = write(tmp_path / "p2" / "a.npy", npy_bytes([2.0]))
    msg = error(tmp_path / "*" / "a.npy")
    assert "id 'a' appears more than once" in msg and str(a) in msg and str(b) in msg


@pytest.mark.parametrize(
    "content, kw, expected",
    [
        ("x,y\n1,2\n1,abc\n", {}, ", line 3: column 'y' has non-numeric value 'abc'"),
        ("x,y\n1,2\n1\n", {}, ", line 3: expected 2 cells"),
        ("x,y\n1,2\n1,nan\n", {}, ", line 3: column 'y' is NaN/Inf"),
        ("x,y\n1,2\n1,\n", {}, ", line 3: column 'y' is empty"),
        ("x,y\n1,1e39\n", {}, ", line 2: column 'y' value '1e39' is too large for float32"),
        ("x,y\n", {}, ": no steps (the file has a header row but no data rows)"),
        ("", {}, ": no sequences (the file is empty"),
        ("t,x\n0,1\n1,2\n0,3\n", {"step_column": "t"}, ", line 4: step 0 appears twice (also on line 2)"),
        ("x,y\n1,2\n", {"step_column": "t"}, ": no step column 't'"),
        ("x,y\n1,2\n", {"feature_columns": ["x", "t"]}, ": feature column 't' not found"),
        ("id\n1\n", {}, ": no feature columns"),
    ],
)
def test_csv_file_errors_name_the_file_and_line(tmp_path, content, kw, expected):
    d = tmp_path / "recs"
    write(d / "good.csv", "t,x,y\n0,1,2\n")
    bad = write(d / "my bad.csv", content)
    msg = error(d, names=bad, **kw)
    assert msg.startswith(f"{bad}{expected}"), msg


def test_csv_files_with_different_columns(tmp_path):
    d = tmp_path / "recs"
    a = write(d / "a.csv", "x,y\n1,2\n")
    b = write(d / "b.csv", "y,x\n1,2\n")
    msg = error(d, names=b)
    assert msg.startswith(f"{b}: feature columns (y, x) differ from those of {a} (x, y)"), msg
    assert read_sequences(d, feature_columns=["x", "y"]).values.tolist() == [[1, 2], [2, 1]]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", ": file is empty"),
        (b"hello", ": not a .npy file"),
        (b"\x93NUMPY\x01\x00garbage", ": not a valid .npy file"),
        (npy_bytes(np.zeros((0, 2))), ": no steps (shape (0, 2))"),
        (npy_bytes(np.zeros((2, 0))), ": no features"),
        (npy_bytes(np.zeros((2, 2, 2))), ": must be a 2-D [steps, features] array"),
        (npy_bytes(np.float64(3.0)), ": must be a 2-D"),
        (npy_bytes(np.array([["a"]])), ": must hold numbers"),
        (npy_bytes(np.array([True])), ": must hold numbers"),
        (npy_bytes(np.array([[1.0, 2.0], [3.0, np.nan]])), ": step 1 (0-based), feature 1 is NaN/Inf"),
        (npy_bytes(np.array([[1e300]])), ": step 0 (0-based), feature 0 value 1e+300 is too large for float32"),
    ],
)
def test_npy_file_errors(tmp_path, content, expected):
    d = tmp_path / "arrays"
    write(d / "good.npy", npy_bytes([[1.0, 2.0]]))
    bad = write(d / "bad one.npy", content)
    msg = error(d, names=bad)
    assert msg.startswith(f"{bad}{expected}"), msg


def test_npy_object_array_and_feature_mismatch(tmp_path):
    d = tmp_path / "arrays"
    write(d / "a.npy", npy_bytes([[1.0, 2.0]]))
    bad = write(d / "b.npy", npy_bytes(np.array([1, "x"], dtype=object)))  # np.save pickles it
    assert "Python objects" in error(d, names=bad)
    bad = write(d / "b.npy", npy_bytes([[1.0, 2.0, 3.0]]))
    assert error(d, names=bad) == f"{bad}: has 3 features but {d / 'a.npy'} has 2"


def test_npy_rejects_column_options(tmp_path):
    write(tmp_path / "d" / "a.npy", npy_bytes([1.0]))
    assert "apply only to tables of one row per step" in error(tmp_path / "d", step_column="t")


# -- fuzzing -----------------------------------------------------------------------------------

_VAL = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def directory(draw):
    kind = draw(st.sampled_from(["csv", "npy"]))
    width = draw(st.integers(1, 3))
    names = draw(
        st.lists(
            st.text("abcXYZ019-_ é", min_size=1, max_size=5).map(str.strip).filter(bool),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    files = {}
    for name in names:
        n = draw(st.integers(1, 4))
        rows = [draw(st.lists(_VAL, min_size=width, max_size=width)) for _ in range(n)]
        if kind == "csv":
            text = (
                ",".join(f"f{j}" for j in range(width))
                + "\n"
                + "".join(",".join(repr(v) for v in r) + "\n" for r in rows)
            )
            files[name + ".csv"] = (text.encode(), rows)
        else:
            files[name + ".npy"] = (npy_bytes(np.array(rows, dtype=np.float32)), rows)
    return kind, files


@FUZZ
@given(case=directory(), use_glob=st.booleans())
def test_fuzz_valid_directory_loads_exactly(tmp_path_factory, case, use_glob):
    kind, files = case
    d = tmp_path_factory.mktemp("dir")
    for name, (raw, _) in files.items():
        write(d / name, raw)
    s = read_sequences(d / f"*.{kind}" if use_glob else d)
    order = sorted(files, key=lambda n: str(d / n))
    assert s.ids.tolist() == [n.rsplit(".", 1)[0] for n in order]
    assert np.array_equal(s.values, np.array([r for n in order for r in files[n][1]], dtype=np.float32))


@st.composite
def mutated(draw):
    kind, files = draw(directory())
    name = draw(st.sampled_from(sorted(files)))
    raw = files[name][0]
    how = draw(
        st.sampled_from(
            [
                "none",
                "truncate",
                "bytes",
                "flip",
                "empty",
                "garbage",
                "junk_cell",
                "wider",
                "extra_file",
                "other_kind",
                "no_files",
            ]
        )
    )
    if how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif how == "bytes":
        pos = draw(st.integers(0, len(raw)))
        raw = raw[:pos] + draw(st.sampled_from(BAD_BYTES)) + raw[pos:]
    elif how == "flip" and raw:
        pos = draw(st.integers(0, len(raw) - 1))
        raw = raw[:pos] + bytes([raw[pos] ^ draw(st.integers(1, 255))]) + raw[pos + 1 :]
    elif how == "empty":
        raw = b""
    elif how == "garbage":
        raw = draw(st.binary(max_size=80))
    elif how == "junk_cell" and kind == "csv":
        lines = raw.split(b"\n")
        k = draw(st.integers(0, len(lines) - 1))
        lines[k] += draw(st.sampled_from([b",1", b"nan", b"x", b"1e400", b",", b'"']))
        raw = b"\n".join(lines)
    elif how == "wider":
        raw = (
            npy_bytes(np.zeros((2, 9)))
            if kind == "npy"
            else b",".join(b"c%d" % j for j in range(9)) + b"\n" + b",".join([b"1"] * 9) + b"\n"
        )
    files = {k: v[0] for k, v in files.items()}
    files[name] = raw
    if how == "extra_file":
        files["zz.other"] = b"x"
    elif how == "other_kind":
        files["zz.npy" if kind == "csv" else "zz.csv"] = raw
    elif how == "no_files":
        files = {".hidden.csv": raw} if draw(st.booleans()) else {}
    return how, files


@FUZZ
@given(case=mutated())
def test_fuzz_mutated_directory_never_crashes(tmp_path_factory, case):
    how, files = case
    d = tmp_path_factory.mktemp("dir")
    for name, raw in files.items():
        write(d / name, raw)
    (d / "sub.csv").mkdir()  # a sub-directory, whatever its name, is never a sequence
    s = check_outcome(d, names=[d / n for n in files])
    if how == "none":
        assert s is not None
