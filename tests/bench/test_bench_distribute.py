"""Smoke test of bench/distribute.py: one process and mirrored over two CPU devices on a
tiny workload, and the table."""

from pathlib import Path

import pytest
from helpers import load_bench

bench = load_bench("distribute")


@pytest.mark.slow
@pytest.mark.xdist_group("distribute")
def test_bench_distribute_smoke(tmp_path: Path) -> None:
    bench.write_workload(tmp_path / "data.npz", 48)
    rows = bench.measure(tmp_path, tmp_path / "data.npz", 2, ["one process", "mirrored x2"])
    assert [r["name"] for r in rows] == ["one process", "mirrored x2"]
    one, mirrored = rows
    assert one["x_one"] == 1.0 and one["max_abs_dw"] == 0.0
    assert mirrored["real_steps_per_s"] > 0 and mirrored["per_worker"] == mirrored["real_steps_per_s"]
    assert mirrored["max_rel_dloss"] < 1e-4  # the same run up to float32 summation order
    assert "| mirrored x2 | 1 |" in bench.table(rows)
