"""Scoring independent units (the videos of a MeViS split) in worker processes.

Threads speed up PNG decoding, which runs outside the GIL, but the scoring around it is many
small numpy steps that hold it, so one process tops out near one core. Videos share nothing,
so they are scored in forked worker processes, each with its own GIL; results come back in
input order, so every figure is summed in the same order as in one process.

Fork is used because it starts a worker in milliseconds and hands it the parent's state (a
parsed ``mask_dict.json`` of hundreds of MB) without pickling it. It is only used where it
is safe: on Linux, from a process running a single thread (forking a threaded process can
leave locks held in the child). Everywhere else, and for fewer than two units, the units are
scored one after another in this process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

S = TypeVar("S")
T = TypeVar("T")

_WORKER_STATE: dict[str, Any] = {}


def forking_is_safe() -> bool:
    """Linux, and this process runs no thread besides the main one."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def usable_processes(requested: int, units: int) -> int:
    """How many worker processes :func:`process_map` runs for ``units`` items: at most the
    request, the units and the CPUs; 1 (this process) when that is fewer than two or forking
    is not safe here."""
    count = min(requested, units, os.cpu_count() or 1)
    return count if count >= 2 and forking_is_safe() else 1


def _install(function: Callable[[Any, Any], Any], shared: Any) -> None:
    _WORKER_STATE["function"], _WORKER_STATE["shared"] = function, shared


def _call(item: Any) -> Any:
    return _WORKER_STATE["function"](_WORKER_STATE["shared"], item)


def process_map(
    function: Callable[[S, T], Any], shared: S, items: Sequence[T], processes: int
) -> Iterator[Any]:
    """``function(shared, item)`` for each item, in up to ``processes`` forked workers.

    Args:
        function: Called in the workers; it and ``shared`` reach them by fork, not pickling
            (a closure is fine). Its results and exceptions are pickled back.
        shared: State every call reads (inherited copy-on-write by the workers).
        items: The units of work, pickled to the workers one at a time.
        processes: Workers at most (see :func:`usable_processes`); with one, the items are
            scored in this process.

    Yields:
        The results in the order of ``items``; an exception raised for an item is raised here
        when its turn comes.
    """
    count = usable_processes(processes, len(items))
    if count == 1:
        yield from (function(shared, item) for item in items)
        return
    pool = ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_install,
        initargs=(function, shared),
    )
    try:
        gc.freeze()  # the workers fork on the first submit; their collector then leaves the
        try:  # inherited objects (and so their memory pages) alone
            futures = [pool.submit(_call, item) for item in items]
        finally:
            gc.unfreeze()
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
