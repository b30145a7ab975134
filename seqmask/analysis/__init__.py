"""The analysis layer: what a trained run says about data.

Owns: evaluation and encoding (`evaluate`), anomaly detection (`detect`), the run's HTML
report (`report`) and the output files they write (`outputs`).

May import: `config`, `data`, `model`, `run`, `seqmask.errors`, `seqmask.atomic`. Never
training, serving, the API or the CLI.
"""
