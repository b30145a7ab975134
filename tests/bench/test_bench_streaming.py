"""Smoke test of bench/streaming.py: one tiny size, every measurement, the table."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_bench

bench = load_bench("streaming")


def test_the_shards_hold_what_was_asked(tmp_path: Path) -> None:
    from seqmask.data.readers import read_sequences

    steps = bench.write_shards(tmp_path, 25, 10)
    parts = sorted(tmp_path.glob("part-*.npz"))
    assert [p.name for p in parts] == ["part-00000.npz", "part-00001.npz", "part-00002.npz"]
    seqs = [read_sequences(p) for p in parts]
    assert [len(s) for s in seqs] == [10, 10, 5] and sum(s.num_steps for s in seqs) == steps
    assert all(s.num_features == 12 and s.lengths.max() <= 400 for s in seqs)


@pytest.mark.slow
def test_bench_streaming_smoke(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["--sizes", "3000", "--shard-size", "1000", "--batches", "20", "--encode-shards", "1"]
    done = subprocess.run(
        [sys.executable, bench.__file__, *args, "--json", str(out), "--dir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| 3,000 |" in done.stdout
    import json

    (row,) = json.loads(out.read_text())
    for part in ("index", "stream", "memory", "encode", "detect"):
        assert row[part]["rss_mib"] > 0 and row[part]["per_s"] > 0, part
    assert row["stream"]["batches"] >= 20
    assert row["detect"]["calibrated"] and row["detect"]["sequences"] == 1000  # one shard, calibrated first
