"""Generate the bundled example dataset in ``data/`` (deterministic: fixed numpy seed).

Noisy 2-D trajectories from four families -- circles, spirals, lines and
figure-eights -- with random centre, scale, speed, phase, direction and noise, and
lengths that vary widely (lognormal, clipped to 5..120). The families give the
latent vectors something to separate; ``trajectories_labels.csv`` says which
family each sequence is, so users can check.

Writes (the same data three ways):

* ``data/trajectories.npz``: ``values`` [total_steps, 2] float32, ``lengths`` [N]
  int64, ``ids`` [N] ("traj-0000", ...);
* ``data/trajectories.csv``: long format, columns ``id, step, x, y``;
* ``data/trajectories_labels.csv``: ``id, family``;
* ``data/trajectories_anomalies.csv``: ``id, label`` (1 = a planted anomaly), the labels
  file ``seqmask detect --labels`` takes.

Eight of the sequences are planted anomalies, two of each kind (``ANOMALY_KINDS``): a
*glitch* (three consecutive steps thrown off the path), a *noise* burst (the middle 40 %
of the steps shaken), a *jump* (the second half displaced) and a *zigzag* (a shape no
family has). They are made after every normal sequence, from their
own generator, so the other 592 sequences are the same with or without them.

Run from the repository root: ``python scripts/make_example_data.py``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

SEED = 20240611
NUM_SEQUENCES = 600
FAMILIES = ("circle", "spiral", "line", "figure-eight")
MIN_LEN, MAX_LEN = 5, 120

# Edge cases the product must handle, planted on purpose (the rest is random):
LENGTH_ONE_INDEX = 7  # "traj-0007" has exactly 1 step.
ZERO_LAST_STEP_INDEX = 11  # "traj-0011" is a line that ends exactly at the origin:
# its last step is all zeros, i.e. indistinguishable by value from zero padding.
LONGEST_INDEX = 3  # "traj-0003" has MAX_LEN steps, so the full length range is present.
ANOMALY_KINDS = ("glitch", "noise", "jump", "zigzag")
ANOMALIES_PER_KIND = 2
ANOMALY_MIN_LEN = 30  # long enough that the anomaly is a part of the sequence, not all of it


def _trajectory(rng: np.random.Generator, family: str, length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float64)
    scale = rng.uniform(0.5, 2.0)
    center = rng.normal(0.0, 1.0, size=2)
    speed = rng.uniform(0.05, 0.3) * rng.choice([-1.0, 1.0])
    phase = rng.uniform(0.0, 2 * np.pi)
    theta = phase + speed * t
    if family == "circle":
        xy = scale * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    elif family == "spiral":
        radius = scale * (0.2 + rng.uniform(0.01, 0.03) * t)
        xy = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    elif family == "line":
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction)
        xy = direction * (scale * 0.05 * t)[:, None]
    elif family == "figure-eight":  # lemniscate of Gerono
        xy = scale * np.stack([np.sin(theta), np.sin(theta) * np.cos(theta)], axis=1)
    else:
        raise ValueError(family)
    noise = rng.uniform(0.01, 0.05) * scale
    return center + xy + rng.normal(0.0, noise, size=xy.shape)


def _line_to_origin(rng: np.random.Generator, length: int) -> np.ndarray:
    """A noisy line whose last step is exactly (0.0, 0.0)."""
    start = rng.normal(0.0, 1.5, size=2)
    frac = 1.0 - np.arange(length) / (length - 1)
    xy = start * frac[:, None] + rng.normal(0.0, 0.02, size=(length, 2))
    xy[-1] = 0.0  # exactly zero, not just close
    return xy


def _plant(rng: np.random.Generator, xy: np.ndarray, kind: str) -> np.ndarray:
    """`xy` with an anomaly of `kind` planted; the first step is kept."""
    xy = xy.copy()
    n = len(xy)
    spread = float(np.ptp(xy, axis=0).max()) or 1.0
    if kind == "glitch":
        at = int(rng.integers(n // 4, 3 * n // 4))
        xy[at : at + 3] += rng.choice([-1.0, 1.0], size=2) * 3.0 * spread
    elif kind == "noise":
        a, b = int(0.3 * n), int(0.7 * n)
        xy[a:b] += rng.normal(0.0, 0.5 * spread, size=(b - a, 2))
    elif kind == "jump":
        xy[n // 2 :] += rng.choice([-1.0, 1.0], size=2) * 3.0 * spread
    elif kind == "zigzag":
        t = np.arange(n)
        tooth = 2.0 * np.abs((t / 3.0) % 2.0 - 1.0) - 1.0  # a triangle wave, period 6 steps
        xy = xy[0] + np.stack([0.1 * t, 3.0 * tooth], axis=1) + rng.normal(0.0, 0.02, size=(n, 2))
    else:
        raise ValueError(kind)
    return xy


def generate(seed: int = SEED, n: int = NUM_SEQUENCES):
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(30.0), 0.65, size=n)), MIN_LEN, MAX_LEN)
    lengths = lengths.astype(np.int64)
    lengths[LENGTH_ONE_INDEX] = 1
    lengths[LONGEST_INDEX] = MAX_LEN
    families = np.array(FAMILIES)[rng.integers(0, len(FAMILIES), size=n)]
    families[ZERO_LAST_STEP_INDEX] = "line"
    pieces = []
    for i in range(n):
        if i == ZERO_LAST_STEP_INDEX:
            xy = _line_to_origin(rng, int(lengths[i]))
        else:
            xy = _trajectory(rng, str(families[i]), int(lengths[i]))
        pieces.append(xy)
    anomalies = np.zeros(n, np.int64)
    planted = np.random.default_rng([seed, 1])
    special = {LENGTH_ONE_INDEX, ZERO_LAST_STEP_INDEX, LONGEST_INDEX}
    candidates = [i for i in range(n) if lengths[i] >= ANOMALY_MIN_LEN and i not in special]
    chosen = planted.choice(candidates, len(ANOMALY_KINDS) * ANOMALIES_PER_KIND, replace=False)
    for k, i in enumerate(sorted(chosen.tolist())):
        kind = ANOMALY_KINDS[k % len(ANOMALY_KINDS)]
        pieces[i] = _plant(planted, pieces[i], kind)
        anomalies[i] = 1
        if kind == "zigzag":
            families[i] = "zigzag"
    # 4 decimals: plenty for the demo, and keeps the CSV (and npz) small.
    values = np.round(np.concatenate(pieces), 4).astype(np.float32)
    values[values == 0] = 0.0  # no -0.0 (prints as "-0" in the CSV)
    ids = np.array([f"traj-{i:04d}" for i in range(n)])
    return values, lengths, ids, families, anomalies


def _fmt(v: np.float32) -> str:
    # The shortest text that reads back as exactly this float32.
    return np.format_float_positional(v, unique=True, trim="-")


def write(out_dir: Path, seed: int = SEED) -> None:
    values, lengths, ids, families, anomalies = generate(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "trajectories.npz", values=values, lengths=lengths, ids=ids)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with open(out_dir / "trajectories.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "step", "x", "y"])
        for i, sid in enumerate(ids):
            for step, (x, y) in enumerate(values[offsets[i] : offsets[i + 1]]):
                w.writerow([sid, step, _fmt(x), _fmt(y)])
    with open(out_dir / "trajectories_labels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "family"])
        w.writerows(zip(ids, families, strict=True))
    with open(out_dir / "trajectories_anomalies.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "label"])
        w.writerows(zip(ids, anomalies.tolist(), strict=True))
    print(
        f"wrote {len(ids)} sequences, {int(lengths.sum())} steps, lengths "
        f"{int(lengths.min())}..{int(lengths.max())} (median {int(np.median(lengths))}), "
        f"{int(anomalies.sum())} planted anomalies, to {out_dir}/"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    write(args.out, args.seed)


if __name__ == "__main__":
    main()
