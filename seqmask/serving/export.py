"""A finished run as a model that needs neither seqmask nor its compiled CPU kernel.

`export` rebuilds the run's autoencoder from Keras's own layers (`keras.layers.LSTM`
where training ran seqmask's fused kernel: the same weights, the same function, see
model.py), traces it together with the run's normalization, scoring and anomaly score
into TensorFlow graphs, and writes either

    savedmodel   a TensorFlow SavedModel with three signatures (`tf.saved_model.load`
                 needs only TensorFlow), or
    onnx         one `model.onnx` (tf2onnx) holding every output of the three,

plus `seqmask_export.json`, what the export holds (`metadata`).

Inputs, for a batch of sequences padded as the run pads (`data.padding`):

    values   (batch, time, features) float32, RAW values as the user's files hold them
             (token runs: (batch, time, 1) int32 vocabulary ids, `vocabulary.txt` maps them)
    lengths  (batch,) int32, each sequence's number of real steps

Whatever sits at padded steps changes nothing: the graph replaces it by zero before the
normalization reaches the model. Signatures (each output is per sequence unless said):

    encode       latent (batch, latent_dim) float32: `seqmask encode`'s vectors
    reconstruct  reconstruction (batch, time, features) float32 in raw units, zero at
                 padded steps (tokens: int32, the most likely id per step); the model's
                 output as trained (train.target next_step: step t predicts step t + 1;
                 reverse: the step that mirrors t)
    score        error (batch,) float64: `seqmask evaluate`'s per-sequence error Σ w·e / Σ w
                 (NaN with nothing scored), scored_steps (batch,) int32: Σ w
                 [tokens: accuracy (batch,) float64]
                 [a calibrated run: anomaly_score, threshold (batch,) float64 and anomaly
                 (batch,) int32 0/1, as `seqmask detect` gives them]

The normalization is folded in: x' = (x - mean) / std at real steps (float64, cast to
float32 like data.Normalizer), and the reconstruction is mapped back, x̂ = x̂' · std + mean.
The per-sequence error and the anomaly score reuse losses.py and re-express detect.py's
numpy math in TensorFlow ops, float64 where detect.py is float64, its fitted arrays as
constants: the numbers are those of `evaluate` and `detect` to float rounding.

The SavedModel's signatures are also TF-Serving signatures (`serving_default` is
`encode`). ONNX has no signatures, so the ONNX file is one graph with every output
(latent, reconstruction, error, scored_steps [, accuracy] [, anomaly_score, threshold,
anomaly]); a runtime asked for some of them computes what those need. Two tf2onnx habits
are worked around: its `where` as `c·x + (1 - c)·y` (NaN wherever the other branch holds
inf or NaN: `_exact_selects`), and Keras's argmax, which reads the sign bit through a
Bitcast that opset 17 lacks (token accuracy uses tf.argmax). Step-level detection
(`detect --steps`: step scores, intervals) is not exported: only sequence scores.

This module is the face of the export: `export` itself, and every name it has always
offered (`ONNX_FILE` and the other constants, `portable_model`, `metadata`). The parts live
in private modules: `_layout` (formats, file names, `ExportError`, `ExportInfo`), `_graphs`
(the portable model and the traced functions), `_detector_ops` (the detector in TF ops),
`_writers` (SavedModel and ONNX), `_manifest` (seqmask_export.json) and `_output` (the
export directory, written whole or not at all).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from seqmask.analysis.detect import load_detector
from seqmask.config import check_choice
from seqmask.errors import ConfigError
from seqmask.run.directory import VOCABULARY
from seqmask.run.loaded import LoadedRun
from seqmask.serving._graphs import _Graphs, portable_model
from seqmask.serving._layout import ANOMALY_OUTPUTS as ANOMALY_OUTPUTS
from seqmask.serving._layout import METADATA, ExportError, ExportFormat, ExportInfo
from seqmask.serving._layout import ONNX_FILE as ONNX_FILE
from seqmask.serving._layout import ONNX_OPSET as ONNX_OPSET
from seqmask.serving._layout import SIGNATURES as SIGNATURES
from seqmask.serving._manifest import metadata
from seqmask.serving._output import _building, _check_output
from seqmask.serving._writers import _write_onnx, _write_savedmodel


def export(
    run: LoadedRun, output: str | Path, format: ExportFormat = "savedmodel", overwrite: bool = False
) -> ExportInfo:
    """Writes `run` (at its loaded checkpoint) to the directory `output` as a model that
    needs only TensorFlow (`savedmodel`) or an ONNX runtime (`onnx`).

    Args:
        run: a loaded run (`evaluate.load_run(run_dir, checkpoint)`).
        output: the export directory; written whole or not at all.
        format: "savedmodel" or "onnx" (needs the `export` extra: tf2onnx, onnx).
        overwrite: replace `output` if it exists and is not empty.

    Returns:
        An `ExportInfo`: where, what and how long.

    Raises:
        ConfigError: an unknown format.
        ExportError: `output` exists and is not empty (without `overwrite`), holds the run,
            or cannot be written; tf2onnx is missing or cannot convert the graph.
        RunError: the run's detector is stale (`seqmask calibrate` again).
    """
    started = time.perf_counter()
    try:
        check_choice("format", format, ExportFormat)
    except ValueError as e:
        raise ConfigError(f"--format: {e}") from e
    output = Path(output)
    _check_output(run, output, overwrite)
    detector = load_detector(run.run_dir, run.checkpoint)
    graphs = _Graphs(run, detector)
    with _building(output) as tmp:
        signatures = _write_savedmodel(graphs, tmp) if format == "savedmodel" else _write_onnx(graphs, tmp)
        if graphs.tokens:
            shutil.copyfile(run.run_dir.file(VOCABULARY), tmp / VOCABULARY)
        (tmp / METADATA).write_text(json.dumps(metadata(graphs, format, signatures), indent=2) + "\n")
        files = tuple(sorted(p.name for p in tmp.iterdir()))
    return ExportInfo(
        path=output,
        format=format,
        checkpoint=run.checkpoint,
        signatures=signatures,
        with_anomaly_score=detector is not None,
        anomaly_score=detector.score if detector is not None else None,
        files=files,
        seconds=time.perf_counter() - started,
    )


__all__ = ["METADATA", "ExportError", "ExportFormat", "ExportInfo", "export", "metadata", "portable_model"]
