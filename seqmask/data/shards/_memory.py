"""Giving a shard's memory back: glibc's mmap threshold, fixed once per process.

Every entry point that reads shards (:func:`~seqmask.data.shards.build_index`,
:func:`~seqmask.data.shards.read_all`, :meth:`ShardIndex.read
<seqmask.data.shards.ShardIndex.read>`, and the commands that encode or detect shard by
shard) calls :func:`unpin_freed_shards` first.
"""

from __future__ import annotations

__all__ = ["unpin_freed_shards"]

# glibc's malloc serves a large block by mmap only while it is above a threshold that it
# raises to the size of each large block freed, up to 32 MiB: after the first shard's
# arrays are freed, the next shards' come from the heap, where the small arrays kept of
# each one (a read's rows, an index part) pin them, and the heap never shrinks; for what
# that held on scattered reads, and what the fix saved, see BENCHMARKS.md, "Streaming"
# ("Memory, streaming"). A fixed threshold of 1 MiB maps and unmaps every array of a shard.
_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
_MMAP_THRESHOLD = 1 << 20
_unpinned = False


def unpin_freed_shards() -> None:
    """Fix glibc's mmap threshold at 1 MiB, once per process (nothing elsewhere), so the
    memory of a shard read and dropped goes back to the system."""
    global _unpinned
    if _unpinned:
        return
    _unpinned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(_MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS): their malloc does not do this
        pass
