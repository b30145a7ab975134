"""The Python API: train a run, load one, and use it on data held in files or in memory.

    import seqmask

    run = seqmask.train("configs/example.yaml", "runs/demo", train__epochs=20)
    run = seqmask.load("runs/demo")                   # checkpoint="best" | "last"
    z = run.encode(sequences)                         # (num_sequences, latent_dim)
    result = run.evaluate(sequences)                  # result.loss, result.errors
    recon = run.reconstruct(sequences)                # one (length_i, features) array each
    found = run.detect(sequences)                     # found.scores, found.flags

`sequences` is a file path, a list of (length_i, features) arrays, a padded array with
`lengths=`, or a pandas DataFrame in long format (`seqmask.data.inputs`); raw values go in,
and the run applies its own normalization or vocabulary. Nothing here prints or exits:
every problem a user can fix is a `seqmask.SeqmaskError` subclass with the message the
command line shows. `seqmask.cli` is a thin layer over these functions.

TensorFlow is imported on first use, not on `import seqmask`.

Modules: `_training` (train, load, make_config and the keyword overrides), `_run` (the `Run`
and what its methods return), `_checks` (the argument checks the CLI shares).
May import every layer below it, serving included (the only package that does); never the CLI.
"""

from seqmask.api._checks import check_threshold_rule
from seqmask.api._run import DetectionReport, Encoding, Run
from seqmask.api._training import load, make_config, override_texts, train

__all__ = [
    "DetectionReport",
    "Encoding",
    "Run",
    "check_threshold_rule",
    "load",
    "make_config",
    "override_texts",
    "train",
]
