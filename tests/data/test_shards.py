"""seqmask.data.shards: find_shards, build_index (the Chan merge), ShardIndex (normalizer, save/load,
check_unchanged, read) and split_positions."""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmask.data import Normalizer, Sequences
from seqmask.data.readers import read_sequences
from seqmask.data.shards import (
    ShardIndex,
    _Stats,
    build_index,
    find_shards,
    holdout,
    id_hashes,
    read_all,
    split_positions,
)
from seqmask.errors import DataError

read_npz = partial(read_sequences, format="npz")
read_parquet = partial(read_sequences, format="parquet")


# -- helpers ---------------------------------------------------------------------------


def make(
    lengths: list[int], num_features: int = 2, seed: int = 0, offset: float = 0.0, scale: float = 1.0
) -> Sequences:
    """Sequences of the given lengths, ids "s0", "s1", ...; values offset + scale * N(0, 1)."""
    rng = np.random.default_rng(seed)
    lengths_arr = np.asarray(lengths, np.int64)
    values = (offset + scale * rng.normal(size=(int(lengths_arr.sum()), num_features))).astype(np.float32)
    ids = np.array([f"s{i}" for i in range(len(lengths))])
    return Sequences(values, lengths_arr, ids, source="<test>")


def cut(seqs: Sequences, cuts: list[int]) -> list[Sequences]:
    """``seqs`` cut at sequence numbers ``cuts`` into consecutive parts (none empty)."""
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(seqs))), len(seqs)]
    return [seqs.subset(np.arange(a, b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def write_npz(path: Path, seqs: Sequences) -> Path:
    np.savez(path, values=seqs.values, lengths=seqs.lengths, ids=seqs.ids)
    return path


def write_npz_shards(directory: Path, parts: list[Sequences]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [write_npz(directory / f"part-{k:03d}.npz", part) for k, part in enumerate(parts)]


def write_parquet_rows(path: Path, seqs: Sequences) -> Path:
    """One row per sequence: ``id`` and a ``values`` list<list<float>> column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    steps = [seqs.sequence(i).tolist() for i in range(len(seqs))]
    pq.write_table(pa.table({"id": seqs.ids.tolist(), "values": steps}), path)
    return path


def write_parquet_long(path: Path, seqs: Sequences, names: list[str]) -> Path:
    """Long format: one row per step, columns ``id``, ``step`` and one per feature."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, object] = {
        "id": np.repeat(seqs.ids, seqs.lengths).tolist(),
        "step": np.concatenate([np.arange(n) for n in seqs.lengths]),
    }
    for j, name in enumerate(names):
        columns[name] = seqs.values[:, j]
    pq.write_table(pa.table(columns), path)
    return path


def concat(parts: list[Sequences]) -> Sequences:
    return Sequences(
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.ids for p in parts]),
    )


def same_sequences(a: Sequences, b: Sequences) -> None:
    """Equal ids and lengths, and values equal bit for bit."""
    assert a.ids.tolist() == b.ids.tolist()
    assert a.lengths.tolist() == b.lengths.tolist()
    assert a.values.dtype == b.values.dtype == np.float32
    assert a.values.shape == b.values.shape
    assert a.values.tobytes() == b.values.tobytes()


# -- find_shards ---------------------------------------------------------------------------


def test_find_shards_directory_and_glob(tmp_path: Path) -> None:
    parts = cut(make([2, 3, 1, 4]), [1, 3])
    d = tmp_path / "shards"
    paths = write_npz_shards(d, parts[::-1])  # written in reverse: found sorted by name anyway
    (d / ".hidden.npz").write_bytes(b"x")
    (d / "sub").mkdir()
    assert find_shards(d) == sorted(paths)
    assert find_shards(str(d / "part-*.npz")) == sorted(paths)
    assert find_shards(d / "part-00?.npz") == sorted(paths)


def test_find_shards_jsonl_gz_and_parquet(tmp_path: Path) -> None:
    for name in ("a.jsonl.gz", "b.jsonl", "c.JSONL"):
        (tmp_path / "j" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "j" / name).write_bytes(b"{}")
    assert [p.name for p in find_shards(tmp_path / "j") or []] == ["a.jsonl.gz", "b.jsonl", "c.JSONL"]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.parquet").write_bytes(b"PAR1")
    assert find_shards(tmp_path / "p") == [tmp_path / "p" / "x.parquet"]


def test_find_shards_none_for_a_file_or_one_file_per_sequence(tmp_path: Path) -> None:
    single = write_npz(tmp_path / "all.npz", make([2, 3]))
    assert find_shards(single) is None
    assert find_shards(tmp_path / "missing.npz") is None  # the reader reports it
    (tmp_path / "csv").mkdir()
    for name in ("a.csv", "b.csv.gz"):
        (tmp_path / "csv" / name).write_text("x\n1\n")
    assert find_shards(tmp_path / "csv") is None
    assert find_shards(str(tmp_path / "csv" / "*.csv")) is None
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "a.npy", np.zeros((2, 1)))
    assert find_shards(tmp_path / "npy") is None


