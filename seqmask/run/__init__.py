"""The run layer: the run directory on disk and what is read back from it.

Owns: the run directory (its file names, the lock, `claim`, history and metrics: `directory`,
the only place a run file's name is written), typed training state (`state`), checkpoints
(`checkpoints`), the run's data splits and their saved transform (`splits`), and the loaded
run, a trained model with its config and transform (`loaded`, `LoadedRun`).

May import: `seqmask.config`, `seqmask.data`, `seqmask.model`, `seqmask.errors`,
`seqmask.atomic`. Never training, analysis, serving or the API.
"""
