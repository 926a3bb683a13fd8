"""Uploaded images and their segmenter embeddings, in a bounded LRU cache.

``POST /v1/images`` stores the decoded image under a random id and runs the image encoder
once; clicks and boxes on that id then run the mask decoder only. The least recently used
image (with its embedding) is dropped when the cache is full.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pixelground.core.media import LoadedImage
from pixelground.serve.app.errors import ApiError
from pixelground.serve.app.security import check_id


@dataclass
class Session:
    """One uploaded image.

    Attributes:
        image: the decoded RGB image; ``image.path`` is the client's file name (a label).
        embedding: the segmenter's image embedding, or None before it is computed.
    """

    image: LoadedImage
    embedding: Any = None


class ImageStore:
    """At most ``size`` sessions, least recently used dropped first (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, image_id: str, session: Session) -> None:
        """Keep ``session`` under ``image_id``, evicting the least recently used beyond size."""
        with self._lock:
            self._items[image_id] = session
            self._items.move_to_end(image_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, image_id: str) -> Session:
        """The session of ``image_id``; 404 when unknown or evicted."""
        check_id(image_id, "image")
        with self._lock:
            session = self._items.get(image_id)
            if session is None:
                raise ApiError(
                    404,
                    "not_found",
                    f"no image with id {image_id!r} (unknown, or dropped from the cache of "
                    f"{self.size} images): upload it again with POST /v1/images",
                )
            self._items.move_to_end(image_id)
            return session
