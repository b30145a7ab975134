"""What an export is made of: its formats, the names of its files, signatures and anomaly
outputs, the `ExportError` it raises and the `ExportInfo` it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tensorflow as tf

from seqmask.errors import RunError

ExportFormat = Literal["savedmodel", "onnx"]
METADATA = "seqmask_export.json"
ONNX_FILE = "model.onnx"
# ONNX opset of the converted graph: old enough for every current runtime, new enough for
# the ops the masked LSTM loop needs (Loop with dynamic trip count, TopK with dynamic k).
ONNX_OPSET = 17
SIGNATURES = ("encode", "reconstruct", "score")
ANOMALY_OUTPUTS = ("anomaly_score", "threshold", "anomaly")

Tensors = dict[str, tf.Tensor]


class ExportError(RunError):
    """The run cannot be exported as asked, or the output cannot be written (exit code 1)."""


@dataclass(frozen=True)
class ExportInfo:
    """What `export` wrote, for the CLI to print."""

    path: Path  # the export directory
    format: ExportFormat
    checkpoint: str
    signatures: dict[str, tuple[str, ...]]  # signature -> its outputs (onnx: the one graph's, under "model")
    with_anomaly_score: bool
    anomaly_score: str | None  # the detector's score (detect.score), None without a detector
    files: tuple[str, ...]  # the top-level entries of `path`
    seconds: float
