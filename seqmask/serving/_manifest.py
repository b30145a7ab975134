"""The export's manifest: the contents of seqmask_export.json (what the export holds, its
inputs and outputs, the normalization, the detector's settings)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from seqmask._version import __version__
from seqmask.analysis.detect import checkpoint_digest
from seqmask.data import Normalizer
from seqmask.model.scoring import error_of
from seqmask.run.directory import VOCABULARY
from seqmask.serving._graphs import _Graphs
from seqmask.serving._layout import ONNX_FILE, ONNX_OPSET, ExportFormat


def metadata(graphs: _Graphs, format: ExportFormat, signatures: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The contents of seqmask_export.json."""
    run, cfg, detector = graphs.run, graphs.run.cfg, graphs.detector
    values_dtype = "int32" if graphs.tokens else "float32"
    meta: dict[str, Any] = {
        "seqmask_version": __version__,
        "format": format,
        "file": ONNX_FILE if format == "onnx" else ".",
        "run_dir": str(run.run_dir),
        "checkpoint": run.checkpoint,
        "checkpoint_sha256": checkpoint_digest(run.run_dir.require_checkpoint(run.checkpoint)),
        "input_kind": cfg.input.kind,
        "padding": cfg.data.padding,
        "num_features": graphs.num_features,
        "feature_names": list(cfg.data.feature_columns) if cfg.data.feature_columns else None,
        "latent_dim": graphs.latent_dim,
        "inputs": {
            "values": {"shape": ["batch", "time", graphs.num_features], "dtype": values_dtype},
            "lengths": {"shape": ["batch"], "dtype": "int32"},
        },
        "signatures": {name: list(outs) for name, outs in signatures.items()},
        "error": {"error": error_of(cfg), "loss": cfg.train.loss, "target": cfg.train.target},
    }
    if graphs.tokens:
        meta["vocabulary"] = VOCABULARY
        meta["values"] = "vocabulary ids (line i of vocabulary.txt is id i; 0 = <pad>, 1 = <unk>)"
    else:
        assert isinstance(run.transform, Normalizer)
        meta["values"] = "raw values; the model applies (x - mean) / std itself"
        meta["normalization"] = {"mean": run.transform.mean.tolist(), "std": run.transform.std.tolist()}
    if detector is None:
        meta["anomaly_score"] = None
        meta["anomaly_note"] = (
            f"the run has no detector for the {run.checkpoint} checkpoint: the score gives the error only; "
            "run 'seqmask calibrate' and export again for anomaly scores"
        )
    else:
        meta["anomaly_score"] = {
            "score": detector.score,
            "settings": asdict(detector.settings),
            "threshold_rule": detector.how,
            "length_bins": {"edges": list(detector.bins.edges), "per_range": list(detector.bins.per_range)},
            "anomaly": "anomaly_score > threshold (a NaN score is never anomalous)",
        }
    if format == "savedmodel":
        meta["serving_default"] = "encode"
    if format == "onnx":
        meta["onnx"] = {
            "opset": ONNX_OPSET,
            "note": "ONNX has no signatures: one graph computes every output; ask the runtime for the ones needed",
        }
    return meta
