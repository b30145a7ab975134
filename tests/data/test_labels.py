"""seqmask.data.labels: reading id,label files, by id, with the file and line in every error."""

import codecs
from pathlib import Path

import numpy as np
import pytest

from seqmask.data import Sequences
from seqmask.data.labels import read_labels
from seqmask.errors import DataError


def sequences(ids: list[str]) -> Sequences:
    return Sequences(np.zeros((len(ids), 1)), np.ones(len(ids), np.int64), ids, source="data.csv")


SEQS = sequences(["a", "b", "c", "d"])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- read_labels


def test_labels_follow_the_order_of_the_data_not_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "id,label\nd,1\n\nb,0\n  \na, 1 \nc,0\n\n")  # blank lines and spaces are fine
    labels = read_labels(path, SEQS)
    np.testing.assert_array_equal(labels, [1, 0, 0, 1])
    assert labels.dtype == np.int64


def test_header_with_spaces_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, " id , label \na,0\nb,0\nc,1\nd,0\n")
    np.testing.assert_array_equal(read_labels(path, SEQS), [0, 0, 1, 0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,lbl\na,1\n", r"labels.csv, line 1: a labels file starts with the header 'id,label', got 'id,lbl'"),
        ("", r"labels.csv, line 1: .*header 'id,label', got ''"),
        ("a,1\nb,0\n", r"labels.csv, line 1: .*header 'id,label', got 'a,1'"),
        ("id,label\na,1\nb,2\n", r"labels.csv, line 3: label must be 0 \(normal\) or 1 \(anomaly\), got '2'"),
        ("id,label\na,1\nb,\n", r"labels.csv, line 3: label must be 0 .*got ''"),
        ("id,label\na,yes\n", r"labels.csv, line 2: label must be .*got 'yes'"),
        ("id,label\na,1,x\n", r"labels.csv, line 2: expected 2 fields \(id,label\), got 3"),
        ("id,label\na,1\nb,0\n\na,0\n", r"labels.csv, line 5: id 'a' is labelled twice"),
        ("id,label\na,1\nzz,0\nb,0\n", r"labels.csv, line 3: id 'zz' is not a sequence of data.csv$"),
        (
            "id,label\na,1\nzz,0\nb,0\nyy,1\nxx,1\n",
            r"labels.csv, line 3: id 'zz' is not a sequence of data.csv \(and 2 more unknown ids\)$",
        ),
        ("id,label\na,1\nb,0\nd,0\n", r"labels.csv: has no label for sequence 'c'; every sequence needs one"),
        ("id,label\nb,0\n", r"labels.csv: has no label for sequence 'a' \(and 2 more\); every sequence needs one"),
    ],
)
def test_bad_labels_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_labels(write(tmp_path, text), SEQS)


def test_unknown_ids_are_reported_before_missing_ones(tmp_path: Path) -> None:
    # Unknown ids usually mean the wrong data file: say that, not "no label for ...".
    with pytest.raises(DataError, match=r"id 'x' is not a sequence .*\(and 1 more unknown ids\)"):
        read_labels(write(tmp_path, "id,label\nx,1\ny,0\n"), SEQS)


def test_a_labels_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"id,label\r\na,1\r\nb,0\r\nc,0\r\nd,1\r\n")
    np.testing.assert_array_equal(read_labels(path, SEQS), [1, 0, 0, 1])


def test_unreadable_labels_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read labels file .*missing.csv"):
        read_labels(tmp_path / "missing.csv", SEQS)
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.csv: not a UTF-8 text file"):
        read_labels(path, SEQS)


# --------------------------------------------------------------------------- auroc
