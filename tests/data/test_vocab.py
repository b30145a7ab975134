"""seqmask.data.vocab: build, encode, decode, save/load round trip, file errors, fuzzing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from readers_support import FUZZ, write

from seqmask.data import Sequences, pad, split, truncate
from seqmask.data.vocab import PAD, PAD_TOKEN, UNKNOWN, UNKNOWN_TOKEN, Vocabulary
from seqmask.errors import DataError, RunError


def tokens(*seqs: str) -> Sequences:
    parts = [s.split() for s in seqs]
    return Sequences(
        np.array([t for p in parts for t in p], dtype=str),
        [len(p) for p in parts],
        [f"s{i}" for i in range(len(parts))],
        source="<tokens>",
    )


def test_reserved_ids():
    assert (PAD, UNKNOWN) == (0, 1)
    assert (PAD_TOKEN, UNKNOWN_TOKEN) == ("<pad>", "<unk>")


def test_build_orders_by_count_then_token():
    v = Vocabulary.build(tokens("b a c a", "c b d a", "e"))
    # a:3, b:2, c:2, d:1, e:1 -> ties broken by token string
    assert v.tokens == ("<pad>", "<unk>", "a", "b", "c", "d", "e")
    assert len(v) == 7


def test_build_min_count_and_max_size():
    seqs = tokens("b a c a", "c b d a", "e")
    assert Vocabulary.build(seqs, min_count=2).tokens == ("<pad>", "<unk>", "a", "b", "c")
    assert Vocabulary.build(seqs, max_size=4).tokens == ("<pad>", "<unk>", "a", "b")
    assert Vocabulary.build(seqs, min_count=5).tokens == ("<pad>", "<unk>")
    assert len(Vocabulary.build(seqs, max_size=100)) == 7
    with pytest.raises(ValueError):
        Vocabulary.build(seqs, max_size=2)
    with pytest.raises(ValueError):
        Vocabulary.build(seqs, min_count=0)


def test_build_skips_literal_reserved_tokens_and_refuses_numbers():
    v = Vocabulary.build(tokens("<pad> <unk> x <pad>"))
    assert v.tokens == ("<pad>", "<unk>", "x")
    with pytest.raises(ValueError, match="token sequences"):
        Vocabulary.build(Sequences(np.zeros((2, 1)), [2], ["a"]))


def test_encode_maps_unknown_and_keeps_layout():
    v = Vocabulary.build(tokens("a b b", "c"))
    enc = v.encode(tokens("b a z", "<pad> c <unk>"))
    assert enc.values.dtype == np.int32 and enc.values.shape == (6, 1)
    b, a, c = v.tokens.index("b"), v.tokens.index("a"), v.tokens.index("c")
    assert enc.values[:, 0].tolist() == [b, a, UNKNOWN, UNKNOWN, c, UNKNOWN]  # never PAD
    assert enc.lengths.tolist() == [3, 3] and enc.ids.tolist() == ["s0", "s1"] and enc.source == "<tokens>"
    assert not enc.is_tokens and enc.num_features == 1
    with pytest.raises(ValueError, match="encoded already"):
        v.encode(enc)


def test_encode_with_only_reserved_tokens():
    v = Vocabulary(("<pad>", "<unk>"))
    assert v.encode(tokens("a b")).values[:, 0].tolist() == [UNKNOWN, UNKNOWN]


def test_decode():
    v = Vocabulary(("<pad>", "<unk>", "x", "y"))
    assert v.decode(np.array([[2, 3], [0, 1]])).tolist() == [["x", "y"], ["<pad>", "<unk>"]]
    with pytest.raises(ValueError):
        v.decode([4])
    with pytest.raises(ValueError):
        v.decode([-1])


def test_encoded_sequences_go_through_the_pipeline():
    v = Vocabulary.build(tokens("a b c d", "a", "b c"))
    enc = v.encode(tokens("a b c d", "a", "b c"))
    cut = truncate(enc, 2, "pre")
    assert cut.values.dtype == np.int32 and cut.lengths.tolist() == [2, 1, 2]
    train, val = split(enc, 0.34, seed=0)
    assert train.values.dtype == np.int32 and val.values.dtype == np.int32
    batch = pad(enc, [0, 1, 2], 5, "post")
    assert batch.dtype == np.int32 and batch.shape == (3, 5, 1)
    assert batch[1, :, 0].tolist() == [v.tokens.index("a"), PAD, PAD, PAD, PAD]


@pytest.mark.parametrize(
    "toks, match",
    [
        (("<unk>", "<pad>"), "starts with"),
        (("<pad>",), "starts with"),
        (("<pad>", "<unk>", "a", "a"), "more than once"),
        (("<pad>", "<unk>", ""), "is empty"),
        (("<pad>", "<unk>", "a\nb"), "line break"),
        (("<pad>", "<unk>", "a\x00"), "NUL"),
        (("<pad>", "<unk>", "\ud800"), "surrogate"),
        (("<pad>", "<unk>", 3), "not a string"),
    ],
)
def test_invalid_vocabulary(toks, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(toks)


def test_save_load_round_trip_is_atomic(tmp_path):
    v = Vocabulary(("<pad>", "<unk>", "the", "naïve", "日本", "a b", "12"))
    p = tmp_path / "vocab.txt"
    write(p, "old content")
    v.save(p)
    assert p.read_text(encoding="utf-8") == "<pad>\n<unk>\nthe\nnaïve\n日本\na b\n12\n"
    assert Vocabulary.load(p) == v
    assert os.listdir(tmp_path) == ["vocab.txt"]  # no temporary file left behind


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    p = write(tmp_path / "vocab.txt", "<pad>\n<unk>\nold\n")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(RunError, match="No space left on device"):
        Vocabulary(("<pad>", "<unk>", "new")).save(p)
    assert p.read_text() == "<pad>\n<unk>\nold\n"
    assert os.listdir(tmp_path) == ["vocab.txt"]


def test_load_accepts_crlf_and_no_final_newline(tmp_path):
    assert Vocabulary.load(write(tmp_path / "v.txt", "<pad>\r\n<unk>\r\nx\r\ny")).tokens == ("<pad>", "<unk>", "x", "y")


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", ": the vocabulary file is empty"),
        (b"<unk>\n<pad>\n", ", line 1: expected '<pad>'"),
        (b"<pad>\n", ", line 2: expected '<unk>'"),
        (b"<pad>\nx\n", ", line 2: expected '<unk>'"),
        (b"<pad>\n<unk>\na\nb\na\n", ", line 5: token 'a' appears twice (also on line 3)"),
        (b"<pad>\n<unk>\na\n<unk>\n", ", line 4: token '<unk>' appears twice (also on line 2)"),
        (b"<pad>\n<unk>\na\n\nb\n", ", line 4: the token is empty"),
        (b"<pad>\n<unk>\na\x00\n", ", line 3: the token contains a NUL character"),
        (b"<pad>\n<unk>\na\n\xff\n", ", line 4: not valid UTF-8 text"),
    ],
)
def test_load_errors(tmp_path, content, expected):
    p = write(tmp_path / "my vocab.txt", content)
    with pytest.raises(DataError) as e:
        Vocabulary.load(p)
    assert str(e.value).startswith(f"{p}{expected}"), str(e.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="directory"):
        Vocabulary.load(tmp_path)


def test_module_imports_without_tensorflow():
    code = "import sys, seqmask.data.vocab, seqmask.data.readers; assert not {'tensorflow', 'keras'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- properties ----------------------------------------------------------------------------

_TOKEN = st.text(min_size=1, max_size=4).filter(lambda t: not any(c in t for c in "\x00\r\n"))


@FUZZ
@given(
    train=st.lists(st.lists(_TOKEN, min_size=1, max_size=6), min_size=1, max_size=6),
    other=st.lists(st.lists(_TOKEN, min_size=1, max_size=6), min_size=1, max_size=4),
    min_count=st.integers(1, 3),
    max_size=st.none() | st.integers(3, 8),
)
def test_build_encode_decode_properties(tmp_path_factory, train, other, min_count, max_size):
    def seqs(lists):
        return Sequences(
            np.array([t for s in lists for t in s], dtype=str),
            [len(s) for s in lists],
            [str(i) for i in range(len(lists))],
        )

    v = Vocabulary.build(seqs(train), min_count=min_count, max_size=max_size)
    counts: dict[str, int] = {}
    for s in train:
        for t in s:
            counts[t] = counts.get(t, 0) + 1
    real = v.tokens[2:]
    assert all(counts[t] >= min_count and t not in ("<pad>", "<unk>") for t in real)
    assert max_size is None or len(v) <= max_size
    keys = [(-counts[t], t) for t in real]
    assert keys == sorted(keys)  # most frequent first, then by token
    if max_size is None:  # every eligible token is in
        assert set(real) == {t for t, c in counts.items() if c >= min_count} - {"<pad>", "<unk>"}

    enc = v.encode(seqs(other))
    flat = [t for s in other for t in s]
    ids = enc.values[:, 0]
    assert ids.dtype == np.int32 and np.all(ids >= UNKNOWN) and np.all(ids < len(v))
    decoded = v.decode(ids).tolist()
    assert decoded == [t if t in real else "<unk>" for t in flat]

    p = tmp_path_factory.mktemp("vocab") / "v.txt"
    v.save(p)
    assert Vocabulary.load(p) == v


@FUZZ
@given(
    raw=st.binary(max_size=60)
    | st.lists(_TOKEN | st.sampled_from(["", "<pad>", "<unk>", " "]), max_size=6).map(lambda t: "\n".join(t).encode())
)
def test_fuzz_load_never_crashes(tmp_path_factory, raw):
    p = write(tmp_path_factory.mktemp("vocab") / "v.txt", raw)
    try:
        v = Vocabulary.load(p)
    except DataError as e:
        assert str(p) in str(e) and "\n" not in str(e)
    else:
        assert v.tokens[:2] == ("<pad>", "<unk>")
