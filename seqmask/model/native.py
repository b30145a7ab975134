"""seqmask's compiled CPU LSTM kernel (`kernels/lstm.cc`): built on first use, then cached.

The kernel is a TensorFlow custom op, so it must be compiled against the TensorFlow that
is installed; it is, once per (source, TensorFlow version, CPU), with the C++ compiler
that `pip` itself needs for packages that compile (`$CXX`, else `g++`), into
`$SEQMASK_CACHE_DIR` (default `~/.cache/seqmask`). `make install` builds it ahead of time
(`python -m seqmask.model.native`); otherwise the first CPU training does (BENCHMARKS.md gives the build time).

Where it cannot be built or loaded (no compiler, a read-only home, an unusual platform),
or with `SEQMASK_NATIVE=0`, seqmask falls back to TensorFlow's own fused LSTM op
(`BlockLSTMV2`): the same results, slower (BENCHMARKS.md says by how much). `status()` says which is in use.
"""

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType

import tensorflow as tf

SOURCE = Path(__file__).parent / "kernels" / "lstm.cc"

_module: ModuleType | None = None  # the loaded ops, once load() succeeded
_error: str | None = None  # why load() failed, once it did


def cache_dir() -> Path:
    if os.environ.get("SEQMASK_CACHE_DIR"):
        return Path(os.environ["SEQMASK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqmask"


def _cpu_signature() -> str:
    """What -march=native depends on: a build is reused only on the same kind of CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags")
    return "\n".join(dict.fromkeys(line for line in lines if line.startswith(wanted)))


def _command(source: str | Path, output: str | Path) -> list[str]:
    compiler = os.environ.get("CXX", "g++")
    # On CPUs with AVX512-FP16 (Sapphire Rapids and later) -march=native enables it, and the
    # Eigen headers TensorFlow ships then fail to compile under g++ 12 ("expected initializer
    # before '<' token" in PacketMathFP16.h). The kernel computes in float32 and needs no FP16.
    no_fp16 = ["-mno-avx512fp16"] if "avx512_fp16" in _cpu_signature() else []
    return [
        compiler,
        "-O3",
        "-march=native",
        *no_fp16,
        "-fPIC",
        "-shared",
        "-w",
        str(source),
        "-o",
        str(output),
        *tf.sysconfig.get_compile_flags(),
        *tf.sysconfig.get_link_flags(),
    ]


def _library_path() -> Path:
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        tf.__version__.encode(),
        _cpu_signature().encode(),
        " ".join(_command("src", "out")).encode(),
    ):
        key.update(part)
    return cache_dir() / f"lstm-{key.hexdigest()[:16]}.so"


def _disabled() -> bool:
    return os.environ.get("SEQMASK_NATIVE", "1") == "0"


def needs_build() -> bool:
    """True when load() would compile first (no cached build, nothing loaded or disabled)."""
    if _module is not None or _error is not None or _disabled():
        return False
    return not _library_path().exists()


def build() -> Path:
    """Compiles the kernel unless a matching build is cached; returns the library's path.

    Raises RuntimeError saying why it could not.
    """
    path = _library_path()
    if path.exists():
        return path
    compiler = _command(SOURCE, path)[0]
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler}) to build it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One build at a time (parallel test workers, two trainings starting together).
        with open(path.parent / "build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                return path
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
            os.close(fd)
            try:
                result = subprocess.run(_command(SOURCE, tmp), capture_output=True, text=True)
                if result.returncode != 0:
                    last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
                    raise RuntimeError(f"{compiler} failed: {last}")
                os.replace(tmp, path)  # whole or absent: never a half-written library
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except OSError as e:  # the cache directory, or running the compiler
        raise RuntimeError(f"cannot build in {path.parent}: {e.strerror or e}") from None
    return path


def load() -> ModuleType | None:
    """The compiled ops' module, or None (then `status()` says why). Tried once per process."""
    global _module, _error
    if _module is not None or _error is not None:
        return _module
    if _disabled():
        _error = "SEQMASK_NATIVE=0"
        return None
    try:
        _module = tf.load_op_library(str(build()))
    except (RuntimeError, tf.errors.OpError) as e:
        _error = str(e).splitlines()[0] if str(e) else type(e).__name__
    return _module


def status() -> str:
    """'seqmask kernel', or 'BlockLSTM (why)' after load()."""
    load()
    return "seqmask kernel" if _module is not None else f"BlockLSTM ({_error})"
