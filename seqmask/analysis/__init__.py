"""The analysis layer: what a trained run says about data.

Owns: evaluation and encoding (`evaluate`), anomaly detection (`detect`: the model's pass,
calibration and detection of data, and the face callers import from; `scores`: the
numpy-only score math and thresholds; `detector`: the fitted detector and its files in the
run directory; `_detection`: a detection's result and totals), how well scores find known
anomalies (`metrics`: AUROC, average precision, precision/recall/F1), the run's HTML report
(`report`: the page; `_report_data`: what it gathers; `_report_figures`: its drawing
primitives; `_report_sections`: its seven sections) and the output files they write
(`outputs`).

May import: `config`, `data`, `model`, `run`, `seqmask.errors`, `seqmask.atomic`. Never
training, serving, the API or the CLI.
"""
