"""Scoring independent units (the videos of a MeViS split) in worker processes.

Threads speed up PNG decoding, which runs outside the GIL, but the scoring around it is many
small numpy steps that hold it, so one process tops out near one core. Videos share nothing,
so they are scored by this process and forked worker processes, each with its own GIL;
results come back in input order, so every figure is summed in the same order as in one
process.

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
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

S = TypeVar("S")
T = TypeVar("T")

_WORKER_STATE: dict[str, Any] = {}


def forking_is_safe() -> bool:
    """Linux, and this process runs no thread besides the main one."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def usable_processes(requested: int, units: int) -> int:
    """How many processes :func:`process_map` scores ``units`` items in (this one included):
    at most the request, the units and the CPUs; 1 (this process alone) when that is fewer
    than two or forking is not safe here."""
    count = min(requested, units, os.cpu_count() or 1)
    return count if count >= 2 and forking_is_safe() else 1


def _install(function: Callable[[Any, Any], Any], shared: Any) -> None:
    _WORKER_STATE["function"], _WORKER_STATE["shared"] = function, shared


def _call(item: Any) -> Any:
    return _WORKER_STATE["function"](_WORKER_STATE["shared"], item)


def _start(
    function: Callable[[Any, Any], Any], shared: Any, items: dict[int, Any], workers: int
) -> tuple[ProcessPoolExecutor, dict[int, Future]]:
    """A fork pool of ``workers`` processes, every item of ``items`` submitted to it."""
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_install,
        initargs=(function, shared),
    )
    gc.freeze()  # the workers fork on the first submit; their collector then leaves the
    try:  # inherited objects (and so their memory pages) alone
        return pool, {index: pool.submit(_call, item) for index, item in items.items()}
    finally:
        gc.unfreeze()


def process_map(
    function: Callable[[S, T], Any], shared: S, items: Sequence[T], processes: int
) -> Iterator[Any]:
    """``function(shared, item)`` for each item, over up to ``processes`` processes: this one
    and forked workers.

    Items are dealt round-robin over the N processes used (:func:`usable_processes`): every
    N-th one, from the first, is scored here (already warm, no fork), the others by N - 1
    workers.

    Args:
        function: Called for every item; it and ``shared`` reach the workers by fork, not
            pickling (a closure is fine). The workers' results and exceptions are pickled
            back.
        shared: State every call reads (inherited copy-on-write by the workers).
        items: The units of work, pickled to the workers one at a time.
        processes: Processes at most (see :func:`usable_processes`); with one, every item is
            scored here.

    Yields:
        The results in the order of ``items``; an exception raised for an item is raised here
        when its turn comes.
    """
    count = usable_processes(processes, len(items))
    if count == 1:
        yield from (function(shared, item) for item in items)
        return
    theirs = {i: item for i, item in enumerate(items) if i % count}
    pool, futures = _start(function, shared, theirs, count - 1)
    try:
        ours: dict[int, Future] = {}  # this process's results, kept until their turn
        done = 0  # results yielded so far
        for index in range(0, len(items), count):
            ours[index] = _run_here(function, shared, items[index])
            while done in ours or (done in futures and futures[done].done()):
                yield (ours.pop(done, None) or futures.pop(done)).result()
                done += 1
        for index in range(done, len(items)):
            yield (ours.pop(index, None) or futures.pop(index)).result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_here(function: Callable[[Any, Any], Any], shared: Any, item: Any) -> Future:
    """``function(shared, item)`` now, as a finished future (an exception waits in it for
    its item's turn)."""
    future: Future = Future()
    try:
        future.set_result(function(shared, item))
    except Exception as error:  # noqa: BLE001 - raised by .result() in input order
        future.set_exception(error)
    return future
