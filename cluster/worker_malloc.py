"""glibc malloc settings for long-lived worker processes that run torch (the Dask relax workers).

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``)
so that freed memory goes back to the OS at once. Setting that variable also switches off glibc's dynamic mmap
threshold, so every block above 128 KiB (most of CHGNet's per-call tensors) is a fresh ``mmap`` that page-faults
on first touch and is unmapped when freed. Batched CHGNet relaxation then spends about as long in the kernel as in
the model: in one process with Dask's setting a 26-candidate shard took 60 s (33 s user, 28 s system), without it
33 s (33 s user, 0 s system) (BENCHMARKS.md, "Issue 19 speed items, third run").

:func:`keep_freed_memory_for_reuse` puts the thresholds back where glibc's own dynamic rule ends up for such a
workload: blocks up to 32 MiB come from the heap, and up to 256 MiB of freed heap is kept for reuse. Worker memory
then stays at its peak (the next shard reuses it) instead of shrinking between calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX); mallopt refuses more
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: freed memory at the top of the heap kept for reuse before it is returned to the OS
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory_for_reuse() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once; later calls return the first result).

    Returns True when both were set, False where the C library has no ``mallopt`` (not glibc: macOS, musl), in
    which case Dask's variable has no such effect either and nothing needs undoing (logged at INFO).
    """
    global _applied
    if _applied is not None:
        return _applied
    libc_name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt if libc_name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.info("no glibc mallopt in this process (%s): malloc thresholds left as they are", libc_name)
        _applied = False
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    if not ok:
        raise RuntimeError("glibc mallopt refused the mmap/trim thresholds")
    _applied = True
    return True
