"""Errors as JSON: ``{"error": {"code", "message"}}``, 4xx for the user's mistakes.

PixelgroundError (the library's user-error family) keeps its ``http_status``; request
validation becomes 422 with the first problem spelled out; anything unexpected is a 500
whose body says nothing about the code (the traceback goes to the log only).
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixelground.core.errors import PixelgroundError

log = logging.getLogger("pixelground.server")


class ApiError(Exception):
    """An error answered as JSON with a status, a code and a message.

    Args:
        status: HTTP status code.
        code: short machine-readable code, e.g. ``"payload_too_large"``.
        message: one sentence saying what went wrong and what to do.
        headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every failing route answers with."""
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_code(error: PixelgroundError) -> str:
    """``InputError`` -> ``"input_error"``: the class name in snake case."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{where or 'request'}: {item.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON, never with a traceback."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(PixelgroundError)
    async def user_error(request: Request, error: PixelgroundError) -> JSONResponse:
        return error_response(error.http_status, error_code(error), str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail), error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal_error", "the server failed on this request; see the server log"
        )
