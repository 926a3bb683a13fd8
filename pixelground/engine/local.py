"""The local engine: one process, models loaded once, streaming with bounded memory.

A loader thread reads the source lazily and decodes images into a bounded queue (at most
two batches ahead), the main thread runs the stages batch by batch, and finished records are
committed as a shard every ``shard_size`` images. Memory is therefore bounded by the queue,
one batch and one shard, whatever the number of images. Ctrl-C commits the records already
finished, then stops; the same command resumes.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pixelground.core.media import LoadedImage
from pixelground.engine.dataset import Dataset
from pixelground.engine.runner import annotate_batch, load_items
from pixelground.engine.source import Item
from pixelground.engine.stages import Context, Record, Stage

Progress = Callable[[Record], None]
_END = object()


@dataclass
class LocalEngine:
    """Run stages over items in this process.

    Attributes:
        batch_size: images per batch (each stage runs over the batch).
        shard_size: records per committed shard.
        prefetch: batches decoded ahead by the loader thread.
    """

    batch_size: int = 4
    shard_size: int = 64
    prefetch: int = 2

    def run(
        self,
        items: Iterable[Item],
        dataset: Dataset,
        stages: list[Stage],
        ctx: Context,
        progress: Progress | None = None,
    ) -> int:
        """Annotate ``items`` into ``dataset``; returns how many records were committed."""
        run_id = uuid.uuid4().hex[:8]
        pending: list[Record] = []
        committed = shards = 0
        stop = threading.Event()
        batches = _prefetched(items, self.batch_size, self.prefetch, stop)
        try:
            for loaded in batches:
                for record in annotate_batch(loaded, stages, ctx):
                    pending.append(record)
                    if progress is not None:
                        progress(record)
                if len(pending) >= self.shard_size:
                    dataset.commit(pending, run_id, shards)
                    committed, shards, pending = committed + len(pending), shards + 1, []
        finally:
            stop.set()
            if pending:  # also on Ctrl-C: what is finished is kept
                dataset.commit(pending, run_id, shards)
                committed += len(pending)
        return committed


def _batched(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prefetched(
    items: Iterable[Item], batch_size: int, prefetch: int, stop: threading.Event
) -> Iterator[list[tuple[Record, LoadedImage | None]]]:
    """Decoded batches from a loader thread through a queue of at most ``prefetch`` batches."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=max(1, prefetch))

    def load() -> None:
        try:
            for batch in _batched(items, batch_size):
                loaded = load_items(batch)
                while not stop.is_set():
                    try:
                        slots.put(loaded, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            slots.put(error)
            return
        slots.put(_END)

    thread = threading.Thread(target=load, name="pixelground-loader", daemon=True)
    thread.start()
    while True:
        got = slots.get()
        if got is _END:
            return
        if isinstance(got, BaseException):
            raise got
        yield got
