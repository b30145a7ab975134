"""Checks on numpy arrays that several readers share: loading an array without
pickle, the shape and dtype of a numeric array, float32 cells, the width of every
step, where a global step lies, and the first repeated key.

Each check takes the reader's own wording for the place (a callable, or a short
text) so that one piece of logic serves every format while each message still
names the file and the line / row / sequence in that format's terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized

import numpy as np

from seqmask.data.readers._common import reason, show
from seqmask.errors import DataError


def load_array(load: Callable[[], np.ndarray], objects: str, broken: str) -> np.ndarray:
    """``load()`` (numpy, ``allow_pickle=False``), with its failures as ``DataError``:
    ``objects`` when the array holds Python objects (it would need pickle), else
    ``broken`` and the reason."""
    try:
        return load()
    except ValueError as e:
        text = str(e).lower()
        if "pickle" in text or "object" in text:
            raise DataError(objects) from None
        raise DataError(f"{broken} ({reason(e)})") from None
    except Exception as e:  # noqa: BLE001 - a corrupt array fails in many ways
        raise DataError(f"{broken} ({reason(e)})") from None


def numeric_steps(values: np.ndarray, shown: str, array: str | None) -> np.ndarray:
    """``values`` as a numeric ``(steps, features)`` array (1-D: one feature), or
    ``DataError``.

    ``array`` names it inside an .npz archive. None means a lone .npy file: it is a
    whole sequence, so it needs a step too (an archive's rows are checked against
    its lengths instead).
    """
    it = f"{shown}: array {array!r}" if array is not None else f"{shown}:"
    if values.dtype.kind not in "fiu":
        raise DataError(f"{it} must hold numbers (float or int), got dtype {values.dtype}")
    if values.ndim == 1:
        values = values.reshape(-1, 1)  # (steps, 1)
    if values.ndim != 2:
        shape = "2-D [steps, features]" if array is not None else "a 2-D [steps, features] array"
        raise DataError(f"{it} must be {shape} (or 1-D for one feature), got shape {values.shape}")
    if array is None and values.shape[0] == 0:
        raise DataError(f"{it} no steps (shape {values.shape}); every sequence needs at least one step")
    if values.shape[1] == 0:
        verb = " has" if array is not None else ""
        raise DataError(f"{it}{verb} no features (shape {values.shape})")
    return values


# -- float32 cells ---------------------------------------------------------------------

F32_MAX = float(np.finfo(np.float32).max)


def float32_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as float32, and a bool mask of the cells that are not finite there
    (NaN/Inf, or finite but beyond float32's range); both shaped like ``values``."""
    with np.errstate(over="ignore", invalid="ignore"):
        values32 = values.astype(np.float32)
    return values32, ~np.isfinite(values32)


def bad_value_text(original: float) -> str:
    """Why a non-finite float32 cell is bad, from its original value."""
    if np.isfinite(original):
        return f"value {float(original)!r} is too large for float32"
    return "is NaN/Inf"


def first_cell(bad: np.ndarray) -> tuple[int, int]:
    """``(step, feature)`` of the first true cell of a ``(steps, features)`` mask, in
    file order (step by step); the mask must have one."""
    step, feature = (int(a[0]) for a in np.nonzero(bad))
    return step, feature


def checked_float32(values: np.ndarray, place: Callable[[int, int], str]) -> np.ndarray:
    """``values`` ``(steps, features)`` as float32, or ``DataError`` for the first cell
    that is NaN/Inf or too large for float32: ``place(step, feature)`` names it with
    the file ("data.jsonl, line 3: sequence 'a': step 1, feature 0")."""
    values32, bad = float32_values(values)
    if bad.any():
        step, feature = first_cell(bad)
        raise DataError(f"{place(step, feature)} {bad_value_text(values[step, feature])}")
    return values32


# -- steps and sequences ---------------------------------------------------------------


def common_width(widths: np.ndarray, place: Callable[[int], str], first: str) -> int:
    """The number of features that every step has, from each step's count
    ``widths`` ``(steps,)``; ``DataError`` for the first step with another count,
    named by ``place(step)``, against ``first``, which names step 0."""
    width = int(widths[0])
    ragged = np.flatnonzero(widths != width)
    if ragged.size:
        s = int(ragged[0])
        raise DataError(f"{place(s)} has {int(widths[s])} features but {first} has {width}")
    return width


def lengths_of(parts: Sequence[Sized]) -> np.ndarray:
    """The length of each part ``(parts,)`` int64: the steps of each sequence read
    one by one, or the features of each step."""
    return np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))


def locate_step(lengths: Sequence[int] | np.ndarray, k: int) -> tuple[int, int]:
    """``(sequence, step within it)`` of the ``k``-th step of all the sequences,
    which are ``lengths`` long (each at least 1) and laid end to end."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])  # (sequences + 1,)
    seq = int(np.searchsorted(offsets, k, side="right") - 1)
    return seq, k - int(offsets[seq])


def first_repeat(order: np.ndarray, *keys: np.ndarray) -> tuple[int, int] | None:
    """The first row (in file order) whose keys equal an earlier row's, as
    ``(earlier row, that row)``, or None.

    ``order`` sorts the rows by ``keys`` stably, so equal keys sit side by side in
    file order; the repeat that comes first is the pair whose later row is
    smallest. All arrays are ``(rows,)``.
    """
    same = np.ones(max(order.size - 1, 0), dtype=bool)
    for key in keys:
        in_order = key[order]
        same &= in_order[1:] == in_order[:-1]
    if not same.any():
        return None
    earlier, later = order[:-1][same], order[1:][same]
    j = int(np.argmin(later))
    return int(earlier[j]), int(later[j])


def check_unique_ids(ids: np.ndarray, shown: str, where: Callable[[int], str], what: str) -> None:
    """``DataError`` for the first id (by its second appearance) that appears twice.

    ``ids`` is ``(sequences,)``; ``where(i)`` places entry ``i`` ("line 4", "row 3",
    "index 2"); ``what`` says where the ids live ("in array 'ids'").
    """
    repeat = first_repeat(np.argsort(ids, kind="stable"), ids)
    if repeat is not None:
        first, second = repeat
        raise DataError(
            f"{shown}: id {show(str(ids[second]))} appears more than once {what} ({where(first)} and {where(second)})"
        )
