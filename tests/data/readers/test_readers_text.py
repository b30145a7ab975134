"""seqmask.data.readers, token text (.txt): ids are line numbers, every named error, fuzzing."""

from __future__ import annotations

import gzip

import pytest
from helpers import ROOT
from hypothesis import given
from hypothesis import strategies as st
from readers_support import BAD_BYTES, FUZZ, check_outcome, error, write

from seqmask.data.readers import read_sequences


def test_tokens_and_line_number_ids(tmp_path):
    p = write(tmp_path / "x.txt", "the cat sat\n\n  on\tthe   mat \n12 7 9\n")
    s = read_sequences(p)
    assert s.source == str(p) and s.is_tokens
    assert s.ids.tolist() == ["1", "3", "4"]  # blank line 2 skipped, but counted
    assert s.lengths.tolist() == [3, 3, 3]
    assert s.values.tolist() == ["the", "cat", "sat", "on", "the", "mat", "12", "7", "9"]


def test_line_endings_bom_unicode_and_gzip(tmp_path):
    s = read_sequences(write(tmp_path / "a.txt", "\ufeffa b\r\nc\rd e\n\nf".encode("utf-8")))
    assert s.ids.tolist() == ["1", "2", "3", "5"]
    assert s.values.tolist() == ["a", "b", "c", "d", "e", "f"]
    s = read_sequences(write(tmp_path / "b.txt", "naïve 日本語 x\u00a0y\n"))
    assert s.values.tolist() == ["naïve", "日本語", "x", "y"]  # NBSP is whitespace too
    p = write(tmp_path / "c.txt", gzip.compress(b"a b\n\nc\n"))
    assert read_sequences(p).ids.tolist() == ["1", "3"]
    p = write(tmp_path / "d.data", "x y\n")
    assert read_sequences(p, format="tokens_text").values.tolist() == ["x", "y"]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", ": no sequences (the file is empty or has only blank lines)"),
        (b"\n \n\t\r\n", ": no sequences"),
        (b"a b\nc \xff d\n", ", line 2: not valid UTF-8 text (byte 0xff)"),
        (b"a\r\nb\r\n\xc3\n", ", line 3: not valid UTF-8 text (byte 0xc3)"),
        (b"a b\n\nc d\x00 e\n", ", line 3: token 1 ('d\\x00') contains a NUL character"),
        (b"a b\n\x00\n", ", line 2: token 0 ('\\x00') contains a NUL"),
        (b"\x1f\x8b\x08\x00junk", ": not a valid gzip file"),
    ],
)
def test_errors(tmp_path, content, expected):
    p = write(tmp_path / "my tokens.txt", content)
    msg = error(p)
    assert msg.startswith(f"{p}{expected}"), msg


def test_rejects_column_options(tmp_path):
    p = write(tmp_path / "x.txt", "a b\n")
    assert "apply only to tables of one row per step" in error(p, feature_columns=["x"])


_TOKEN = st.text(min_size=1, max_size=6).filter(lambda t: not any(c.isspace() or c == "\x00" for c in t))


@FUZZ
@given(
    lines=st.lists(st.lists(_TOKEN, max_size=5), min_size=1, max_size=8),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    sep=st.sampled_from([" ", "\t", "  ", " \t "]),
)
def test_fuzz_valid_text_loads_exactly(tmp_path_factory, lines, newline, sep):
    text = newline.join(sep.join(toks) for toks in lines) + newline
    p = write(tmp_path_factory.mktemp("txt") / "t.txt", text)
    kept = [(k + 1, toks) for k, toks in enumerate(lines) if toks]
    if not kept:
        assert "no sequences" in error(p)
        return
    s = read_sequences(p)
    assert s.ids.tolist() == [str(k) for k, _ in kept]
    assert s.values.tolist() == [t for _, toks in kept for t in toks]


@FUZZ
@given(
    lines=st.lists(st.lists(_TOKEN, max_size=5), min_size=1, max_size=8),
    pos=st.integers(0, 200),
    junk=st.sampled_from(BAD_BYTES) | st.binary(max_size=20),
    truncate=st.booleans(),
)
def test_fuzz_mutated_text_never_crashes(tmp_path_factory, lines, pos, junk, truncate):
    raw = "\n".join(" ".join(t) for t in lines).encode()
    pos = min(pos, len(raw))
    raw = raw[:pos] if truncate else raw[:pos] + junk + raw[pos:]
    check_outcome(write(tmp_path_factory.mktemp("txt") / "fuzz.txt", raw))


# -- the bundled token dataset -------------------------------------------------------------


def test_bundled_token_data_is_consistent():
    import importlib.util

    from seqmask.config import load_config

    repo = ROOT
    path = repo / "data" / "tokens.txt"
    if not path.exists():
        pytest.skip("run scripts/make_token_data.py")
    spec = importlib.util.spec_from_file_location("make_token_data", repo / "scripts" / "make_token_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert path.read_text(encoding="utf-8") == module.render(module.generate())  # deterministic, up to date

    s = read_sequences(path)
    assert s.is_tokens and len(s) == 800
    assert s.ids.tolist() == [str(k) for k in range(1, 801)]
    assert s.lengths.min() == 2 and s.lengths.max() == 30
    assert 30 <= len(set(s.values.tolist())) <= 60

    cfg = load_config(repo / "configs" / "tokens.yaml")
    assert cfg.data.train == str(path) and cfg.input.kind == "tokens"
    assert cfg.data.max_len >= int(s.lengths.max())
