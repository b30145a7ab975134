"""Scaling benchmark: one process against `train.distribute: mirrored` and `multi_worker`.

What is measured
----------------
The speed bench's workload (bench.py: lognormal lengths, median 50, at most 400, 12
features; LSTM 64 units, latent 32, batch 64, otherwise seqmask's defaults) is trained
with `seqmask train` in fresh processes, one configuration after another (never two at
once), each with the same config, seed and global batch:

* ``one process``          ``train.distribute: none``: the reference;
* ``one process x 1 thread``  the reference on one core: its kernel sums the batch in
                           another order (one slice instead of one per core), which shows
                           what a different float32 summation order alone does;
* ``mirrored x2``          one process, two replicas on two logical CPU devices;
* ``2 workers``            two ``seqmask train`` processes on localhost, TF_CONFIG set per
                           process, each with ``train.cpu_threads`` of its own (the
                           default: every core, so on this 2-core machine 4 threads share 2);
* ``2 workers x 1 thread``  the same with ``train.cpu_threads: 1``, one core per worker.

Throughput is real (unpadded) training steps per second over epochs 2..N (epoch 1
traces), from the chief's ``history.csv`` (an epoch's seconds include its validation
pass); "per worker" divides it by the number of processes, and "x one" is the run's
throughput over the one-process run's in the same invocation. "max |dw|" is the largest
difference of its final weights from the one-process run's, and "max rel dloss" the
largest relative difference of its history's losses: what the floating-point summation
order changes. Two workers on one 2-core machine compete for the same cores, so the
figures here show the cost of the collectives and of the extra process, not a speed-up;
a speed-up needs a core (or a machine, or a GPU) per worker.

Usage
-----
    .venv/bin/python bench/distribute.py            # 2048 sequences, 4 epochs (3 timed)
    .venv/bin/python bench/distribute.py --quick    # 512 sequences, 3 epochs: a few minutes
    .venv/bin/python bench/distribute.py --json results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import write_workload  # noqa: E402

TIMEOUT = 3600  # seconds, per configuration: a hang ends the benchmark instead of the session

CONFIGS: dict[str, dict[str, Any]] = {
    "one process": {"workers": 1, "train": {"distribute": "none"}},
    "one process x 1 thread": {"workers": 1, "train": {"distribute": "none", "cpu_threads": 1}},
    "mirrored x2": {"workers": 1, "train": {"distribute": "mirrored", "replicas": 2}},
    "2 workers": {"workers": 2, "train": {"distribute": "multi_worker"}},
    "2 workers x 1 thread": {"workers": 2, "train": {"distribute": "multi_worker", "cpu_threads": 1}},
}


def _config(tmp: Path, data: Path, epochs: int, train: dict[str, Any]) -> Path:
    cfg = {
        "data": {"train": str(data)},
        "model": {"units": 64, "latent_dim": 32},
        "train": {"epochs": epochs, "batch_size": 64, "patience": 0, "learning_rate": 1e-3, **train},
    }
    path = tmp / f"config-{len(list(tmp.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _free_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    return ports


def _train(run: Path, config: Path, workers: int) -> None:
    """`seqmask train` as `workers` processes; the chief (worker 0) writes `run`."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    cmd = [sys.executable, "-m", "seqmask", "train", str(run), "--config", str(config), "--quiet"]
    if workers == 1:
        subprocess.run(cmd, env=env, check=True, timeout=TIMEOUT, stdout=subprocess.DEVNULL)
        return
    ports = _free_ports(workers)
    procs = []
    for i in range(workers):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen(cmd, env={**env, "TF_CONFIG": json.dumps(tf_config)}, stdout=subprocess.DEVNULL))
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if codes != [0] * workers:
        raise SystemExit(f"a worker failed: exit codes {codes}")


def _history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _weights(run: Path) -> list[np.ndarray]:
    from seqmask.run.checkpoints import load_checkpoint

    model, _ = load_checkpoint(run / "checkpoints" / "last.keras")
    return [np.asarray(w) for w in model.get_weights()]


def measure(tmp: Path, data: Path, epochs: int, names: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reference: tuple[list[dict[str, float]], list[np.ndarray]] | None = None
    for name in names:
        spec = CONFIGS[name]
        run = tmp / name.replace(" ", "_").replace(",", "")
        print(f"  training: {name} ...", file=sys.stderr, flush=True)
        _train(run, _config(tmp, data, epochs, spec["train"]), spec["workers"])
        history, weights = _history(run), _weights(run)
        timed = history[1:] or history
        steps_per_s = sum(r["train_real_steps"] for r in timed) / sum(r["seconds"] for r in timed)
        if reference is None:
            reference = (history, weights)
        ref_history, ref_weights = reference
        dw = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, ref_weights, strict=True))
        dloss = max(
            abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
            for a, b in zip(history, ref_history, strict=True)
            for k in ("loss", "val_loss")
            if k in a and k in b
        )
        rows.append(
            {
                "name": name,
                "processes": spec["workers"],
                "real_steps_per_s": steps_per_s,
                "per_worker": steps_per_s / spec["workers"],
                "max_abs_dw": dw,
                "max_rel_dloss": dloss,
            }
        )
    base = rows[0]["real_steps_per_s"]
    for row in rows:
        row["x_one"] = row["real_steps_per_s"] / base
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| configuration | processes | real steps/s | per worker | x one | max abs dw | max rel dloss |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['processes']} | {r['real_steps_per_s']:,.0f} | {r['per_worker']:,.0f} "
            f"| {r['x_one']:.2f} | {r['max_abs_dw']:.1e} | {r['max_rel_dloss']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="512 sequences, 3 epochs")
    parser.add_argument("--only", default=",".join(CONFIGS), help="comma-separated: " + ", ".join(CONFIGS))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    sequences, epochs = (512, 3) if args.quick else (args.sequences, args.epochs)
    names = [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or names[0] != "one process":
        raise SystemExit(f"--only: the first must be 'one process', the others from {list(CONFIGS)}: {unknown}")
    with tempfile.TemporaryDirectory(prefix="seqmask-bench-distribute-") as tmp_name:
        tmp = Path(tmp_name)
        steps = write_workload(tmp / "data.npz", sequences)
        print(f"{sequences} sequences ({steps:,} real steps), {epochs} epochs, {os.cpu_count()} cores", flush=True)
        rows = measure(tmp, tmp / "data.npz", epochs, names)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
