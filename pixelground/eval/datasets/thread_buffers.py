"""Per-thread reusable byte buffers for the readers' per-file work (decoding, id maps, counts).

A PNG decode or a panoptic image's pair count needs a few buffers of ~1 MB per file; fresh
ones cost page faults that, on a 2-core VM, made an RGB decode 3x and PQ's per-image work
1.7x slower than with buffers reused. A thread takes a set of buffers on first use and keeps
it while it lives; when it ends (a reading pool is shut down), the set goes back to a small
free list for the next thread, so the pools of later calls start warm.
"""

from __future__ import annotations

import threading

import numpy as np

#: Buffer sets kept for threads to come (each holds a reader's few buffers of one file).
MAX_FREE_SETS = 8

_FREE_SETS: list[dict[str, np.ndarray]] = []
_THREAD = threading.local()


class _Lease:
    """A thread's buffer set, returned to the free list when the thread's locals are freed."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = _FREE_SETS.pop() if _FREE_SETS else {}
        # Held here: module globals may already be None when the main thread's locals are
        # freed at interpreter exit.
        self.free_sets, self.most = _FREE_SETS, MAX_FREE_SETS

    def __del__(self) -> None:
        if len(self.free_sets) < self.most:
            self.free_sets.append(self.buffers)


def thread_buffer(role: str, size: int) -> np.ndarray:
    """(size,) uint8 view of this thread's buffer for ``role``, grown when too small.

    Its contents stay valid until this thread's next call for the same ``role``.
    """
    lease = getattr(_THREAD, "lease", None)
    if lease is None:
        lease = _THREAD.lease = _Lease()
    buffer = lease.buffers.get(role)
    if buffer is None or buffer.size < size:
        buffer = lease.buffers[role] = np.empty(size, dtype=np.uint8)
    return buffer[:size]
