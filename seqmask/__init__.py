"""seqmask: masked LSTM sequence autoencoders on variable-length sequences.

The Python API (`seqmask.api`): `train` a run, `load` one, and use the `Run` on data.
Importing seqmask imports neither TensorFlow nor numpy: the API's names load on first
use (PEP 562), so `import seqmask.config` and the CLI's `--help` stay instant.

The packages are layers, each importing only those below it (pyproject.toml,
[tool.importlinter]): cli > api > serving > training > analysis > run > model > data >
config, with atomic.py and errors.py at the bottom.
"""

from typing import TYPE_CHECKING, Any

from seqmask._version import __version__
from seqmask.errors import ConfigError, DataError, DeviceError, Interrupted, RunError, SeqmaskError

if TYPE_CHECKING:
    from seqmask.api import Encoding, Run, load, train


_API = ("Encoding", "Run", "load", "train")

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


def __getattr__(name: str) -> Any:
    if name in _API:
        from seqmask import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqmask' has no attribute {name!r}")
