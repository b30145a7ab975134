"""The serving layer: a run exported as a self-contained SavedModel (and ONNX) for serving.

Owns: `export` (the exported signatures, their metadata, the ONNX conversion).

May import: every layer below it except `training`. Only `seqmask.api` imports this
package (`make lint` checks it): serving is reached through `Run.export`.
"""
