"""The model layer: Keras layers and losses that take each sequence's length, never a guess.

Owns: the length-driven layers and masks in keras.ops (`layers`), the fused LSTM and its
compiled CPU kernel (`fused_lstm`, `native`, `kernels/`), the autoencoder built from a
`ModelConfig` (`autoencoder`), the masked losses (`losses`), the dataset-level sums that
make every reported loss Σ error / Σ real steps (`scoring`), and device placement
(`devices`).

May import: `seqmask.config`, `seqmask.data`, `seqmask.errors`, `seqmask.atomic`,
TensorFlow and Keras. Never the run directory, training, analysis or anything above.
This `__init__` imports nothing: `python -m seqmask.model.native` and the data layer's
users never pay for Keras through it.
"""
