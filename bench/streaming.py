"""Streaming benchmark: training and encoding from shards on disk against the in-memory path.

What is measured
----------------
For each size N (default 10^5 and 10^6 sequences; ``--sizes 100000,1000000,10000000``
adds 10^7 where the disk has room), shards of ``--shard-size`` sequences are written as
NPZ files (the speed bench's lengths: lognormal, median 50, at most 400; 12 float32
features), then, each in a fresh process so each peak RSS is its own:

* ``index``      ``shards.build_index`` alone (two reader threads, the 0.2 validation
                 holdout): seconds, sequences/s, peak RSS;
* ``stream``     ``seqmask.train`` with ``data.streaming: on`` (LSTM 64, latent 32, batch 64,
                 ``data.window_shards: 8``, otherwise the defaults), stopped after
                 ``--batches`` batches of epoch 1 (a whole epoch of 10^6 sequences takes
                 ~10 minutes here); real steps/s over the batches after the first 30
                 (tracing), the seconds the step waited for the prefetcher, peak RSS (the
                 index pass included);
* ``memory``     the same with ``data.streaming: off`` (every shard read first), where the
                 values fit in a third of this machine's memory;
* ``encode``     ``Run.encode_to`` of the first ``--encode-shards`` shards to Parquet,
                 streamed shard by shard: real steps/s, peak RSS;
* ``detect``     ``Run.detect_to`` of the same shards (rows and steps to Parquet) on the
                 streamed run: the first call calibrates its detector from seeded samples
                 of the splits read from every shard ("calibrate s"), the second only
                 detects (real steps/s); peak RSS over both.

``--batches 0`` trains the whole epoch instead (with its validation and the detector's
calibration at the end: a whole ``seqmask train``).

"x memory" is streaming's throughput over the in-memory run's; "RSS x first" is a peak
RSS over the same row's at the smallest size (the goal: within 1.2 from 10^5 to 10^7).
The batches are the same in both runs (the windowed plan), so the comparison is of reading
alone.

Usage
-----
    .venv/bin/python bench/streaming.py                      # 10^5 and 10^6
    .venv/bin/python bench/streaming.py --sizes 10000 --batches 60 --encode-shards 1   # smoke
    .venv/bin/python bench/streaming.py --sizes 100000,1000000,10000000 --json r.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

MAX_LEN, FEATURES, WARMUP = 400, 12, 30


def write_shards(directory: Path, n: int, shard_size: int, seed: int = 0) -> int:
    """`n` sequences in NPZ shards of `shard_size`; returns the real steps written."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    steps = 0
    for k, start in enumerate(range(0, n, shard_size)):
        count = min(shard_size, n - start)
        lengths = np.clip(np.round(rng.lognormal(np.log(50), 0.7, count)), 1, MAX_LEN).astype(np.int64)
        t = (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))[:, None]
        period = rng.uniform(10, 100, (count, FEATURES))[np.repeat(np.arange(count), lengths)]
        values = np.sin(2 * np.pi * t / period) + 0.1 * rng.standard_normal((int(lengths.sum()), FEATURES))
        ids = np.array([f"q{start + i:08d}" for i in range(count)])
        np.savez(directory / f"part-{k:05d}.npz", values=values.astype(np.float32), lengths=lengths, ids=ids)
        steps += int(lengths.sum())
    return steps


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _config(shards: Path, streaming: str) -> dict[str, Any]:
    return {
        "data": {"train": str(shards), "streaming": streaming, "window_shards": 8},
        "model": {"units": 64, "latent_dim": 32},
        "train": {"epochs": 1, "batch_size": 64, "learning_rate": 1e-3},
    }


# --------------------------------------------------------------------------- in a subprocess


def _measure_index(shards: Path) -> dict[str, Any]:
    from seqmask.config import config_from_dict
    from seqmask.data.loading import shard_reader
    from seqmask.data.shards import build_index, find_shards, holdout

    cfg = config_from_dict(_config(shards, "on"))
    started = time.perf_counter()
    index = build_index(find_shards(shards) or [], shard_reader(cfg), holdout=holdout(0.2, 0))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "per_s": index.num_sequences / seconds, "rss_mib": _peak_rss_mib()}


