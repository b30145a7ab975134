"""Files evaluate and encode write for the user, keyed by sequence id so they join back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqmask.atomic import atomic_path, write_csv
from seqmask.data import Sequences
from seqmask.scoring import Scores


def write_errors_csv(path: str | Path, seqs: Sequences, scores: Scores, tokens: bool = False) -> None:
    """id, length, scored_steps, error (and, for tokens, accuracy): one row per sequence,
    in input order. For tokens the error is the sequence's mean cross-entropy."""
    header = ["id", "length", "scored_steps", "error"] + (["accuracy"] if tokens else [])
    rows = zip(seqs.ids, seqs.lengths, scores.counts, scores.per_sequence, scores.per_sequence_accuracy, strict=True)
    write_csv(
        path,
        header,
        (
            [str(sid), int(length), int(count), f"{error:.9g}"] + ([f"{accuracy:.9g}"] if tokens else [])
            for sid, length, count, error, accuracy in rows
        ),
    )


def write_latent(path: str | Path, seqs: Sequences, latent: np.ndarray) -> None:
    """`.csv`: id, length, z0..z{d-1}. `.npy`: a structured array (id, length, latent),
    loadable with allow_pickle=False."""
    path = str(path)
    if path.endswith(".csv"):
        header = ["id", "length"] + [f"z{i}" for i in range(latent.shape[1])]
        rows = (
            [str(sid), int(length)] + [f"{v:.9g}" for v in row]
            for sid, length, row in zip(seqs.ids, seqs.lengths, latent, strict=True)
        )
        write_csv(path, header, rows)
        return
    width = max(1, max((len(str(i)) for i in seqs.ids), default=1))
    records = np.zeros(len(seqs), dtype=[("id", f"U{width}"), ("length", "i8"), ("latent", "f4", (latent.shape[1],))])
    records["id"], records["length"], records["latent"] = seqs.ids, seqs.lengths, latent
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, records, allow_pickle=False)
