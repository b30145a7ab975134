"""How long `seqmask report` takes, and how big the page gets, on 100 000 sequences.

Draws about 100 000 sequences (3.7 million real steps) from the example data generator
(scripts/make_example_data.py, other seeds), writes them to an NPZ file, and times
``seqmask report RUN --data that.npz`` in a fresh process, next to ``seqmask evaluate`` on the
same file in the same run: the report makes evaluate's pass over the data plus the detector,
the figures and the page, so the ratio says what the report adds. RUN is a run of the bundled
data (``--run``, default runs/demo: run ``make demo`` first).

    .venv/bin/python bench/report_cost.py [--run runs/demo] [--sequences 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import make_example_data  # noqa: E402


def write_data(path: Path, sequences: int) -> tuple[int, int]:
    parts, n, seed = [], 0, 100
    while n < sequences:
        values, lengths, ids, _, _ = make_example_data.generate(seed)
        parts.append((values, lengths, np.char.add(f"s{seed}-", ids)))
        n, seed = n + len(lengths), seed + 1
    lengths = np.concatenate([p[1] for p in parts])
    np.savez(
        path, values=np.concatenate([p[0] for p in parts]), lengths=lengths, ids=np.concatenate([p[2] for p in parts])
    )
    return len(lengths), int(lengths.sum())


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv/bin/seqmask"), *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "demo"))
    p.add_argument("--sequences", type=int, default=100_000)
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data, page = Path(tmp) / "big.npz", Path(tmp) / "report.html"
        n, steps = write_data(data, opts.sequences)
        evaluate = timed(["evaluate", opts.run, "--data", str(data), "--output", str(Path(tmp) / "e.csv")])
        report = timed(["report", opts.run, "--data", str(data), "--output", str(page)])
        size = page.stat().st_size
    print(f"{n:,} sequences, {steps:,} real steps, run {opts.run}")
    print("| command | seconds | page |")
    print("|---|---|---|")
    print(f"| seqmask evaluate | {evaluate:.1f} | |")
    print(f"| seqmask report | {report:.1f} | {size / 1e6:.2f} MB |")
    print(f"report / evaluate: {report / evaluate:.2f}")


if __name__ == "__main__":
    main()
