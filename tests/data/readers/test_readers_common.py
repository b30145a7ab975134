"""The checks the readers share (seqmask.data.readers._arrays, ._csvrows): each is
written once, so each is tested once here, apart from the formats that use it."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from readers_support import error, write

from seqmask.data.readers._arrays import checked_float32, common_width, first_repeat, locate_step, numeric_steps
from seqmask.data.readers._csvrows import number_problem
from seqmask.errors import DataError


def test_locate_step():
    lengths = np.array([2, 1, 3])
    # steps 0..5 end to end: (0,0) (0,1) (1,0) (2,0) (2,1) (2,2)
    assert [locate_step(lengths, k) for k in range(6)] == [(0, 0), (0, 1), (1, 0), (2, 0), (2, 1), (2, 2)]
    assert locate_step([4], 3) == (0, 3)


def test_first_repeat_is_the_earliest_second_appearance():
    keys = np.array(["b", "a", "c", "a", "b"])
    order = np.argsort(keys, kind="stable")
    assert first_repeat(order, keys) == (1, 3)  # 'a' repeats on row 3, before 'b' on row 4
    assert first_repeat(np.argsort(keys[:3], kind="stable"), keys[:3]) is None
    assert first_repeat(np.zeros(0, dtype=np.int64), np.zeros(0)) is None


def test_first_repeat_needs_every_key_equal():
    seq = np.array([0, 0, 1, 0])
    step = np.array([0.0, 1.0, 0.0, 1.0])
    assert first_repeat(np.lexsort((step, seq)), seq, step) == (1, 3)
    assert first_repeat(np.lexsort((step[:3], seq[:3])), seq[:3], step[:3]) is None


def test_common_width_names_the_first_ragged_step():
    assert common_width(np.array([2, 2, 2]), str, "step 0") == 2
    with pytest.raises(DataError, match=r"^at 2 has 1 features but step 0 has 3$"):
        common_width(np.array([3, 3, 1, 4]), lambda s: f"at {s}", "step 0")


def test_checked_float32_names_the_first_bad_cell_in_file_order():
    x = np.array([[1.0, 2.0], [1e39, np.nan]])  # (steps, features)
    with pytest.raises(DataError, match=r"^s1 f0 value 1e\+39 is too large for float32$"):
        checked_float32(x, lambda s, f: f"s{s} f{f}")
    with pytest.raises(DataError, match=r"^s0 f1 is NaN/Inf$"):
        checked_float32(np.array([[1.0, np.inf]]), lambda s, f: f"s{s} f{f}")
    assert checked_float32(x[:1], lambda s, f: "").dtype == np.float32


@pytest.mark.parametrize(
    "values, array, expected",
    [
        (np.array(["a"]), "values", "x.npz: array 'values' must hold numbers (float or int), got dtype <U1"),
        (np.zeros((1, 1, 1)), "values", "x.npz: array 'values' must be 2-D [steps, features] (or 1-D"),
        (np.zeros((1, 0)), "values", "x.npz: array 'values' has no features (shape (1, 0))"),
        (np.zeros((1, 1, 1)), None, "x.npz: must be a 2-D [steps, features] array (or 1-D"),
        (np.zeros((0, 0)), None, "x.npz: no steps (shape (0, 0)); every sequence needs at least one step"),
        (np.zeros((1, 0)), None, "x.npz: no features (shape (1, 0))"),
    ],
)
def test_numeric_steps(values, array, expected):
    with pytest.raises(DataError) as e:
        numeric_steps(values, "x.npz", array)
    assert str(e.value).startswith(expected), str(e.value)
    assert numeric_steps(np.arange(3), "x.npz", array).shape == (3, 1)


_CELLS = [
    "1",
    " 1",
    "1 ",
    "\t1\t",
    "+1",
    "-1",
    "1.",
    ".5",
    ".",
    "1e5",
    "1E+5",
    "1e",
    "e5",
    "0x10",
    "1_000",
    "NA",
    "nan",
    "NaN",
    "-nan",
    "nan(123)",
    "nan()",
    "inf",
    "-Inf",
    "INFINITY",
    "infinit",
    "1e400",
    "-1e400",
    "1e39",
    "3.4e38",
    "abc",
    "1d5",
    "  ",
    "1 2",
    "+-1",
    "+.5e-3",
    "00012",
    "1.5.",
    "infx",
    "1e-400",
    "\u00a01",
    "١",
]


def _arrow_reads(cell: str) -> float | None:
    """What pyarrow's CSV reader makes of ``cell`` in a float64 column (None: it fails)."""
    data = ('x\n"' + cell.replace('"', '""') + '"\n').encode()
    options = pacsv.ConvertOptions(column_types={"x": pa.float64()}, null_values=[""])  # as the reader
    try:
        return pacsv.read_csv(io.BytesIO(data), convert_options=options).column(0)[0].as_py()
    except pa.ArrowInvalid:
        return None


@pytest.mark.parametrize("cell", _CELLS)
def test_number_problem_agrees_with_pyarrows_csv_reader(cell):
    """A cell is a number for the messages exactly where it is one for the reader."""
    value = _arrow_reads(cell)
    problem = number_problem(cell, float32=False)
    if value is None:
        assert problem is not None and problem.startswith("has non-numeric value"), problem
    elif np.isfinite(value):
        assert problem is None
    else:
        assert problem is not None and ("NaN/Inf" in problem or "out of range" in problem), problem


@pytest.mark.parametrize(
    "name, content, kw",
    [
        ("x.npz", None, {"step_column": "t"}),
        ("x.jsonl", b'{"id": "a", "values": [1]}\n', {"feature_columns": ["x"]}),
        ("x.txt", b"a b\n", {"step_column": "t"}),
        ("d/a.npy", None, {"feature_columns": ["x"]}),
    ],
)
def test_one_message_for_column_options_where_there_are_no_columns(tmp_path, name, content, kw):
    if name.endswith(".npz"):
        buf = io.BytesIO()
        np.savez(buf, values=np.zeros((1, 1)), lengths=[1])
        content = buf.getvalue()
    elif name.endswith(".npy"):
        buf = io.BytesIO()
        np.save(buf, np.zeros(1))
        content = buf.getvalue()
    p = write(tmp_path / name, content)
    target = p.parent if name.endswith(".npy") else p
    msg = error(target, **kw)
    assert msg.startswith(
        f"{target}: step_column and feature_columns apply only to tables of one row per step "
        "(formats csv, csv_dir and long-format parquet); "
    ), msg