def test_find_shards_mixed_formats_is_an_error(tmp_path: Path) -> None:
    write_npz(tmp_path / "a.npz", make([2]))
    (tmp_path / "b.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"a\.npz is npz and .*b\.parquet is parquet"):
        find_shards(tmp_path)
    (tmp_path / "b.parquet").unlink()
    np.save(tmp_path / "c.npy", np.zeros(2))
    with pytest.raises(DataError, match=r"c\.npy is \.npy \(one sequence per file\)"):
        find_shards(tmp_path)
    (tmp_path / "c.npy").unlink()
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(DataError, match=r"notes\.md is not a shard file"):
        find_shards(tmp_path)


def test_find_shards_empty_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: the directory holds no files"):
        find_shards(tmp_path / "empty")
    with pytest.raises(DataError, match="no files match this pattern"):
        find_shards(str(tmp_path / "empty" / "*.npz"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.md").write_text("hi")
    with pytest.raises(DataError, match="holds no shard files"):
        find_shards(tmp_path / "other")


# -- the statistics --------------------------------------------------------------------


def test_chan_merge_by_hand() -> None:
    # [1, 2, 3] and [4, 5]: mean 3, M2 = 4 + 1 + 0 + 1 + 4 = 10; halves: (2, M2 2) and (4.5, M2 0.5);
    # δ = 2.5, M2 = 2 + 0.5 + 2.5² · 3 · 2 / 5 = 10.
    a = _Stats.of(np.array([[1.0], [2.0], [3.0]], np.float32))
    b = _Stats.of(np.array([[4.0], [5.0]], np.float32))
    assert (a.count, a.mean.tolist(), a.m2.tolist()) == (3, [2.0], [2.0])
    merged = a.merge(b)
    assert merged.count == 5
    assert merged.mean.tolist() == [3.0]
    assert merged.m2.tolist() == [10.0]
    assert (merged.minimum.tolist(), merged.maximum.tolist()) == ([1.0], [5.0])
    assert a.merge(_Stats.empty(1)) is a and _Stats.empty(1).merge(b) is b


@settings(max_examples=25)
@given(
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=8),
    offset=st.sampled_from([0.0, -3.0, 1e4, 1e6]),
    scale=st.sampled_from([0.1, 1.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_merged_statistics_equal_numpy(
    lengths: list[int], cuts: list[int], offset: float, scale: float, seed: int
) -> None:
    seqs = make(lengths, num_features=3, seed=seed, offset=offset, scale=scale)
    with tempfile.TemporaryDirectory() as d:
        index = build_index(write_npz_shards(Path(d), cut(seqs, cuts)), read_npz)
    x = seqs.values.astype(np.float64)  # (steps, features)
    assert index.count == index.num_steps == x.shape[0]
    np.testing.assert_allclose(index.mean, x.mean(axis=0), rtol=1e-12, atol=1e-12)
    # Far from 0 (1e6 + N(0, 0.1²)) a one-pass Σx² − n·mean² would lose every digit (it cancels 1e12
    # against 1e12 to get ~1e-2 per step); the merge keeps M2 to ~1e-9 (worst seen in 150 runs: 6e-10).
    np.testing.assert_allclose(index.m2, ((x - x.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-8, atol=1e-9)
    assert index.minimum.tolist() == x.min(axis=0).tolist()
    assert index.maximum.tolist() == x.max(axis=0).tolist()
    assert index.checks.tolist() == id_hashes(seqs.ids).astype(np.uint32).tolist()
    assert index.lengths.tolist() == seqs.lengths.tolist()


def test_index_arrays_in_global_order(tmp_path: Path) -> None:
    parts = cut(make([2, 3, 1, 4, 2]), [2, 3])
    paths = write_npz_shards(tmp_path, parts)
    index = build_index(paths, read_npz)
    assert index.shards == tuple(str(p.absolute()) for p in paths)
    assert index.offsets.tolist() == [0, 2, 3, 5]
    assert index.shard_of(np.arange(5)).tolist() == [0, 0, 1, 2, 2]
    assert [index.rows_of(s) for s in range(3)] == [(0, 2), (2, 3), (3, 5)]
    assert index.lengths.dtype == np.int32 and index.lengths.tolist() == [2, 3, 1, 4, 2]
    assert index.checks.dtype == np.uint32
    assert index.checks.tolist() == id_hashes(np.array(["s0", "s1", "s2", "s3", "s4"])).astype(np.uint32).tolist()
    assert index.read(np.arange(5), read_npz).ids.tolist() == ["s0", "s1", "s2", "s3", "s4"]
    assert index.sizes.tolist() == [p.stat().st_size for p in paths]
    assert index.mtimes.tolist() == [p.stat().st_mtime_ns for p in paths]
    assert (index.num_sequences, index.num_steps, index.num_features) == (5, 12, 2)


def test_threads_and_progress(tmp_path: Path) -> None:
    seqs = make(list(range(1, 21)))
    paths = write_npz_shards(tmp_path, cut(seqs, [3, 5, 9, 10, 15]))
    calls: list[tuple[int, int]] = []
    one = build_index(paths, read_npz, threads=1)
    many = build_index(paths, read_npz, threads=4, on_shard=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 6) for k in range(1, 7)]
    assert one.checks.tolist() == many.checks.tolist() and one.offsets.tolist() == many.offsets.tolist()
    assert one.mean.tobytes() == many.mean.tobytes() and one.m2.tobytes() == many.m2.tobytes()


def test_normalizer_equals_fit_of_the_concatenation(tmp_path: Path) -> None:
    seqs = make([3, 1, 4, 1, 5, 9, 2, 6], num_features=3, seed=7, offset=5e3)
    values = seqs.values.copy()
    values[:, 1] = 2.5  # a constant feature gets std 1
    seqs = seqs.with_values(values)
    parts = cut(seqs, [2, 3, 6])
    index = build_index([write_npz(tmp_path / f"{k}.npz", p) for k, p in enumerate(parts)], read_npz)
    got, want = index.normalizer(), Normalizer.fit(seqs)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6)
    np.testing.assert_allclose(got.std, want.std, rtol=1e-6)
    assert got.std[1] == want.std[1] == 1.0
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12)  # in fact far closer


def test_parquet_shards_both_layouts(tmp_path: Path) -> None:
    seqs = make([2, 5, 1, 3], num_features=2, seed=3)
    a, b = cut(seqs, [2])
    rows = build_index(
        [write_parquet_rows(tmp_path / "a.parquet", a), write_parquet_rows(tmp_path / "b.parquet", b)], read_parquet
    )
    assert rows.read(np.arange(4), read_parquet).ids.tolist() == ["s0", "s1", "s2", "s3"]
    assert rows.feature_names == ()
    np.testing.assert_allclose(rows.normalizer().std, Normalizer.fit(seqs).std, rtol=1e-6)
    long_paths = [
        write_parquet_long(tmp_path / "la.parquet", a, ["x", "y"]),
        write_parquet_long(tmp_path / "lb.parquet", b, ["x", "y"]),
    ]
    read_long = partial(read_sequences, format="parquet", step_column="step")
    long = build_index(long_paths, read_long)
    assert long.feature_names == ("x", "y")
    same_sequences(long.read(np.arange(4), read_long), seqs)
    swapped = write_parquet_long(tmp_path / "lc.parquet", b, ["y", "x"])
    with pytest.raises(DataError, match=r"lc\.parquet: feature columns \(y, x\) differ from those of .*la\.parquet"):
        build_index([long_paths[0], swapped], read_long)


# -- read ------------------------------------------------------------------------------


@settings(max_examples=20)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=20),
    cuts=st.lists(st.integers(0, 20), max_size=6),
    picks=st.lists(st.integers(0, 10**6), max_size=25),
    max_cached=st.integers(0, 3),
)
def test_read_equals_slicing_the_concatenation(
    lengths: list[int], cuts: list[int], picks: list[int], max_cached: int
) -> None:
    seqs = make(lengths, num_features=2, seed=len(lengths), offset=1e4)
    parts = cut(seqs, cuts)
    positions = np.asarray([p % len(seqs) for p in picks], dtype=np.int64)  # any order, repeats
    with tempfile.TemporaryDirectory() as d:
        paths = write_npz_shards(Path(d), parts)
        index = build_index(paths, read_npz)
        reads: list[Path] = []

        def counting(p: Path) -> Sequences:
            reads.append(p)
            return read_npz(p)

        for _ in range(2):
            reads.clear()
            got = index.read(positions, counting, max_cached_shards=max_cached)
            same_sequences(got, concat(parts).subset(positions))
            assert len(reads) == len(set(reads))  # each shard at most once per call
            assert len(set(reads)) <= len(set(index.shard_of(positions).tolist()))


def test_read_reuses_the_lru_and_checks_the_rows(tmp_path: Path) -> None:
    parts = cut(make([2, 3, 1, 4, 2, 2]), [2, 4])
    paths = write_npz_shards(tmp_path, parts)
    index = build_index(paths, read_npz)
    reads: list[str] = []

    def counting(p: Path) -> Sequences:
        reads.append(p.name)
        return read_npz(p)

    assert len(index.read(np.array([], np.int64), counting)) == 0
    index.read(np.array([5, 0]), counting)  # shards 2 and 0
    index.read(np.array([1, 4]), counting)  # 0 and 2 again: both cached
    assert reads == ["part-000.npz", "part-002.npz"]
    index.read(np.array([2]), counting)  # shard 1 pushes out shard 0 (least recently used)
    index.read(np.array([0]), counting)
    assert reads == ["part-000.npz", "part-002.npz", "part-001.npz", "part-000.npz"]
    with pytest.raises(IndexError):
        index.read(np.array([6]), counting)
    # A shard rewritten with other sequences is refused, not read as if it were the old one.
    write_npz(paths[1], make([5], seed=9))
    with pytest.raises(DataError, match=r"part-001\.npz: holds 1 sequences, but the index has 2; it changed"):
        index.read(np.array([2]), read_npz)
    write_npz(paths[1], make([5, 5], seed=9))  # as many, with other ids and lengths
    with pytest.raises(
        DataError, match=r"part-001\.npz: row 0 is sequence 's0' of 5 steps, but the index has a sequence of 1 steps"
    ):
        index.read(np.array([2]), read_npz)
    same = parts[1]  # the same lengths, one id renamed
    write_npz(paths[1], Sequences(same.values, same.lengths, np.array(["x", "s3"]), source="<test>"))
    with pytest.raises(DataError, match=r"row 0 is sequence 'x' of 1 steps, .* of 1 steps with another id there"):
        index.read(np.array([2]), read_npz)
    assert index.read(np.array([3]), read_npz).ids.tolist() == ["s3"]  # its other row is as indexed


# -- save / load -------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    seqs = make([3, 1, 2, 5, 4], num_features=3, seed=1)
    index = build_index(write_npz_shards(tmp_path / "shards", cut(seqs, [1, 3])), read_npz)
    index.save(tmp_path / "run" / "index.npz")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name != "index.npz"]  # no temporary left
    back = ShardIndex.load(tmp_path / "run" / "index.npz")
    assert back.shards == index.shards
    for name in ("sizes", "mtimes", "offsets", "lengths", "checks", "mean", "m2", "minimum", "maximum", "validation"):
        a, b = getattr(index, name), getattr(back, name)
        assert a.dtype == b.dtype and a.tolist() == b.tolist(), name
    assert (back.num_features, back.count, back.feature_names) == (3, 15, ())
    same_sequences(back.read(np.array([4, 0]), read_npz), seqs.subset([4, 0]))
    index.save(tmp_path / "index-no-suffix")  # any name: np.savez adds no ".npz" to it
    assert ShardIndex.load(tmp_path / "index-no-suffix").checks.tolist() == index.checks.tolist()


def test_load_rejects_what_is_not_an_index(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    build_index(write_npz_shards(tmp_path / "s", [make([2, 3])]), read_npz).save(good)
    raw = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.npz").write_text("not an index")
    np.save(tmp_path / "one.npy", np.zeros(3))
    np.savez(tmp_path / "data.npz", values=np.zeros((2, 1)), lengths=[2])
    with np.load(good) as archive:
        arrays = dict(archive)
    arrays["lengths"] = np.array([2, 4])  # adds up to 6 steps, the count says 5
    np.savez(tmp_path / "inconsistent.npz", **arrays)
    for name, why in [
        ("cut.npz", "not a shard index"),
        ("text.npz", "not a shard index"),
        ("one.npy", r"not a shard index \(a single array"),
        ("data.npz", r"not a valid shard index \(missing array 'version'\)"),
        ("inconsistent.npz", r"not a valid shard index \(the training lengths add up to 6 steps, but 'count' is 5"),
        ("missing.npz", "shard index not found"),
    ]:
        with pytest.raises(DataError, match=f"{name}: {why}"):
            ShardIndex.load(tmp_path / name)


# -- check_unchanged -------------------------------------------------------------------


def test_check_unchanged(tmp_path: Path) -> None:
    paths = write_npz_shards(tmp_path, cut(make([2, 3, 1]), [1]))
    index = build_index(paths, read_npz)
    index.check_unchanged()
    with open(paths[1], "ab") as f:
        f.write(b"\0")
    size = index.sizes[1]
    with pytest.raises(
        DataError,
        match=rf"part-001\.npz: changed since the run's index was built \(size {size} -> {size + 1} bytes\); "
        "the run trained on the old data: restore it, or start a new run",
    ):
        index.check_unchanged()
    index = build_index(paths, read_npz)
    mtime = int(index.mtimes[0])
    os.utime(paths[0], ns=(mtime + 1_000_000_000, mtime + 1_000_000_000))
    with pytest.raises(
        DataError,
        match=r"part-000\.npz: changed since the run's index was built \(modified .* UTC, indexed as of .* UTC\)",
    ):
        index.check_unchanged()
    os.utime(paths[0], ns=(mtime, mtime))
    index.check_unchanged()
    paths[1].unlink()
    with pytest.raises(DataError, match=r"part-001\.npz: missing since the run's index was built"):
        index.check_unchanged()


# -- bad shards ----------------------------------------------------------------------------


def test_no_shards_or_a_missing_one_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no shard files to index"):
        build_index([], read_npz)
    with pytest.raises(DataError, match=r"gone\.npz: file not found"):
        build_index([write_npz(tmp_path / "a.npz", make([2])), tmp_path / "gone.npz"], read_npz)
    with pytest.raises(ValueError, match="threads"):
        build_index([tmp_path / "a.npz"], read_npz, threads=0)


def test_a_shard_with_another_feature_count_is_named(tmp_path: Path) -> None:
    a = write_npz(tmp_path / "a.npz", make([2, 3], num_features=12))
    b = write_npz(tmp_path / "b.npz", make([1], num_features=3, seed=1).with_values(np.ones((1, 3))))
    with pytest.raises(DataError, match=rf"^{b}: 3 features, but {a} has 12$"):
        build_index([a, b], read_npz)


def test_a_truncated_parquet_shard_is_the_readers_error(tmp_path: Path) -> None:
    seqs = make([2, 3, 1, 4, 2, 3], seed=5)
    parts = cut(seqs, [2, 4])
    paths = [write_parquet_rows(tmp_path / f"{k}.parquet", p) for k, p in enumerate(parts)]
    raw = paths[1].read_bytes()
    paths[1].write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as direct:
        read_parquet(paths[1])
    for order in ([0, 1, 2], [1, 0, 2]):
        calls: list[tuple[int, int]] = []
        with pytest.raises(DataError) as raised:
            build_index([paths[k] for k in order], read_parquet, on_shard=lambda d, t, c=calls: c.append((d, t)))
        assert str(raised.value) == str(direct.value)  # unchanged, and naming the shard
        assert str(paths[1]) in str(raised.value)
        assert calls == [(k + 1, 3) for k in range(order.index(1))]  # nothing after the bad shard


def test_duplicate_ids_across_shards_are_named(tmp_path: Path) -> None:
    a = write_npz(tmp_path / "a.npz", make([2, 3]))  # s0, s1
    b = write_npz(tmp_path / "b.npz", make([4]))  # s0 again
    with pytest.raises(DataError, match=rf"sequence id 's0' appears in shards {a} and {b}"):
        build_index([a, b], read_npz)


def test_a_token_shard_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "tokens": ["x", "y"]}\n{"id": "b", "tokens": ["z"]}\n')
    with pytest.raises(DataError, match=rf"{path}: holds tokens; streaming from shards supports numeric values only"):
        build_index([path], partial(read_sequences, format="jsonl"))


# -- split_positions -------------------------------------------------------------------


def _validation_ids(
    seqs: Sequences, cuts: list[int], fraction: float, seed: int, d: Path, reverse: bool = False
) -> list[str]:
    parts = cut(seqs, cuts)
    paths = write_npz_shards(d, parts[::-1] if reverse else parts)
    index = build_index(paths, read_npz, holdout=holdout(fraction, seed))
    train, val = split_positions(index)
    assert train.tolist() == sorted(train.tolist()) and val.tolist() == sorted(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(len(seqs)))
    return sorted(index.read(val, read_npz).ids.tolist())


def test_split_is_invariant_to_the_shards(tmp_path: Path) -> None:
    seqs = make([1 + (i * 7) % 5 for i in range(40)])
    one = _validation_ids(seqs, [], 0.25, 3, tmp_path / "one")
    three = _validation_ids(seqs, [10, 25], 0.25, 3, tmp_path / "three")
    seven = _validation_ids(seqs, [3, 9, 14, 20, 28, 33], 0.25, 3, tmp_path / "seven")
    reversed_seven = _validation_ids(seqs, [3, 9, 14, 20, 28, 33], 0.25, 3, tmp_path / "rev", reverse=True)
    assert 3 <= len(one) <= 18  # about a quarter of 40 (binomial)
    assert one == three == seven == reversed_seven
    assert _validation_ids(seqs, [10, 25], 0.25, 3, tmp_path / "again") == one  # deterministic
    assert _validation_ids(seqs, [10, 25], 0.25, 4, tmp_path / "seed4") != one


def test_holdout_sizes() -> None:
    ids = np.array([f"seq-{i}" for i in range(4000)])
    assert not holdout(0.0, 0)(ids).any()
    held = holdout(0.2, 0)(ids)
    assert abs(int(held.sum()) - 800) < 4 * np.sqrt(4000 * 0.2 * 0.8)  # within 4 sigma
    with pytest.raises(ValueError, match="validation fraction"):
        holdout(1.0, 0)


def test_statistics_are_the_training_split_s(tmp_path: Path) -> None:
    seqs = make([3, 1, 2, 5, 4, 2, 6, 1, 3, 3] * 4, num_features=3, seed=2)
    index = build_index(write_npz_shards(tmp_path, cut(seqs, [7, 19, 30])), read_npz, holdout=holdout(0.3, 1))
    train, val = split_positions(index)
    assert len(val) and len(train)
    want = Normalizer.fit(seqs.subset(train))
    got = index.normalizer()
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6)
    np.testing.assert_allclose(got.std, want.std, rtol=1e-6)
    index.save(tmp_path / "index.npz")
    again = ShardIndex.load(tmp_path / "index.npz")
    np.testing.assert_array_equal(again.held_out, index.held_out)
    assert again.count == int(seqs.lengths[train].sum())


