"""Export benchmark: encode throughput of seqmask against its exported SavedModel and ONNX graph.

What is measured
----------------
One run is trained (``--train-sequences`` synthetic sequences, ``--epochs`` epochs, the
model of ``--units`` / ``--latent-dim``, otherwise seqmask's default config; the speed of
a forward pass does not depend on how well it is trained), exported with
``seqmask.serving.export.export`` in both formats, and then ``--sequences`` other synthetic
variable-length sequences (lengths uniform in ``--min-length`` .. ``--max-length``,
2 features) are encoded, in the same process, one method after another:

* ``seqmask``     ``seqmask.analysis.evaluate.encode(run, file)``: what ``seqmask encode`` runs
                  (seqmask's fused CPU kernel on the post-padded run), its own timing:
                  batching, padding and the model, not reading the file. Its encode step
                  is traced once per model, in the untimed first call (each ``seqmask
                  encode`` command, a new process, pays it once: about 0.2 s).
* ``savedmodel``  ``tf.saved_model.load(dir).encode(values, lengths)`` on the same
                  batches (``seqmask.data.batching.inference_batches``: by length, ``--batch-size``),
                  raw values padded per batch inside the timed loop.
* ``onnx``        ``onnxruntime.InferenceSession(model.onnx).run(["latent"], ...)`` on the
                  same batches: the one ONNX graph, asked for the latent vectors only.

Each method runs once untimed (tracing, session start-up), then ``--repeats`` times; the
table gives the fastest. Throughput is real (unpadded) steps per second and sequences
per second; "x seqmask" is the method's throughput over seqmask's in the same run.
"max |dz|" is the largest difference of its latent vectors from seqmask's.

Usage
-----
    .venv/bin/python bench/export.py            # 2000 sequences of 10 .. 200 steps
    .venv/bin/python bench/export.py --quick    # smoke run: 100 sequences, a small model
    make bench-export
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

METHODS = ("seqmask", "savedmodel", "onnx")


def synthetic(path: Path, n: int, min_length: int, max_length: int, seed: int) -> np.ndarray:
    """`n` noisy two-feature sinusoids of random length, frequency and phase, as an NPZ file."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, n)
    parts = []
    for length in lengths:
        t = np.arange(length)[:, None]
        freq, phase = rng.uniform(0.02, 0.2, 2), rng.uniform(0, 2 * np.pi, 2)
        parts.append(np.sin(freq * t + phase) + 0.1 * rng.normal(size=(length, 2)))
    ids = np.array([f"s{i}" for i in range(n)])
    np.savez(path, values=np.concatenate(parts).astype(np.float32), lengths=lengths, ids=ids)
    return lengths


def _best(fn: Any, repeats: int) -> tuple[float, Any]:
    """(fastest seconds, output) of `repeats` timed calls after one untimed (tracing,
    session start-up). `fn` returns (output, seconds), seconds None for the call's wall time."""
    fn()
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out, seconds = fn()
        best = min(best, seconds if seconds is not None else time.perf_counter() - started)
    return best, out


