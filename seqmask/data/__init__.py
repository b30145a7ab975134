"""The data layer: sequences with their true lengths, from files to padded batches.

Owns: :class:`Sequences` (values concatenated, lengths beside them, never guessed from the
values), truncating and splitting (`sequences`), padding and the numpy masks (`padding`),
standardization (`normalize`), the readers of every file format (`readers/`), the token
vocabulary (`vocab`), the API's in-memory inputs (`inputs`), labels files (`labels`),
batch order (`batching`, the only source of it), reading a file as a config says
(`loading`), and data larger than memory (`shards/`: discovery, the holdout rule, the
index, its file and its building; `streaming`: reading and prefetching batches from shards).

May import: `seqmask.config`, `seqmask.errors`, `seqmask.atomic`, numpy and pyarrow. Never
TensorFlow or Keras (`make lint` checks it): a reader, a batch plan or a shard index works
without them, and `seqmask --help` stays fast.

The names below are the package's face; everything else is imported from its module.
"""

from seqmask.data.normalize import Normalizer
from seqmask.data.padding import last_step_index_np, length_mask_np, pad, reverse_by_length_np
from seqmask.data.sequences import Sequences, gather_index, split, truncate

__all__ = [
    "Normalizer",
    "Sequences",
    "gather_index",
    "last_step_index_np",
    "length_mask_np",
    "pad",
    "reverse_by_length_np",
    "split",
    "truncate",
]