# -- ids ---------------------------------------------------------------------------------


def test_id_hashes_depend_on_the_text_alone() -> None:
    ids = np.array([f"seq-{i}" for i in range(20000)] + ["", "a", "a\x00b", "ab", "é", "日本"])
    h = id_hashes(ids)
    assert h.dtype == np.uint64 and np.unique(h).size == ids.size
    # The width of the array (the padding after each id) and its dtype change nothing.
    wide = np.array(["a", "x" * 40])
    assert id_hashes(wide)[0] == id_hashes(np.array(["a"]))[0] == id_hashes(np.array(["a"], dtype=object))[0]
    assert id_hashes(np.array([], dtype=str)).shape == (0,)


def test_distinct_ids_sharing_a_hash_are_not_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seqmask.data.shards._build as build  # where build_index looks id_hashes up

    def one_hash(ids: np.ndarray) -> np.ndarray:  # every id collides
        return np.full(np.asarray(ids).shape[0], 7, dtype=np.uint64)

    monkeypatch.setattr(build, "id_hashes", one_hash)
    parts = cut(make([2, 3, 1, 4]), [2])
    index = build_index(write_npz_shards(tmp_path / "ok", parts), read_npz)
    assert index.num_sequences == 4
    clash = [parts[0], Sequences(parts[1].values, parts[1].lengths, np.array(["s9", "s1"]), source="<test>")]
    paths = write_npz_shards(tmp_path / "dup", clash)
    with pytest.raises(DataError, match=r"part-001\.npz: sequence id 's1' appears in shards .*part-000\.npz and"):
        build_index(paths, read_npz)


def test_read_all_reads_each_shard_once_and_checks_them(tmp_path: Path) -> None:
    seqs = make([2, 3, 1, 4, 2], num_features=2, seed=4)
    paths = write_npz_shards(tmp_path / "ok", cut(seqs, [2, 3]))
    reads: list[str] = []

    def counting(p: Path) -> Sequences:
        reads.append(p.name)
        return read_npz(p)

    got = read_all(paths, counting)
    same_sequences(got, seqs)
    assert sorted(reads) == sorted(p.name for p in paths) and len(reads) == 3
    assert got.source == str(tmp_path / "ok")
    other = write_npz_shards(tmp_path / "wide", [make([2]), make([3], num_features=3)])
    with pytest.raises(DataError, match=r"part-001\.npz: 3 features, but .*part-000\.npz has 2"):
        read_all(other, read_npz)
    twice = write_npz_shards(tmp_path / "dup", [make([2]), make([3])])  # both hold "s0"
    with pytest.raises(DataError, match=r"sequence id 's0' appears in shards"):
        read_all(twice, read_npz)
