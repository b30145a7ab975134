"""seqmask: masked LSTM sequence autoencoders on variable-length sequences."""

__version__ = "0.1.0"
