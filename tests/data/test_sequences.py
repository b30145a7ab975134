"""seqmask.data: Sequences, truncate, split, Normalizer, pad, length_mask_np, last_step_index_np."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmask.config import Padding, Truncating
from seqmask.data import (
    Normalizer,
    Sequences,
    last_step_index_np,
    length_mask_np,
    pad,
    split,
    truncate,
)
from seqmask.data.vocab import Vocabulary
from seqmask.errors import DataError


def make(seqs: list[list[list[float]]], ids: list[str] | None = None, source: str = "x.npz") -> Sequences:
    values = np.concatenate([np.asarray(s, dtype=np.float32).reshape(len(s), -1) for s in seqs])
    lengths = [len(s) for s in seqs]
    if ids is None:
        ids = [f"s{i}" for i in range(len(seqs))]
    return Sequences(values, lengths, ids, source)


@pytest.fixture
def three() -> Sequences:
    # s0: 3 steps, s1: 1 step (its only step is all zeros), s2: 2 steps, last step all zeros.
    return make(
        [
            [[1, 10], [2, 20], [3, 30]],
            [[0, 0]],
            [[5, 50], [0, 0]],
        ]
    )


# -- Sequences -----------------------------------------------------------------


def test_sequences_basics(three: Sequences) -> None:
    assert len(three) == 3
    assert three.num_features == 2
    assert three.num_steps == 6
    assert three.values.dtype == np.float32
    assert three.lengths.dtype == np.int64
    assert three.ids.dtype.kind == "U"
    assert three.offsets.tolist() == [0, 3, 4, 6]
    assert three.sequence(0).tolist() == [[1, 10], [2, 20], [3, 30]]
    assert three.sequence(1).tolist() == [[0, 0]]
    assert three.sequence(-1).tolist() == [[5, 50], [0, 0]]
    assert np.shares_memory(three.sequence(2), three.values)  # a view
    with pytest.raises(IndexError):
        three.sequence(3)


def test_sequences_rejects_inconsistent_arrays() -> None:
    with pytest.raises(ValueError):
        Sequences(np.zeros((3, 1)), [1, 1], ["a", "b"])  # 2 steps != 3 rows
    with pytest.raises(ValueError):
        Sequences(np.zeros((2, 1)), [2, 0], ["a", "b"])  # empty sequence
    with pytest.raises(ValueError):
        Sequences(np.zeros((2, 1)), [2], ["a", "b"])  # id count
    with pytest.raises(ValueError):
        Sequences(np.zeros(2), [2], ["a"])  # values not 2-D


def test_subset_keeps_order_of_indices(three: Sequences) -> None:
    sub = three.subset([2, 0])
    assert sub.ids.tolist() == ["s2", "s0"]
    assert sub.lengths.tolist() == [2, 3]
    assert sub.values.tolist() == [[5, 50], [0, 0], [1, 10], [2, 20], [3, 30]]
    assert sub.source == three.source
    again = three.subset(np.array([1, 1]))
    assert again.values.tolist() == [[0, 0], [0, 0]]
    empty = three.subset([])
    assert len(empty) == 0 and empty.values.shape == (0, 2)


def test_with_values(three: Sequences) -> None:
    doubled = three.with_values(three.values * 2)
    assert doubled.lengths.tolist() == three.lengths.tolist()
    assert doubled.ids.tolist() == three.ids.tolist()
    assert doubled.sequence(0).tolist() == [[2, 20], [4, 40], [6, 60]]
    one_feature = three.with_values(three.values[:, :1])
    assert one_feature.num_features == 1
    with pytest.raises(ValueError):
        three.with_values(three.values[:-1])


# -- truncate --------------------------------------------------------------------


def test_truncate_post_keeps_first_steps(three: Sequences) -> None:
    t = truncate(three, 2, "post")
    assert t.lengths.tolist() == [2, 1, 2]
    assert t.sequence(0).tolist() == [[1, 10], [2, 20]]
    assert t.sequence(2).tolist() == [[5, 50], [0, 0]]
    assert t.ids.tolist() == three.ids.tolist()


def test_truncate_pre_keeps_last_steps(three: Sequences) -> None:
    t = truncate(three, 2, "pre")
    assert t.lengths.tolist() == [2, 1, 2]
    assert t.sequence(0).tolist() == [[2, 20], [3, 30]]
    t1 = truncate(three, 1, "pre")
    assert t1.values.tolist() == [[3, 30], [0, 0], [0, 0]]


def test_truncate_none_and_noops(three: Sequences) -> None:
    assert truncate(three, None, "none") is three
    assert truncate(three, 3, "none") is three
    assert truncate(three, 10, "post") is three
    with pytest.raises(DataError) as e:
        truncate(three, 2, "none")
    msg = str(e.value)
    assert "x.npz" in msg and "'s0'" in msg and "3 steps" in msg and "max_len 2" in msg
    with pytest.raises(ValueError):
        truncate(three, 0, "post")
    with pytest.raises(ValueError):
        truncate(three, 2, "middle")


# -- split -----------------------------------------------------------------------


def _many(n: int) -> Sequences:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 6, size=n)
    return Sequences(rng.normal(size=(int(lengths.sum()), 2)), lengths, [f"q{i}" for i in range(n)])


def test_split_seeded_disjoint_and_complete() -> None:
    seqs = _many(50)
    train, val = split(seqs, 0.2, seed=7)
    assert len(val) == 10 and len(train) == 40
    assert set(train.ids) | set(val.ids) == set(seqs.ids)
    assert not set(train.ids) & set(val.ids)
    # file order kept within each part
    pos = {s: i for i, s in enumerate(seqs.ids)}
    assert [pos[s] for s in train.ids] == sorted(pos[s] for s in train.ids)
    # values travel with their ids
    for part in (train, val):
        for i, sid in enumerate(part.ids):
            assert np.array_equal(part.sequence(i), seqs.sequence(pos[sid]))
    # reproducible; another seed gives another split
    train2, val2 = split(seqs, 0.2, seed=7)
    assert val2.ids.tolist() == val.ids.tolist()
    _, val3 = split(seqs, 0.2, seed=8)
    assert val3.ids.tolist() != val.ids.tolist()


def test_split_edge_fractions() -> None:
    seqs = _many(5)
    train, val = split(seqs, 0.0, seed=1)
    assert train is seqs and len(val) == 0 and val.num_features == 2
    train, val = split(seqs, 0.01, seed=1)  # rounds to 0 -> at least 1
    assert len(val) == 1 and len(train) == 4
    train, val = split(seqs, 0.99, seed=1)  # train never empty
    assert len(train) == 1 and len(val) == 4
    one = _many(1)
    train, val = split(one, 0.5, seed=1)
    assert len(train) == 1 and len(val) == 0
    with pytest.raises(ValueError):
        split(seqs, 1.0, seed=1)
    with pytest.raises(ValueError):
        split(seqs, -0.1, seed=1)


# -- Normalizer ------------------------------------------------------------------


def test_normalizer_fits_real_steps_only(three: Sequences) -> None:
    norm = Normalizer.fit(three)
    # feature 0 over the 6 real steps: 1, 2, 3, 0, 5, 0
    x = np.array([1, 2, 3, 0, 5, 0], dtype=np.float64)
    assert norm.mean[0] == pytest.approx(11 / 6)
    assert norm.std[0] == pytest.approx(np.sqrt(((x - 11 / 6) ** 2).mean()))
    assert norm.mean[1] == pytest.approx(110 / 6)
    out = norm.apply(three)
    assert out.values.dtype == np.float32
    assert out.lengths.tolist() == three.lengths.tolist()
    assert np.allclose(out.values.mean(axis=0), 0, atol=1e-6)
    assert np.allclose(out.values.std(axis=0), 1, atol=1e-6)


def test_normalizer_is_not_biased_by_padding() -> None:
    # A padded batch of these would have many zeros; the fit must not see them.
    seqs = make([[[10.0]], [[10.0], [12.0], [14.0], [16.0]]])
    norm = Normalizer.fit(seqs)
    assert norm.mean.tolist() == [12.4]


def test_normalizer_constant_feature_gets_std_one() -> None:
    seqs = make([[[0.1, 1.0], [0.1, 2.0]], [[0.1, 3.0]]])
    norm = Normalizer.fit(seqs)
    assert norm.std[0] == 1.0
    out = norm.apply(seqs)
    assert np.all(np.isfinite(out.values))
    assert np.allclose(out.values[:, 0], 0.0, atol=1e-6)


def test_normalizer_identity_and_roundtrip(three: Sequences) -> None:
    ident = Normalizer.identity(2)
    assert np.array_equal(ident.apply(three).values, three.values)
    norm = Normalizer.fit(three)
    d = json.loads(json.dumps(norm.to_dict()))
    back = Normalizer.from_dict(d)
    assert np.array_equal(back.mean, norm.mean) and np.array_equal(back.std, norm.std)
    assert back.mean.dtype == np.float64
    with pytest.raises(ValueError):
        Normalizer.from_dict({"mean": [0.0]})
    with pytest.raises(ValueError):
        Normalizer.from_dict({"mean": [0.0], "std": [0.0]})
    with pytest.raises(ValueError):
        norm.apply(make([[[1.0]]]))  # wrong feature count


# -- pad / length_mask_np / last_step_index_np -----------------------------------------


def test_pad_post(three: Sequences) -> None:
    batch = pad(three, [0, 1, 2], 4, "post")
    assert batch.dtype == np.float32 and batch.shape == (3, 4, 2)
    assert batch[:, :, 0].tolist() == [[1, 2, 3, 0], [0, 0, 0, 0], [5, 0, 0, 0]]
    assert batch[:, :, 1].tolist() == [[10, 20, 30, 0], [0, 0, 0, 0], [50, 0, 0, 0]]


def test_pad_pre_with_pad_value_and_float_values() -> None:
    seqs = make([[[0.25], [0.5]], [[0.75]]])
    batch = pad(seqs, [1, 0], 3, "pre", pad_value=-1.5)
    assert batch.dtype == np.float32  # never cast to int
    assert batch[:, :, 0].tolist() == [[-1.5, -1.5, 0.75], [-1.5, 0.25, 0.5]]


def test_pad_rejects_too_long(three: Sequences) -> None:
    with pytest.raises(ValueError):
        pad(three, [0], 2, "post")
    with pytest.raises(ValueError):
        pad(three, [0], 3, "middle")
    assert pad(three, [], 3, "post").shape == (0, 3, 2)


def test_pad_keeps_int32_ids() -> None:
    ids = Sequences(np.array([[5], [6], [7]], dtype=np.int32), [2, 1], ["a", "b"])
    batch = pad(ids, [0, 1], 3, "post")
    assert batch.dtype == np.int32
    assert batch[:, :, 0].tolist() == [[5, 6, 0], [7, 0, 0]]
    assert pad(ids, [1], 2, "pre", pad_value=1.0)[0, :, 0].tolist() == [1, 7]
    for bad in (0.5, float("nan"), float("inf"), 2.0**40):
        with pytest.raises(ValueError, match="pad_value"):
            pad(ids, [0], 3, "post", pad_value=bad)


# -- token sequences ---------------------------------------------------------------


def tokens() -> Sequences:
    return Sequences(np.array(["the", "cat", "sat", "a", "dog"]), [3, 2], ["1", "3"], "t.txt")


def test_token_sequences_basics() -> None:
    s = tokens()
    assert s.is_tokens and s.values.dtype.kind == "U" and s.values.shape == (5,)
    assert s.num_features == 1 and s.num_steps == 5 and len(s) == 2
    assert s.sequence(1).tolist() == ["a", "dog"]
    assert "tokens" in repr(s)
    assert not make([[[1.0]]]).is_tokens


def test_token_sequences_subset_truncate_split() -> None:
    s = tokens()
    assert s.subset([1, 0]).values.tolist() == ["a", "dog", "the", "cat", "sat"]
    t = truncate(s, 2, "pre")
    assert t.is_tokens and t.values.tolist() == ["cat", "sat", "a", "dog"]
    train, val = split(s, 0.5, seed=1)
    assert train.is_tokens and val.is_tokens and len(train) == len(val) == 1
    empty_train, empty_val = split(s, 0.0, seed=0)
    assert empty_val.is_tokens and len(empty_val) == 0


def test_token_sequences_rejections() -> None:
    with pytest.raises(ValueError, match="1-D"):
        Sequences(np.array([["a"], ["b"]]), [2], ["x"])
    with pytest.raises(ValueError, match="numbers or tokens"):
        Sequences(np.array([[object()]], dtype=object), [1], ["x"])
    with pytest.raises(ValueError, match="encode them"):
        pad(tokens(), [0], 3, "post")
    with pytest.raises(ValueError, match="tokens"):
        Normalizer.fit(tokens())
    ids = Sequences(np.array([[2], [3]], dtype=np.int32), [2], ["x"])
    assert ids.values.dtype == np.int32 and not ids.is_tokens
    with pytest.raises(ValueError, match="token ids"):
        Normalizer.fit(ids)
    with pytest.raises(ValueError, match="token ids"):
        Normalizer.identity(1).apply(ids)


def test_other_numeric_dtypes_still_become_float32() -> None:
    for dtype in (np.float64, np.int64, np.int16, np.uint8, np.bool_):
        s = Sequences(np.ones((2, 1), dtype=dtype), [2], ["x"])
        assert s.values.dtype == np.float32


# -- feature names -----------------------------------------------------------------


def named(three: Sequences) -> Sequences:
    return dataclasses.replace(three, feature_names=["speed", "heading"])


def test_feature_names_are_normalised_and_checked(three: Sequences) -> None:
    assert three.feature_names == ()
    s = named(three)
    assert s.feature_names == ("speed", "heading")  # a list becomes a tuple
    assert repr(s) == repr(three)  # the names are not in the repr
    assert Sequences(np.zeros((1, 2)), [1], ["a"], feature_names=np.array(["u", "v"])).feature_names == ("u", "v")
    with pytest.raises(ValueError, match="3 feature names for 2 features"):
        dataclasses.replace(three, feature_names=("a", "b", "c"))
    with pytest.raises(ValueError, match="1 feature names for 2 features"):
        dataclasses.replace(three, feature_names=("a",))
    with pytest.raises(ValueError, match="the string"):
        Sequences(np.zeros((1, 2)), [1], ["a"], feature_names="ab")
    with pytest.raises(ValueError, match="no feature names"):
        Sequences(np.array(["the"]), [1], ["a"], feature_names=("word",))
    with pytest.raises(ValueError, match="no feature names"):
        Sequences(np.array([[2]], dtype=np.int32), [1], ["a"], feature_names=("word",))


def test_feature_names_kept_through_subset_split_truncate(three: Sequences) -> None:
    s = named(three)
    names = ("speed", "heading")
    assert s.subset([2, 0]).feature_names == names
    assert s.subset([]).feature_names == names
    for fraction in (0.0, 0.5):
        train, val = split(s, fraction, seed=3)
        assert train.feature_names == names and val.feature_names == names
    for truncating in ("post", "pre"):
        t = truncate(s, 2, truncating)
        assert t.lengths.tolist() == [2, 1, 2] and t.feature_names == names
    assert truncate(s, 10, "post").feature_names == names


def test_feature_names_kept_through_normalize_and_with_values(three: Sequences) -> None:
    s = named(three)
    normalized = Normalizer.fit(s).apply(s)
    assert normalized.feature_names == ("speed", "heading")
    assert normalized.values.tolist() != s.values.tolist()
    assert s.with_values(s.values.astype(np.float64) * 2).feature_names == ("speed", "heading")
    assert s.with_values(s.values[:, :1]).feature_names == ()  # another feature count: which names?
    assert s.with_values(np.zeros((s.num_steps, 3))).feature_names == ()
    assert s.with_values(np.full(s.num_steps, "a")).feature_names == ()  # tokens
    assert s.with_values(np.ones((s.num_steps, 1), dtype=np.int32)).feature_names == ()  # token ids


def test_feature_labels_fall_back_to_positions_or_token(three: Sequences) -> None:
    assert named(three).feature_labels == ("speed", "heading")
    assert three.feature_labels == ("f0", "f1")
    assert make([[[1.0]]]).feature_labels == ("f0",)
    assert tokens().feature_labels == ("token",)
    encoded = Vocabulary.build(tokens()).encode(tokens())
    assert encoded.feature_names == () and encoded.feature_labels == ("token",)
    assert _many(3).subset([]).feature_labels == ("f0", "f1")  # empty data still has its features


def test_length_mask_and_last_step(three: Sequences) -> None:
    lengths = three.lengths  # 3, 1, 2
    assert length_mask_np(lengths, 4, "post").tolist() == [
        [True, True, True, False],
        [True, False, False, False],
        [True, True, False, False],
    ]
    assert length_mask_np(lengths, 4, "pre").tolist() == [
        [False, True, True, True],
        [False, False, False, True],
        [False, False, True, True],
    ]
    assert last_step_index_np(lengths, 4, "post").tolist() == [2, 0, 1]
    assert last_step_index_np(lengths, 4, "pre").tolist() == [3, 3, 3]


def test_last_step_of_zero_and_length_one_sequences(three: Sequences) -> None:
    # s1 is one all-zero step and s2 ends with an all-zero step: indistinguishable
    # from padding by value, so the last real step must come from the lengths.
    for padding in ("post", "pre"):
        batch = pad(three, [0, 1, 2], 5, padding)
        last = last_step_index_np(three.lengths, 5, padding)
        got = batch[np.arange(3), last]
        assert got.tolist() == [[3, 30], [0, 0], [0, 0]]
        mask = length_mask_np(three.lengths, 5, padding)
        assert mask.sum(axis=1).tolist() == [3, 1, 2]
        assert mask[np.arange(3), last].all()


# -- properties ------------------------------------------------------------------

# Sequences, the indices of a batch, how many steps of padding beyond the longest, the
# padding side and the pad value.
Case = tuple[Sequences, list[int], int, Padding, float]


@st.composite
def sequences_and_batch(draw: st.DrawFn) -> Case:
    lengths = draw(st.lists(st.integers(1, 7), min_size=1, max_size=6))
    num_features = draw(st.integers(1, 3))
    total = sum(lengths)
    flat = draw(
        st.lists(
            st.floats(-1e6, 1e6, allow_nan=False, width=32),
            min_size=total * num_features,
            max_size=total * num_features,
        )
    )
    values = np.array(flat, dtype=np.float32).reshape(total, num_features)
    pad_value = draw(st.floats(-10, 10, allow_nan=False, width=32))
    if draw(st.booleans()):  # token ids: int32 (total, 1), padded with an int
        values = (np.abs(values[:, :1]) % 1000).astype(np.int32)
        pad_value = draw(st.integers(0, 3))
    seqs = Sequences(values, lengths, [f"i{k}" for k in range(len(lengths))])
    indices = draw(st.lists(st.integers(0, len(lengths) - 1), min_size=0, max_size=8))
    extra = draw(st.integers(0, 3))
    padding = draw(st.sampled_from(["post", "pre"]))
    return seqs, indices, extra, padding, pad_value


@settings(max_examples=50, deadline=None)
@given(sequences_and_batch())
def test_pad_then_unpad_recovers_sequences(case: Case) -> None:
    seqs, indices, extra, padding, pad_value = case
    lengths = seqs.lengths[indices] if indices else np.zeros(0, dtype=np.int64)
    time_len = int(lengths.max()) + extra if len(indices) else extra
    batch = pad(seqs, indices, time_len, padding, pad_value)
    assert batch.shape == (len(indices), time_len, seqs.num_features)
    assert batch.dtype == seqs.values.dtype  # float32, or int32 for token ids
    mask = length_mask_np(lengths, time_len, padding)
    assert mask.shape == (len(indices), time_len)
    assert mask.sum(axis=1).tolist() == lengths.tolist()
    for row, i in enumerate(indices):
        # the real steps, in order, exactly
        assert np.array_equal(batch[row][mask[row]], seqs.sequence(i))
        # every other position is pad_value
        assert np.all(batch[row][~mask[row]] == batch.dtype.type(pad_value))
        last = last_step_index_np(lengths, time_len, padding)[row]
        assert mask[row, last]
        assert np.array_equal(batch[row, last], seqs.sequence(i)[-1])
    # the mask is contiguous and on the right side
    if len(indices) and time_len:
        real_cols = np.arange(time_len)[None, :]
        if padding == "post":
            assert np.array_equal(mask, real_cols < lengths[:, None])
        else:
            assert np.array_equal(mask, real_cols >= time_len - lengths[:, None])


@settings(max_examples=50, deadline=None)
@given(sequences_and_batch(), st.integers(1, 8), st.sampled_from(["post", "pre"]))
def test_truncate_keeps_a_contiguous_part(case: Case, max_len: int, truncating: Truncating) -> None:
    seqs = case[0]
    t = truncate(seqs, max_len, truncating)
    assert t.lengths.tolist() == np.minimum(seqs.lengths, max_len).tolist()
    for i in range(len(seqs)):
        full, cut = seqs.sequence(i), t.sequence(i)
        expected = full[:max_len] if truncating == "post" else full[-max_len:]
        assert np.array_equal(cut, expected)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 40), st.floats(0.01, 0.9), st.integers(0, 2**31))
def test_split_property(n: int, fraction: float, seed: int) -> None:
    seqs = _many(n)
    train, val = split(seqs, fraction, seed)
    assert len(train) >= 1 and len(val) >= 1 and len(train) + len(val) == n
    assert sorted(train.ids.tolist() + val.ids.tolist()) == sorted(seqs.ids.tolist())
    assert train.num_steps + val.num_steps == seqs.num_steps
