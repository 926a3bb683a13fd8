"""Admission control: a bounded queue in front of the models.

At most ``max_active`` requests run a model at once; up to ``max_queue`` more wait for a
slot. A request arriving when both are full is answered 429 with ``Retry-After`` at once,
so no request is ever lost: each one is answered or refused. A request that waits and runs
longer than ``timeout`` seconds is answered 504 (its model call still finishes in the
background and keeps its slot until then, so the server never runs more than
``max_active`` model calls).

The request body limit is enforced by :class:`BodyLimit`, an ASGI middleware that refuses a
too-large Content-Length before reading the body and stops a chunked upload as soon as it
passes the limit.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from pixelground.serve.app.errors import ApiError

T = TypeVar("T")


class Limiter:
    """Bounded concurrency for blocking model calls.

    Args:
        max_active: calls running at once.
        max_queue: calls waiting beyond those.
        timeout: seconds a request waits and runs before a 504.
        retry_after: seconds suggested to a refused client.
        lock: held around every call (shared with the video job worker, so requests and
            jobs never run models at the same time); None: no lock.
    """

    def __init__(
        self,
        max_active: int,
        max_queue: int,
        timeout: float,
        retry_after: int,
        lock: threading.Lock | None = None,
    ) -> None:
        self.max_active = max(1, int(max_active))
        self.capacity = self.max_active + max(0, int(max_queue))
        self.timeout = float(timeout)
        self.retry_after = int(retry_after)
        self.admitted = 0
        self.refused = 0
        self._slots: asyncio.Semaphore | None = None
        self.lock = lock

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:  # created inside the running event loop
            self._slots = asyncio.Semaphore(self.max_active)
        return self._slots

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in a worker thread once a slot is free.

        Raises:
            ApiError: 429 when the queue is full, 504 after ``timeout`` seconds.
        """
        if self.admitted >= self.capacity:
            self.refused += 1
            raise ApiError(
                429,
                "busy",
                f"the server is busy ({self.admitted} requests running or queued); "
                f"retry after {self.retry_after} s",
                {"Retry-After": str(self.retry_after)},
            )
        self.admitted += 1
        task = asyncio.ensure_future(self._execute(function, *args))
        task.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except asyncio.TimeoutError as error:
            raise ApiError(
                504, "timeout", f"the request took longer than {self.timeout:g} s"
            ) from error

    async def _execute(self, function: Callable[..., T], *args: Any) -> T:
        async with self._semaphore():
            return await run_in_threadpool(self._locked, function, *args)

    def _locked(self, function: Callable[..., T], *args: Any) -> T:
        if self.lock is None:
            return function(*args)
        with self.lock:
            return function(*args)

    def _release(self, task: asyncio.Future) -> None:
        self.admitted -= 1
        if not task.cancelled():
            task.exception()  # mark a failure of an abandoned request as retrieved


class BodyLimit:
    """ASGI middleware: 413 for request bodies larger than ``limit`` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = int(limit)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _send_413(send, self.limit)
            return
        received, exceeded, replaced = 0, False, False

        async def limited_receive() -> dict:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True  # the app's answer (a parse error) becomes our 413
                    raise ApiError(413, "payload_too_large", _too_large(self.limit))
            return message

        async def checked_send(message: dict) -> None:
            nonlocal replaced
            if exceeded and message["type"] == "http.response.start" and not replaced:
                replaced = True
                await _send_413(send, self.limit)
            elif not replaced:
                await send(message)

        await self.app(scope, limited_receive, checked_send)


def _too_large(limit: int) -> str:
    return f"the request body is larger than this server's limit of {limit:,} bytes"


async def _send_413(send: Callable, limit: int) -> None:
    body = json.dumps({"error": {"code": "payload_too_large", "message": _too_large(limit)}})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
