"""Known labels of sequences: a CSV `id,label` (1 = anomaly, or any class name for the report),
read by id with the file and line in every error. The metrics over them are
:mod:`seqmask.analysis.metrics`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from seqmask.data import Sequences
from seqmask.errors import DataError


def read_labels(path: str | Path, seqs: Sequences) -> np.ndarray:
    """(num_sequences,) int64 0/1: the label of each sequence of `seqs`, in its order.

    Every sequence needs exactly one label, and every id in the file must be one of
    `seqs`' ids: anything else is a DataError naming the file and line.
    """
    book = LabelFile.read(path)
    labels = book.lookup(seqs.ids)
    book.check_all_used(seqs.source)
    book.check_found(labels, seqs.ids)
    return labels


def read_rows(path: Path) -> list[list[str]]:
    """The rows of a labels CSV, or a DataError naming the file."""
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" export starts with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))
    except OSError as e:
        raise DataError(f"cannot read labels file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e.reason})") from e


class LabelFile:
    """A labels file read once, for data that comes part by part (streamed shards): each
    part's labels are looked up by id, and at the end every id of the file must have been
    one of the data's."""

    def __init__(self, path: Path, rows: dict[str, tuple[int, int]]) -> None:
        self.path = path
        self._rows = rows  # id -> (label, line)
        self._used: set[str] = set()

    @classmethod
    def read(cls, path: str | Path) -> LabelFile:
        path = Path(path)
        rows = read_rows(path)
        header = [c.strip() for c in rows[0]] if rows else []
        if header != ["id", "label"]:
            raise DataError(
                f"{path}, line 1: a labels file starts with the header 'id,label', got {','.join(header)!r}"
            )
        found: dict[str, tuple[int, int]] = {}
        for line, row in enumerate(rows[1:], start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2:
                raise DataError(f"{path}, line {line}: expected 2 fields (id,label), got {len(row)}")
            sid, value = row[0], row[1].strip()
            if value not in ("0", "1"):
                raise DataError(f"{path}, line {line}: label must be 0 (normal) or 1 (anomaly), got {value!r}")
            if sid in found:
                raise DataError(f"{path}, line {line}: id {sid!r} is labelled twice")
            found[sid] = (int(value), line)
        return cls(path, found)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """(n,) int64: the label of each id, -1 where the file has none."""
        labels = np.full(len(ids), -1, np.int64)
        for i, sid in enumerate(ids):
            hit = self._rows.get(str(sid))
            if hit is not None:
                labels[i] = hit[0]
                self._used.add(str(sid))
        return labels

    def check_found(self, labels: np.ndarray, ids: np.ndarray) -> None:
        """DataError for the first of `ids` that `lookup` found no label for."""
        missing = np.flatnonzero(labels < 0)
        if len(missing):
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            first = str(ids[missing[0]])
            raise DataError(f"{self.path}: has no label for sequence {first!r}{more}; every sequence needs one")

    def check_all_used(self, source: str) -> None:
        """DataError for the first id of the file (by line) that no `lookup` asked for."""
        unknown = sorted((line, sid) for sid, (_, line) in self._rows.items() if sid not in self._used)
        if unknown:
            line, sid = unknown[0]
            more = f" (and {len(unknown) - 1} more unknown ids)" if len(unknown) > 1 else ""
            raise DataError(f"{self.path}, line {line}: id {sid!r} is not a sequence of {source or 'the data'}{more}")
