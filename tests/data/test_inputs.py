"""seqmask.data.inputs: in-memory data -> Sequences, with the lengths given, never guessed."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmask.config import config_from_dict
from seqmask.data import pad
from seqmask.data.inputs import from_list, from_padded, sequences_from
from seqmask.errors import DataError


def _cfg(tmp_path: Path, **data: object):
    (tmp_path / "train.csv").write_text("id,x\na,1\n")
    return config_from_dict({"data": {"train": str(tmp_path / "train.csv"), **data}})


def test_a_ragged_list_by_hand() -> None:
    seqs = from_list([np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0]])])
    assert seqs.lengths.tolist() == [2, 1]
    assert seqs.ids.tolist() == ["0", "1"]  # positions
    assert seqs.values.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert seqs.values.dtype == np.float32


def test_one_feature_sequences_may_be_1d_and_ids_can_be_given() -> None:
    seqs = from_list([[1, 2, 3], [4]], ids=["a", 7])
    assert seqs.values.shape == (4, 1)
    assert seqs.ids.tolist() == ["a", "7"]


def test_token_lists() -> None:
    seqs = from_list([["the", "cat"], np.array(["a"])])
    assert seqs.is_tokens and seqs.lengths.tolist() == [2, 1]


def test_padded_post_and_pre_take_only_the_real_steps() -> None:
    values = np.array([[[1.0], [2.0], [99.0]], [[3.0], [99.0], [99.0]]])  # post-padded
    seqs = from_padded(values, [2, 1], "post")
    assert seqs.values[:, 0].tolist() == [1, 2, 3]
    pre = np.array([[[99.0], [1.0], [2.0]], [[99.0], [99.0], [3.0]]])
    assert from_padded(pre, np.array([2, 1]), "pre").values[:, 0].tolist() == [1, 2, 3]
    # (n, time): one feature.
    assert from_padded(values[:, :, 0], [2, 1], "post").values.shape == (3, 1)


@settings(max_examples=40)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    extra=st.integers(0, 4),
    padding=st.sampled_from(["post", "pre"]),
    fill=st.floats(-1e6, 1e6),
)
def test_padded_round_trip_ignores_whatever_is_in_the_padding(lengths, extra, padding, fill) -> None:
    ragged = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + i for i, n in enumerate(lengths)]
    seqs = from_list(ragged)
    padded = pad(seqs, np.arange(len(seqs)), max(lengths) + extra, padding, pad_value=fill)
    back = from_padded(padded, lengths, padding)
    np.testing.assert_array_equal(back.values, seqs.values)
    np.testing.assert_array_equal(back.lengths, seqs.lengths)


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "the list of sequences: is empty"),
        ([np.zeros((2, 2)), np.zeros((3, 3))], "sequence 1: has 3 features but sequence 0 has 2"),
        ([np.zeros((2, 2, 1))], "sequence 0: must have shape (length, features), got (2, 2, 1)"),
        ([np.zeros((0, 2))], "sequence 0: has no steps"),
        ([np.array([[1.0, np.nan]])], "sequence 0: step 0, feature 1 is NaN/Inf"),
        ([["a"], [1.0]], "sequence 1 holds numbers but sequence 0 does not"),
    ],
)
def test_bad_lists_name_the_sequence(data, message) -> None:
    with pytest.raises(DataError, match=None) as e:
        from_list(data)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "values, lengths, message",
    [
        (np.zeros((2, 3, 1)), [1], "lengths must have shape (2,)"),
        (np.zeros((2, 3, 1)), [1, 4], "sequence 1 has length 4, outside 1 .. 3"),
        (np.zeros((2, 3, 1)), [0, 1], "sequence 0 has length 0"),
        (np.zeros((2, 3, 1)), [1.5, 1], "lengths must be whole numbers"),
        (np.zeros(3), [1], "must have shape (sequences, time, features)"),
    ],
)
def test_bad_padded_arrays(values, lengths, message) -> None:
    with pytest.raises(DataError) as e:
        from_padded(values, lengths, "post")
    assert message in str(e.value)


def test_a_padded_array_without_lengths_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs the true lengths too"):
        sequences_from(np.zeros((2, 3, 1)), _cfg(tmp_path))


def test_ids_must_match_and_be_unique() -> None:
    with pytest.raises(DataError, match="got 1 ids for 2 sequences"):
        from_list([[1.0], [2.0]], ids=["a"])
    with pytest.raises(DataError, match="id 'a' is given to more than one sequence"):
        from_list([[1.0], [2.0]], ids=["a", "a"])


def test_a_dataframe_in_long_format_reads_like_the_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["b", "a", "b", "a"], "t": [1, 0, 0, 1], "x": [2.0, 3.0, 1.0, 4.0]})
    cfg = _cfg(tmp_path, step_column="t")
    seqs = sequences_from(frame, cfg)
    assert seqs.ids.tolist() == ["b", "a"]  # order of first appearance, as in a file
    assert seqs.values[:, 0].tolist() == [1, 2, 3, 4]  # ordered by the step column
    assert seqs.feature_names == ("x",)
    frame.to_csv(tmp_path / "same.csv", index=False)
    from_file = sequences_from(tmp_path / "same.csv", cfg)
    np.testing.assert_array_equal(from_file.values, seqs.values)


def test_dataframe_errors_name_the_frame_and_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "a"], "t": [0, 0], "x": [1.0, 2.0]})
    with pytest.raises(DataError) as e:
        sequences_from(frame, _cfg(tmp_path, step_column="t"))
    assert str(e.value) == "the DataFrame, row 2: step 0 of sequence 'a' appears twice (also on row 1)"
    with pytest.raises(DataError, match="the DataFrame: no id column 'id'"):
        sequences_from(pd.DataFrame({"x": [1.0]}), _cfg(tmp_path))


def test_the_config_kind_and_max_len_apply(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, max_len=2)
    seqs = sequences_from([np.ones((5, 1))], cfg)
    assert seqs.lengths.tolist() == [2]
    with pytest.raises(DataError, match="holds tokens, but 'input.kind' is 'values'"):
        sequences_from([["a", "b"]], cfg)


def test_other_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read data of type int"):
        sequences_from(3, _cfg(tmp_path))
