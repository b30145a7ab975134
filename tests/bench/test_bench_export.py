"""Smoke test of bench/export.py: a tiny run, both exports, the table. Needs only the
test and export extras (no bench extra)."""

from pathlib import Path

import pytest
from helpers import load_bench

bench = load_bench("export")


@pytest.mark.slow
def test_bench_export_quick_smoke(tmp_path: Path) -> None:
    pytest.importorskip("tf2onnx", reason="the export extra (tf2onnx) is not installed")
    pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    args = ["--quick", "--sequences", "12", "--train-sequences", "10", "--units", "4", "--latent-dim", "2"]
    report = bench.main([*args, "--max-length", "20", "--output", str(tmp_path / "r.json")])
    assert set(report["results"]) == {"seqmask", "savedmodel", "onnx"}
    for r in report["results"].values():
        assert r["seconds"] > 0 and r["steps_per_s"] > 0
        assert r["max_abs_latent_diff"] < 1e-5  # the exports encode as seqmask does
    assert report["results"]["seqmask"]["ratio"] == 1.0
    assert "| savedmodel |" in bench.table(report) and (tmp_path / "r.json").is_file()
