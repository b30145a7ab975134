"""Writing the traced graphs in a format: a SavedModel with the three signatures, or one
ONNX graph through tf2onnx, checked (onnx's checker, the output names) before it is kept."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import keras

from seqmask.serving._graphs import _Graphs
from seqmask.serving._layout import ONNX_FILE, ONNX_OPSET, SIGNATURES, ExportError


def _write_savedmodel(graphs: _Graphs, target: Path) -> dict[str, tuple[str, ...]]:
    archive = keras.export.ExportArchive()
    archive.track(graphs.model)
    for name in SIGNATURES:
        archive.add_endpoint(name, graphs.function(name))
    archive.write_out(str(target), verbose=False)
    return graphs.outputs()


def _exact_selects(graph: Any, nodes: list[Any]) -> list[Any]:
    """A tf2onnx rewriter: every TensorFlow select becomes an ONNX `Where`.

    By default tf2onnx turns `where(c, x, y)` into `c·x + (1 - c)·y` (faster in onnxruntime),
    which is NaN wherever the branch not taken holds inf or NaN (inf · 0 = NaN): garbage in
    the padding, and the -inf fillers of the anomaly score, would leak into every output.
    `handles_nan` is tf2onnx's own switch for the exact form.
    """
    for node in nodes:
        if node.type in ("Select", "SelectV2"):
            node.set_attr("handles_nan", True)
        for body in (node.get_body_graphs() or {}).values():
            _exact_selects(body, body.get_nodes())
    return nodes


def _write_onnx(graphs: _Graphs, target: Path) -> dict[str, tuple[str, ...]]:
    try:
        tf2onnx = importlib.import_module("tf2onnx")
    except ImportError as e:
        raise ExportError(
            f"--format onnx needs tf2onnx and onnx, which are not installed ({e}); "
            "install them with: pip install 'seqmask[export]'"
        ) from e
    fn = graphs.function("everything")
    quiet = logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        proto, _ = tf2onnx.convert.from_function(
            fn,
            input_signature=graphs.input_signature,
            opset=ONNX_OPSET,
            custom_rewriter=[_exact_selects],
            output_path=str(target / ONNX_FILE),
        )
    except Exception as e:  # tf2onnx fails in many ways on graphs it cannot express
        raise ExportError(f"tf2onnx could not convert the run's graph to ONNX: {e}") from e
    finally:
        quiet.setLevel(level)
    try:  # tf2onnx leaves an op it cannot map in the graph (and only logs it): refuse that file
        importlib.import_module("onnx").checker.check_model(proto)
    except Exception as e:
        raise ExportError(f"tf2onnx could not express the run's graph in ONNX opset {ONNX_OPSET}: {e}") from e
    names = tuple(o.name for o in proto.graph.output)
    expected = {n for outs in graphs.outputs().values() for n in outs} | {"latent", "reconstruction"}
    if set(names) != expected:
        raise ExportError(f"tf2onnx named the ONNX outputs {names}, expected {sorted(expected)}")
    return {"model": names}
