"""Files evaluate and encode write for the user, keyed by sequence id so they join back."""

import io

import numpy as np

from seqmask.runs import atomic_path, write_text


def write_errors_csv(path, seqs, scores, tokens=False):
    """id, length, scored_steps, error (and, for tokens, accuracy): one row per sequence,
    in input order. For tokens the error is the sequence's mean cross-entropy."""
    out = io.StringIO()
    out.write("id,length,scored_steps,error" + (",accuracy" if tokens else "") + "\n")
    rows = zip(seqs.ids, seqs.lengths, scores.counts, scores.per_sequence, scores.per_sequence_accuracy)
    for sid, length, count, error, accuracy in rows:
        extra = f",{accuracy:.9g}" if tokens else ""
        out.write(f"{_csv_field(sid)},{int(length)},{int(count)},{error:.9g}{extra}\n")
    write_text(path, out.getvalue())


def write_latent(path, seqs, latent):
    """`.csv`: id, length, z0..z{d-1}. `.npy`: a structured array (id, length, latent),
    loadable with allow_pickle=False."""
    path = str(path)
    if path.endswith(".csv"):
        out = io.StringIO()
        out.write("id,length," + ",".join(f"z{i}" for i in range(latent.shape[1])) + "\n")
        for sid, length, row in zip(seqs.ids, seqs.lengths, latent):
            out.write(f"{_csv_field(sid)},{int(length)}," + ",".join(f"{v:.9g}" for v in row) + "\n")
        write_text(path, out.getvalue())
        return
    width = max(1, max((len(str(i)) for i in seqs.ids), default=1))
    records = np.zeros(
        len(seqs), dtype=[("id", f"U{width}"), ("length", "i8"), ("latent", "f4", (latent.shape[1],))]
    )
    records["id"], records["length"], records["latent"] = seqs.ids, seqs.lengths, latent
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, records, allow_pickle=False)


def _csv_field(value):
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
