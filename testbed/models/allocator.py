"""Keep freed memory in the process instead of handing it back to the OS after every tensor.

glibc's malloc serves blocks above a (self-adjusting) threshold with ``mmap`` and unmaps them
on ``free``, and trims the heap top above another. A CPU forward pass allocates and frees tensors
of several MB per layer, so every pass maps fresh pages and faults on each 4 KiB of them: on the
virtual machines here one fault costs a few microseconds, and a batch of 64 clips through the
8-member ensemble took ~22,000 faults (~80 ms) per pass, the fp32 model ~17,000, depending on
what ran before. Fixing both thresholds high makes those pages stay mapped and reused, as the
caching allocators of jemalloc / tcmalloc do (what PyTorch's CPU tuning guide recommends).

The cost is that the process keeps up to its peak heap resident until it exits, which is what
a CLI run and a Dask worker want. Only glibc is tuned; elsewhere :func:`keep_freed_memory`
changes nothing and says so.

Nothing happens on import: :func:`keep_freed_memory` is the one opt-in switch, called by the
``testbed`` command (:func:`testbed.cli.app.main`), by every Dask worker before its first task
(:func:`testbed.scale.worker.setup_torch`, where it also overrides a nanny's
``MALLOC_TRIM_THRESHOLD_``) and by the tests' ``cli`` fixture, all with the same thresholds.
:func:`allocator_state` is recorded in each session's manifest and in ``testbed bench --json``.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (a batch's largest tensor is ~16 MB), bytes
MMAP_THRESHOLD = 256 << 20
#: free memory at the heap top is returned to the OS only above this, bytes
TRIM_THRESHOLD = 1 << 30

_state: dict = {"applied": False, "detail": "not requested"}


def keep_freed_memory() -> dict:
    """Raise glibc's mmap and trim thresholds for this process (idempotent).

    Returns
    -------
    dict
        ``{"applied": bool, "detail": str}``, also what :func:`allocator_state` reports.
    """
    if _state["applied"]:
        return dict(_state)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None) if libc is not None else None
        gnu = getattr(libc, "gnu_get_libc_version", None) if libc is not None else None
    except OSError:
        mallopt = gnu = None
    if mallopt is None or gnu is None:
        _state.update(applied=False, detail="C library is not glibc: allocator left as it is")
        return dict(_state)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    gnu.restype = ctypes.c_char_p
    version = gnu().decode()
    _state.update(applied=bool(ok), detail=(
        f"glibc {version}: mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold {TRIM_THRESHOLD >> 20} MiB"
        if ok else f"glibc {version} refused mallopt: allocator left as it is"))
    return dict(_state)


def allocator_state() -> dict:
    """``{"applied": bool, "detail": str}``: whether :func:`keep_freed_memory` took effect."""
    return dict(_state)
