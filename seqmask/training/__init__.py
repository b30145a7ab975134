"""The training layer: the loop over typed state, tf.distribute, and progress reporting.

Owns: the epoch/batch loop, resume and the end-of-training calibration (`loop`),
distribution over replicas and workers (`distribute`), and the `Reporter` events the CLI
draws (`progress`, which imports nothing heavy).

May import: every layer below it (`config`, `data`, `model`, `run`, `analysis`) and
`seqmask.errors` / `seqmask.atomic` / `seqmask._version`. Never `serving`, `api` or `cli`.
Training never prints: it calls a `Reporter`.
"""
