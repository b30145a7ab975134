"""Does an anomaly score depend on the sequence's length, and does `detect.length_bins` fix it?

The bundled example data (scripts/make_example_data.py) has lengths from 1 to 120 steps,
far more spread than the benchmark's tasks (bench/detect.py), so it is where a length effect
shows. One run of configs/example.yaml is trained on data/trajectories.npz (or an existing
run is given with --run); then fresh *normal* data is drawn from the same generator with
other seeds (its planted anomalies removed), and for each score:

* Spearman's ρ between length and score on that normal data;
* the share flagged among its shortest, middle and longest third, with one threshold for
  all lengths (``length_bins: 1``) and with the default per-length-range thresholds, both
  fitted on the run's validation split at the default level (0.99) and at 0.95.

A threshold that does not depend on length should flag the three thirds alike.

Usage (from the repository root)::

    .venv/bin/python bench/detect_length.py                 # trains runs/detect-length first (~1 min)
    .venv/bin/python bench/detect_length.py --run runs/demo # an existing run of the bundled data
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import make_example_data  # noqa: E402

SEEDS = (1, 2, 3)  # fresh data: the bundled file is seed make_example_data.SEED
SCORES = ("combined", "density", "latent", "mahalanobis", "error")
LEVELS = (0.99, 0.95)


def fresh_normal_data():
    """Sequences (raw) from the example generator with other seeds, planted anomalies removed."""
    from seqmask.data import Sequences

    parts = []
    for seed in SEEDS:
        values, lengths, ids, _, anomalies = make_example_data.generate(seed)
        seqs = Sequences(values, lengths, np.char.add(f"seed{seed}-", ids))
        parts.append(seqs.subset(np.flatnonzero(anomalies == 0)))
    return Sequences(
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.ids for p in parts]),
        "make_example_data.generate",
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="an existing run of the bundled data (default: train runs/detect-length)")
    opts = p.parse_args(argv)
    from scipy.stats import spearmanr

    from seqmask.analysis.detect import fit_detector, model_outputs, reference_latent
    from seqmask.config import load_config
    from seqmask.run.loaded import load_run, run_data
    from seqmask.training.loop import train

    run_dir = opts.run
    if run_dir is None:
        run_dir = ROOT / "runs" / "detect-length"
        train(load_config(ROOT / "configs" / "example.yaml"), run_dir, overwrite=True)
    run = load_run(run_dir)
    normal = fresh_normal_data()
    test = model_outputs(run, run.transform.apply(normal))
    validation = model_outputs(run, run_data(run, None))
    reference = reference_latent(run)
    lengths = normal.lengths
    third = np.searchsorted(np.quantile(lengths, [1 / 3, 2 / 3]), lengths, side="right")
    bounds = [f"{lengths[third == k].min()}..{lengths[third == k].max()}" for k in range(3)]
    print(f"run {run_dir}; {len(normal)} fresh normal sequences, lengths by third: {', '.join(bounds)}\n")
    print("| score | ρ(length, score) | level | thresholds | ranges | short | middle | long | all |")
    print("|---|---|---|---|---|---|---|---|---|")
    for score in SCORES:
        base = replace(run.cfg.detect, score=score)
        rho = None
        for level in LEVELS:
            for bins in (1, base.length_bins):
                detector = fit_detector(replace(base, length_bins=bins), validation, reference, level=level, how="")
                scores = detector.sequence_scores(test)
                if rho is None:
                    rho = spearmanr(lengths, scores, nan_policy="omit").statistic
                flags = np.nan_to_num(scores, nan=-np.inf) > detector.thresholds(lengths)
                rates = " | ".join(f"{flags[third == k].mean():.3f}" for k in range(3))
                what = "one" if bins == 1 else f"per length (≤ {bins})"
                print(
                    f"| {score} | {rho:+.2f} | {level} | {what} | {len(detector.bins.per_range)} | "
                    f"{rates} | {flags.mean():.3f} |"
                )


if __name__ == "__main__":
    main()
