"""What the Python API takes as data, turned into :class:`~seqmask.data.Sequences`.

    a path (str or Path)          read as the run reads files (``data`` in its config)
    a list of arrays              ragged: sequence i is ``(length_i, features)`` numbers
                                  (``(length_i,)``: one feature) or ``(length_i,)`` tokens
    values, lengths=              padded ``(n, time, features)`` (or ``(n, time)``) with the
                                  true lengths; real steps sit where the run's ``data.padding``
                                  puts them (post: first, pre: last). ``(values, lengths)``
                                  as a tuple is the same when values is 3-D.
    a pandas DataFrame            long format, one row per step, with the run's ``id_column``
                                  (and ``step_column``, ``feature_columns``), as a CSV file
    Sequences                     as it is

The lengths are always the ones given or read, never guessed from the values: what sits
in the padding of a padded array is never looked at. Ids default to the positions
``"0" .. "n-1"``; ``ids=`` names them. Every problem is a DataError naming the sequence,
row or step, as the file readers do. Nothing is normalized here: the run does that.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from collections.abc import Sequence as PySequence
from pathlib import Path
from typing import Any

import numpy as np

from seqmask.config import Config, Padding
from seqmask.data import Sequences, truncate
from seqmask.data.readers import Options, checked_float32
from seqmask.errors import DataError

# What `data` may be, for the type checker; the forms are told apart at run time.
Data = Any

FRAME = "the DataFrame"
LIST = "the list of sequences"
PADDED = "the padded array"


def sequences_from(data: Data, cfg: Config, *, lengths: Any = None, ids: PySequence[Any] | None = None) -> Sequences:
    """`data` in any of the forms above, checked against `cfg`'s ``input.kind`` and
    truncated to ``data.max_len`` as a file would be."""
    from seqmask.data.loading import check_kind, load

    if isinstance(data, str | Path):
        if lengths is not None or ids is not None:
            raise DataError(f"{data}: lengths= and ids= are for arrays; a file has its own lengths and ids")
        return load(data, cfg)
    if isinstance(data, Sequences):
        seqs = data
    elif _is_frame(data):
        if lengths is not None or ids is not None:
            raise DataError(f"{FRAME}: lengths= and ids= are for arrays; a DataFrame has its own id column")
        seqs = _from_frame(data, cfg)
    elif lengths is not None or (isinstance(data, tuple) and len(data) == 2 and np.ndim(data[0]) == 3):
        values, lengths = (data, lengths) if lengths is not None else data
        seqs = from_padded(values, lengths, cfg.data.padding, ids)
    elif isinstance(data, np.ndarray) and data.ndim >= 2 and data.dtype != object:
        raise DataError(
            f"{PADDED}: a padded array {data.shape} needs the true lengths too: "
            "run.encode(values, lengths=lengths); seqmask never guesses them from the values"
        )
    elif isinstance(data, list | tuple):
        seqs = from_list(data, ids)
    else:
        raise DataError(
            f"cannot read data of type {type(data).__name__}: give a file path, a list of "
            "(length, features) arrays, a padded array with lengths=, or a pandas DataFrame"
        )
    check_kind(seqs, cfg)
    return truncate(seqs, cfg.data.max_len, cfg.data.truncating)


def _ids(ids: PySequence[Any] | None, n: int, where: str) -> np.ndarray:
    if ids is None:
        return np.arange(n).astype(str)
    out = np.asarray([str(i) for i in ids])
    if out.shape != (n,):
        raise DataError(f"{where}: got {len(out)} ids for {n} sequences")
    if len(np.unique(out)) != n:
        unique, counts = np.unique(out, return_counts=True)
        raise DataError(f"{where}: id {str(unique[counts > 1][0])!r} is given to more than one sequence")
    return out


def from_list(data: PySequence[Any], ids: PySequence[Any] | None = None) -> Sequences:
    """Ragged sequences: numbers ``(length, features)`` / ``(length,)``, or tokens ``(length,)``."""
    if not len(data):
        raise DataError(f"{LIST}: is empty")
    arrays = [np.asarray(s) for s in data]
    tokens = [a.dtype.kind in "US" for a in arrays]
    if any(tokens) and not all(tokens):
        i = tokens.index(not tokens[0])
        raise DataError(f"{LIST}: sequence {i} holds {'tokens' if tokens[i] else 'numbers'} but sequence 0 does not")
    width = None
    parts = []
    for i, a in enumerate(arrays):
        where = f"{LIST}: sequence {i}"
        if tokens[0]:
            if a.ndim != 1:
                raise DataError(f"{where}: tokens must be one per step, shape (length,), got {a.shape}")
            parts.append(a.astype(str))
        else:
            if a.dtype.kind not in "fiub":
                raise DataError(f"{where}: must hold numbers or tokens, got dtype {a.dtype}")
            if a.ndim == 1:
                a = a.reshape(-1, 1)  # (length, 1)
            if a.ndim != 2:
                raise DataError(f"{where}: must have shape (length, features), got {a.shape}")
            width = a.shape[1] if width is None else width
            if a.shape[1] != width:
                raise DataError(f"{where}: has {a.shape[1]} features but sequence 0 has {width}")
            parts.append(checked_float32(a, _place(where)))
        if not len(a):
            raise DataError(f"{where}: has no steps; every sequence needs at least one")
    values = np.concatenate(parts)
    lengths = np.asarray([len(p) for p in parts], np.int64)
    return Sequences(values, lengths, _ids(ids, len(parts), LIST), source=LIST)


def _place(where: str) -> Callable[[int, int], str]:
    return lambda step, feature: f"{where}: step {step}, feature {feature}"


def from_padded(values: Any, lengths: Any, padding: Padding, ids: PySequence[Any] | None = None) -> Sequences:
    """A padded batch ``(n, time, features)`` (2-D: one feature) and its true lengths ``(n,)``."""
    values = np.asarray(values)
    lengths = np.asarray(lengths)
    if values.ndim == 2:
        values = values[:, :, None]  # (n, time, 1)
    if values.ndim != 3:
        raise DataError(f"{PADDED}: must have shape (sequences, time, features), got {values.shape}")
    if lengths.ndim != 1 or len(lengths) != len(values):
        raise DataError(f"{PADDED}: lengths must have shape ({len(values)},), one per sequence, got {lengths.shape}")
    if lengths.dtype.kind not in "iu" and not (lengths.dtype.kind == "f" and np.all(lengths == np.round(lengths))):
        raise DataError(f"{PADDED}: lengths must be whole numbers, got dtype {lengths.dtype}")
    lengths = lengths.astype(np.int64)
    time_len = values.shape[1]
    bad = np.flatnonzero((lengths < 1) | (lengths > time_len))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{PADDED}: sequence {i} has length {int(lengths[i])}, outside 1 .. {time_len} (the time axis)")
    # Only the real steps are taken: what the padding holds is never read.
    start = np.zeros_like(lengths) if padding == "post" else time_len - lengths
    rows = [values[i, start[i] : start[i] + lengths[i]] for i in range(len(values))]
    if values.dtype.kind in "US":
        if values.shape[2] != 1:
            raise DataError(f"{PADDED}: tokens must be one per step, (sequences, time), got {values.shape}")
        return Sequences(np.concatenate(rows)[:, 0].astype(str), lengths, _ids(ids, len(rows), PADDED), PADDED)
    if values.dtype.kind not in "fiub":
        raise DataError(f"{PADDED}: must hold numbers or tokens, got dtype {values.dtype}")
    for i, row in enumerate(rows):
        checked_float32(row, _place(f"{PADDED}: sequence {i}"))
    return Sequences(np.concatenate(rows), lengths, _ids(ids, len(rows), PADDED), source=PADDED)


def _is_frame(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "pandas" and type(data).__name__ == "DataFrame"


def _from_frame(frame: Any, cfg: Config) -> Sequences:
    """Long format, read by the Parquet reader (so the rules and the messages are the
    file readers'): row numbers in messages are the frame's 1-based row positions."""
    from seqmask.data.readers.parquet import read_parquet

    d = cfg.data
    opts = Options(
        id_column=d.id_column,
        step_column=d.step_column,
        feature_columns=tuple(d.feature_columns) if d.feature_columns is not None else None,
        id_key=d.id_key,
        values_key=d.values_key,
        tokens_key=d.tokens_key,
    )
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
    except Exception as e:  # noqa: BLE001 - pyarrow refuses mixed or object columns in many ways
        raise DataError(f"{FRAME}: cannot be converted to a table ({e})") from None
    with tempfile.TemporaryDirectory(prefix="seqmask-frame-") as tmp:
        path = Path(tmp) / "frame.parquet"
        pq.write_table(table, path)
        seqs = read_parquet(path, FRAME, opts)
    return seqs