def run_bench(opts: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from seqmask.analysis.evaluate import encode
    from seqmask.config import load_config
    from seqmask.data import pad
    from seqmask.data.batching import inference_batches
    from seqmask.data.loading import load
    from seqmask.run.loaded import load_run
    from seqmask.serving.export import ONNX_FILE, export
    from seqmask.training.loop import train

    synthetic(tmp / "train.npz", opts.train_sequences, opts.min_length, opts.max_length, seed=1)
    lengths = synthetic(tmp / "data.npz", opts.sequences, opts.min_length, opts.max_length, seed=2)
    cfg = {
        "data": {"train": "train.npz", "validation_split": 0.2},
        "model": {"units": opts.units, "latent_dim": opts.latent_dim},
        "train": {"epochs": opts.epochs, "batch_size": 32, "device": "cpu"},
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp / "config.yaml"), tmp / "run")
    run = load_run(tmp / "run")
    export_seconds = {fmt: export(run, tmp / fmt, fmt).seconds for fmt in ("savedmodel", "onnx")}

    import onnxruntime as ort
    import tensorflow as tf

    seqs = load(tmp / "data.npz", run.cfg)
    batches = inference_batches(seqs.lengths, opts.batch_size)
    padding = run.cfg.data.padding
    saved = tf.saved_model.load(str(tmp / "savedmodel"))
    session = ort.InferenceSession(str(tmp / "onnx" / ONNX_FILE), providers=["CPUExecutionProvider"])

    def over_batches(step: Any) -> tuple[np.ndarray, None]:
        latent = np.zeros((len(seqs), opts.latent_dim), np.float32)
        for idx in batches:
            n = seqs.lengths[idx].astype(np.int32)
            latent[idx] = step(pad(seqs, idx, int(n.max()), padding), n)
        return latent, None

    def seqmask_encode() -> tuple[np.ndarray, float]:
        # encode's own timing: batching, padding and the model, not reading the file.
        _, latent, seconds = encode(run, tmp / "data.npz", opts.batch_size)
        return latent, seconds

    methods = {
        "seqmask": seqmask_encode,
        "savedmodel": lambda: over_batches(lambda v, n: saved.encode(v, n)["latent"].numpy()),
        "onnx": lambda: over_batches(lambda v, n: session.run(["latent"], {"values": v, "lengths": n})[0]),
    }
    results: dict[str, dict[str, float]] = {}
    latents: dict[str, np.ndarray] = {}
    for name in METHODS:
        seconds, latents[name] = _best(methods[name], opts.repeats)
        results[name] = {"seconds": seconds}
        print(f"{name}: {seconds:.3f} s", flush=True)
    steps = int(lengths.sum())
    for name, r in results.items():
        r["sequences_per_s"] = len(lengths) / r["seconds"]
        r["steps_per_s"] = steps / r["seconds"]
        r["ratio"] = results["seqmask"]["seconds"] / r["seconds"]
        r["max_abs_latent_diff"] = float(np.abs(latents[name] - latents["seqmask"]).max())
    return {
        "options": vars(opts),
        "sequences": len(lengths),
        "real_steps": steps,
        "export_seconds": export_seconds,
        "results": results,
        "load_average": os.getloadavg()[0],
        "cores": os.cpu_count(),
    }


def table(report: dict[str, Any]) -> str:
    o = report["options"]
    lines = [
        f"encode throughput: {report['sequences']} sequences, {report['real_steps']} real steps "
        f"(lengths {o['min_length']}..{o['max_length']}), batch {o['batch_size']}, units {o['units']}, "
        f"latent {o['latent_dim']}; best of {o['repeats']}; load average {report['load_average']:.2f} "
        f"on {report['cores']} cores",
        "",
        "| method     | seconds | sequences/s | real steps/s | x seqmask | max abs dz |",
        "|------------|--------:|------------:|-------------:|----------:|-----------:|",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {name:<10} | {r['seconds']:7.3f} | {r['sequences_per_s']:11.0f} | {r['steps_per_s']:12.0f} "
            f"| {r['ratio']:9.2f} | {r['max_abs_latent_diff']:10.1e} |"
        )
    e = report["export_seconds"]
    lines += ["", f"export: savedmodel {e['savedmodel']:.1f} s, onnx {e['onnx']:.1f} s"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 100 sequences, units 16, latent 8, 1 repeat")
    p.add_argument("--sequences", type=int, default=None, help="sequences encoded (default 2000)")
    p.add_argument("--train-sequences", type=int, default=None, help="sequences trained on (default 200)")
    p.add_argument("--min-length", type=int, default=10)
    p.add_argument("--max-length", type=int, default=200)
    p.add_argument("--units", type=int, default=None, help="model.units (default 64, seqmask's default)")
    p.add_argument("--latent-dim", type=int, default=None, help="model.latent_dim (default 128, seqmask's default)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32, help="the encode batch of every method")
    p.add_argument("--repeats", type=int, default=None, help="timed passes per method (default 3)")
    p.add_argument("--output", help="also write the report as JSON here")
    opts = p.parse_args(argv)
    quick = opts.quick
    opts.sequences = opts.sequences or (100 if quick else 2000)
    opts.train_sequences = opts.train_sequences or (40 if quick else 200)
    opts.units = opts.units or (16 if quick else 64)
    opts.latent_dim = opts.latent_dim or (8 if quick else 128)
    opts.repeats = opts.repeats or (1 if quick else 3)
    return opts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    print(f"bench/export.py: {opts.sequences} sequences; units {opts.units}, latent {opts.latent_dim}", flush=True)
    with tempfile.TemporaryDirectory(prefix="seqmask-bench-export-") as tmp:
        report = run_bench(opts, Path(tmp))
    print("\n" + table(report))
    if opts.output:
        Path(opts.output).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
