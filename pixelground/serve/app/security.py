"""Security checks: API key, random ids, upload size, and file types from content.

Nothing here trusts a client's file name or Content-Type: image and video types are read
from the first bytes, ids are random hex validated before any lookup or file access, and
the API key is compared in constant time.
"""

from __future__ import annotations

import hmac
import io
import re
import secrets
import warnings

from fastapi import Request
from PIL import Image, UnidentifiedImageError

from pixelground.serve.app.errors import ApiError

#: Ids are 32 lowercase hex characters (128 random bits).
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
#: Image formats accepted, as PIL names them.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


def new_id() -> str:
    """A fresh random id (32 hex characters), safe as a file name."""
    return secrets.token_hex(16)


def check_id(value: str, kind: str) -> str:
    """``value`` if it is a well-formed id; 404 otherwise, before any file is touched."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ApiError(404, "not_found", f"no {kind} with id {value[:40]!r}")
    return value


def check_api_key(request: Request, expected: str | None) -> None:
    """401 unless ``Authorization: Bearer <expected>`` (compared in constant time)."""
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8"), expected.encode("utf-8")
    )
    if not ok:
        raise ApiError(
            401,
            "unauthorized",
            "this server needs an API key: send the header 'Authorization: Bearer KEY'",
            {"WWW-Authenticate": "Bearer"},
        )


def check_upload_size(data: bytes, limit: int) -> bytes:
    """``data`` unless it is empty (400) or larger than ``limit`` bytes (413)."""
    if len(data) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the upload is {len(data):,} bytes, more than this server's limit of {limit:,}",
        )
    if not data:
        raise ApiError(400, "empty_upload", "the uploaded file is empty (0 bytes)")
    return data


def sniff_image(data: bytes, max_pixels: int) -> str:
    """The image format read from ``data``'s header; 415 if not an image, 413 if too large.

    Only the header is parsed here (no pixel decoding), so a decompression bomb is refused
    before it is decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind, width, height = image.format, image.width, image.height
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the upload is not an image this server reads (PNG, JPEG, WebP, BMP, GIF, TIFF)",
        ) from error
    except Image.DecompressionBombError as error:
        raise ApiError(413, "too_many_pixels", f"the image is too large: {error}") from error
    if kind not in IMAGE_FORMATS:
        raise ApiError(415, "unsupported_media_type", f"image format {kind} is not accepted")
    if width * height > max_pixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"the image is {width}x{height} = {width * height:,} pixels, more than this "
            f"server's limit of {max_pixels:,}; resize it first",
        )
    return kind


def sniff_video(data: bytes) -> str:
    """The container read from ``data``'s first bytes (mp4/mov, webm/mkv, avi); 415 otherwise."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    raise ApiError(
        415,
        "unsupported_media_type",
        "the upload is not a video this server reads (MP4/MOV, WebM/MKV or AVI, by content)",
    )


def safe_name(name: str | None, default: str) -> str:
    """A display name from a client's file name: its last part, printable, at most 100 chars.

    Used only as a label in results, never to open a file.
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:100] or default
