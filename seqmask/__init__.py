"""seqmask: masked LSTM sequence autoencoders on variable-length sequences.

The Python API (`seqmask.api`): `train` a run, `load` one, and use the `Run` on data.
Importing seqmask does not import TensorFlow; the first call that needs it does.
"""

from seqmask.api import Encoding, Run, load, train
from seqmask.errors import ConfigError, DataError, DeviceError, Interrupted, RunError, SeqmaskError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DeviceError",
    "Encoding",
    "Interrupted",
    "Run",
    "RunError",
    "SeqmaskError",
    "__version__",
    "load",
    "train",
]
