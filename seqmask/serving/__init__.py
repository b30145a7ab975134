"""The serving layer: a run exported as a self-contained SavedModel (and ONNX) for serving.

Owns: `export` (the exported signatures, their metadata, the ONNX conversion), the face of
its private modules: `_layout` (formats, file names, errors), `_graphs` (the portable model
and traced functions), `_detector_ops` (the detector as TF ops), `_writers` (SavedModel,
ONNX), `_manifest` (seqmask_export.json) and `_output` (the export directory).

May import: every layer below it except `training`. Only `seqmask.api` imports this
package (`make lint` checks it): serving is reached through `Run.export`.
"""