def _measure_train(shards: Path, mode: str, batches: int, run: Path) -> dict[str, Any]:
    from seqmask import api
    from seqmask.data import streaming as streaming_module
    from seqmask.errors import Interrupted
    from seqmask.training.progress import Reporter

    marks: list[tuple[float, float]] = []  # (time, real steps done) after each batch
    waited = [0.0]
    plain_get = streaming_module.Prefetcher.get

    def timed_get(self: Any, k: int) -> Any:  # how long the training step waits for its batch
        started = time.perf_counter()
        value = plain_get(self, k)
        waited[0] += time.perf_counter() - started
        return value

    streaming_module.Prefetcher.get = timed_get  # type: ignore[method-assign]

    class Watch(Reporter):
        def batch_end(self, epoch: int, batch: int, loss: float, real_steps_per_s: float) -> None:
            marks.append((time.perf_counter(), 0.0))

    from seqmask.run.directory import RunDir

    done = {"n": 0}

    def stop() -> bool:
        done["n"] += 1
        return 0 < batches < done["n"]

    started = time.perf_counter()
    try:
        api.train(_config(shards, mode), run, reporter=Watch(), should_stop=stop)
    except Interrupted:
        pass
    train_s = time.perf_counter() - started
    # Real steps per batch, from the run's plan: batch k of epoch 1.
    from seqmask.config import config_from_dict
    from seqmask.data.batching import epoch_batches
    from seqmask.data.shards import ShardIndex
    from seqmask.run.splits import prepare

    cfg = config_from_dict(_config(shards, "on"))
    index = ShardIndex.load(RunDir(run).file("shard_index.npz"))
    splits = prepare(cfg, index)
    plan = epoch_batches(splits.train, 64, "bucket", 0, 1, 8)
    steps = np.array([int(splits.train.lengths[b].sum()) for b in plan[: len(marks)]])
    times = np.array([t for t, _ in marks])
    timed = slice(min(WARMUP, len(marks) // 2), len(marks))  # a smoke run may have fewer batches
    per_s = float(steps[timed][1:].sum() / (times[timed][-1] - times[timed][0]))
    return {
        "per_s": per_s,
        "batches": len(marks),
        "train_s": train_s,
        "rss_mib": _peak_rss_mib(),
        "waited_s": waited[0],
    }


def _measure_encode(shards: Path, run: Path, count: int, out: Path) -> dict[str, Any]:
    from seqmask import api

    subset = _first_shards(shards, count, out.parent / f"encode-shards-{out.stem}")
    loaded = api.load(run, "last")
    loaded.encode_to(subset, out)  # once untimed: tracing
    started = time.perf_counter()
    encoding = loaded.encode_to(subset, out)
    seconds = time.perf_counter() - started
    return {"per_s": encoding.num_steps / seconds, "rss_mib": _peak_rss_mib()}


def _first_shards(shards: Path, count: int, subset: Path) -> Path:
    """A directory of links to the first `count` shards."""
    from seqmask.data.shards import find_shards

    subset.mkdir(exist_ok=True)
    for p in (find_shards(shards) or [])[:count]:
        if not (subset / p.name).exists():
            os.symlink(p, subset / p.name)
    return subset


def _measure_detect(shards: Path, run: Path, count: int, out: Path) -> dict[str, Any]:
    """`Run.detect_to` of the first `count` shards: the first call calibrates the run's
    detector (streamed: seeded samples of the splits, read from every shard), the second
    only detects, shard by shard."""
    from seqmask import api

    subset = _first_shards(shards, count, out.parent / f"detect-shards-{out.stem}")
    loaded = api.load(run, "last")
    started = time.perf_counter()
    first = loaded.detect_to(subset, out, steps=out.with_name(out.stem + "-steps.parquet"))
    calibrate_s = time.perf_counter() - started
    started = time.perf_counter()
    again = loaded.detect_to(subset, out, steps=out.with_name(out.stem + "-steps.parquet"))
    seconds = time.perf_counter() - started
    steps = sum(int(np.load(p)["lengths"].sum()) for p in sorted(subset.glob("*.npz")))
    return {
        "calibrate_detect_s": calibrate_s,
        "calibrated": first.calibrated_now,
        "sequences": again.totals.sequences,
        "per_s": steps / seconds,
        "rss_mib": _peak_rss_mib(),
    }


def _child(args: argparse.Namespace) -> None:
    what, shards = args.child, Path(args.shards)
    if what == "index":
        result = _measure_index(shards)
    elif what in ("stream", "memory"):
        result = _measure_train(shards, "on" if what == "stream" else "off", args.batches, Path(args.run))
    elif what == "detect":
        result = _measure_detect(shards, Path(args.run), args.encode_shards, Path(args.out))
    else:
        result = _measure_encode(shards, Path(args.run), args.encode_shards, Path(args.out))
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- the parent


def _run_child(*argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, timeout=6 * 3600, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise SystemExit(f"bench child {argv[:2]} failed:\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=600, help="batches of epoch 1 to train; 0: the whole epoch")
    parser.add_argument("--encode-shards", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--dir", type=Path, help="where to write the shards (default: a temporary directory)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    base = args.dir or Path(tempfile.mkdtemp(prefix="seqmask-bench-streaming-"))
    base.mkdir(parents=True, exist_ok=True)
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    rows: list[dict[str, Any]] = []
    try:
        for n in sizes:
            need = n * 57 * FEATURES * 4 * 1.1  # bytes on disk, about
            free = shutil.disk_usage(base).free
            if need > 0.8 * free:
                print(f"skipped {n:,}: needs ~{need / 2**30:.0f} GiB of disk, {free / 2**30:.0f} GiB free", flush=True)
                continue
            shards = base / f"n{n}"
            started = time.perf_counter()
            if len(list(shards.glob("part-*.npz"))) == -(-n // args.shard_size):  # --dir: written before
                steps = sum(int(np.load(p)["lengths"].sum()) for p in sorted(shards.glob("part-*.npz")))
            else:
                steps = write_shards(shards, n, args.shard_size)
            print(f"{n:,} sequences, {steps:,} real steps: shards ready in {time.perf_counter() - started:.0f} s")
            common = [
                "--shards",
                str(shards),
                "--batches",
                str(args.batches),
                "--encode-shards",
                str(args.encode_shards),
            ]
            row: dict[str, Any] = {"sequences": n, "steps": steps}
            for old in (base / f"run-s{n}", base / f"run-m{n}"):  # --dir: a run of an earlier call
                shutil.rmtree(old, ignore_errors=True)
            row["index"] = _run_child("--child", "index", *common)
            row["stream"] = _run_child("--child", "stream", *common, "--run", str(base / f"run-s{n}"))
            if steps * FEATURES * 4 < memory / 3:
                row["memory"] = _run_child("--child", "memory", *common, "--run", str(base / f"run-m{n}"))
            run = str(base / f"run-s{n}")
            row["encode"] = _run_child("--child", "encode", *common, "--run", run, "--out", str(base / f"z{n}.parquet"))
            row["detect"] = _run_child("--child", "detect", *common, "--run", run, "--out", str(base / f"d{n}.parquet"))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.dir is None:
                shutil.rmtree(shards, ignore_errors=True)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| sequences | real steps | index s | index seq/s | index RSS MiB | stream steps/s | memory steps/s "
        "| x memory | waited s | stream RSS MiB | RSS x first | memory RSS MiB | encode steps/s | encode RSS MiB "
        "| calibrate s | detect steps/s | detect RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    first = rows[0]["stream"]["rss_mib"] if rows else 1.0
    for r in rows:
        mem = r.get("memory")
        ratio = f"{r['stream']['per_s'] / mem['per_s']:.2f}" if mem else "-"
        lines.append(
            f"| {r['sequences']:,} | {r['steps']:,} | {r['index']['seconds']:.1f} | {r['index']['per_s']:,.0f} "
            f"| {r['index']['rss_mib']:,.0f} | {r['stream']['per_s']:,.0f} | "
            + (f"{mem['per_s']:,.0f}" if mem else "does not fit")
            + f" | {ratio} | {r['stream']['waited_s'] or 0:.2f} | {r['stream']['rss_mib']:,.0f} "
            f"| {r['stream']['rss_mib'] / first:.2f} | "
            + (f"{mem['rss_mib']:,.0f}" if mem else "-")
            + f" | {r['encode']['per_s']:,.0f} | {r['encode']['rss_mib']:,.0f} |"
            + (_detect_cells(r["detect"]) if "detect" in r else " - | - | - |")
        )
    return "\n".join(lines)


def _detect_cells(d: dict[str, Any]) -> str:
    calibrated = f"{d['calibrate_detect_s']:.1f}" if d["calibrated"] else "-"
    return f" {calibrated} | {d['per_s']:,.0f} | {d['rss_mib']:,.0f} |"


if __name__ == "__main__":
    main()
