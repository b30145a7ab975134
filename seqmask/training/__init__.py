"""The training layer: the loop over typed state, tf.distribute, and progress reporting.

Owns: the epoch/batch loop, resume and the end-of-training calibration (`loop`, the face
of its private modules: `_session` the state one run works with, `_open` starting or
resuming a run, `_model` the model, optimizer and steps, `_epoch` the epoch loop, `_finish`
calibration and metrics), distribution over replicas and workers (`distribute`, with
`_strategy` the strategy's setup and `_workers` TF_CONFIG, coordination and lost peers),
and the `Reporter` events the CLI draws (`progress`, which imports nothing heavy).

May import: every layer below it (`config`, `data`, `model`, `run`, `analysis`) and
`seqmask.errors` / `seqmask.atomic` / `seqmask._version`. Never `serving`, `api` or `cli`.
Training never prints: it calls a `Reporter`.
"""
