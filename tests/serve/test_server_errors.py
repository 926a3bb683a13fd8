"""Every bad input through the API, each with its status code and message; the limiter.

The app here serves the ``shapes`` preset (only error paths run, and it has no segmenter,
so uploads run no image encoder).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import EXAMPLE, upload

from pixelground.serve.app.errors import ApiError
from pixelground.serve.app.factory import create_app
from pixelground.serve.app.limits import Limiter
from pixelground.serve.app.settings import ServerSettings


def make_client(**settings) -> TestClient:
    app = create_app(ServerSettings(preset="shapes", **settings))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return make_client(max_upload_mb=0.5, max_pixels=300 * 300)


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in response.text
    return body["error"]["code"] + ": " + body["error"]["message"]


def test_bad_images(client):
    text = {"text": "a shape"}
    assert "missing_image" in error_of(client.post("/v1/segment", data=text), 400)
    files = {"file": ("photo.png", b"this is not an image", "image/png")}
    assert "unsupported_media_type" in error_of(
        client.post("/v1/segment", files=files, data=text), 415
    )
    files = {"file": ("empty.png", b"", "image/png")}
    assert "empty" in error_of(client.post("/v1/segment", files=files, data=text), 400)
    big = {"file": ("big.png", png_bytes(400, 400), "image/png")}
    assert "too_many_pixels" in error_of(client.post("/v1/segment", files=big, data=text), 413)
    huge = {"file": ("huge.bin", b"\x89PNG" + b"0" * 600_000, "image/png")}
    assert "payload_too_large" in error_of(client.post("/v1/segment", files=huge, data=text), 413)
    both = {**text, "image_id": "0" * 32}
    assert "ambiguous_image" in error_of(client.post("/v1/segment", files=upload(), data=both), 400)


def test_type_from_content_not_name(client):
    # a PNG named .txt with a wrong content type is still read as the PNG it is
    files = {"file": ("notes.txt", EXAMPLE.read_bytes(), "text/plain")}
    response = client.post("/v1/images", files=files)
    assert response.status_code == 200 and response.json()["name"] == "notes.txt"
    files = {"file": ("a.png", b"GIF89a" + b"\0" * 20, "image/png")}  # GIF magic, broken body
    assert "unsupported_media_type" in error_of(client.post("/v1/images", files=files), 415)


def test_ids_validated_before_lookup(client):
    for bad in ("a.b", "ABC", "0" * 31, "g" * 32, "0" * 33):
        response = client.post(f"/v1/images/{bad}/prompt", json={"points": [{"x": 1, "y": 1}]})
        assert "not_found" in error_of(response, 404)
    response = client.post("/v1/segment", data={"text": "x", "image_id": "../../etc/passwd"})
    assert "not_found" in error_of(response, 404)
    assert client.get("/..%2F..%2Fetc%2Fpasswd").status_code == 404  # static files stay inside
    unknown = client.post("/v1/segment", data={"text": "x", "image_id": "a" * 32})
    assert "upload it again" in error_of(unknown, 404)


def test_bad_fields(client):
    image_id = client.post("/v1/images", files=upload()).json()["image_id"]
    missing_text = client.post("/v1/segment", data={"image_id": image_id})
    assert "text: Field required" in error_of(missing_text, 422)
    empty = client.post("/v1/segment", data={"image_id": image_id, "text": "   "})
    assert "input_error" in error_of(empty, 400)
    two = client.post("/v1/describe", data={"image_id": image_id, "box": "1,1,5,5", "point": "2,2"})
    assert "exactly one" in error_of(two, 400)
    box = client.post("/v1/describe", data={"image_id": image_id, "box": "1,1,5"})
    assert "X0,Y0,X1,Y1" in error_of(box, 400)
    outside = client.post("/v1/describe", data={"image_id": image_id, "point": "999,1"})
    assert "outside" in error_of(outside, 400)
    strategy = client.post(
        "/v1/ground", data={"image_id": image_id, "caption": "a", "strategy": "x"}
    )
    assert "strategy" in error_of(strategy, 422)
    assert "not_found" in error_of(client.get("/v1/nothing"), 404)


def test_api_key_and_cors():
    client = make_client(api_key="s3cret-key", cors_origins=("http://tool.example",))
    assert client.get("/healthz").status_code == 200  # liveness stays open
    assert client.get("/").status_code == 200  # so does the page (it sends the key itself)
    response = client.get("/v1/presets")
    assert "unauthorized" in error_of(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/v1/presets", headers={"Authorization": "Bearer s3cret-kex"})
    assert wrong.status_code == 401
    right = client.get("/v1/presets", headers={"Authorization": "Bearer s3cret-key"})
    assert right.status_code == 200
    preflight = client.options(
        "/v1/presets",
        headers={"Origin": "http://tool.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.headers["access-control-allow-origin"] == "http://tool.example"


def test_cors_off_by_default(client):
    response = client.get("/healthz", headers={"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_limiter_refuses_with_retry_after_and_times_out():
    limiter = Limiter(max_active=1, max_queue=1, timeout=5.0, retry_after=3)
    release = threading.Event()

    def blocking() -> str:
        release.wait(5)
        return "done"

    async def scenario() -> list:
        first = asyncio.ensure_future(limiter.run(blocking))
        second = asyncio.ensure_future(limiter.run(blocking))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as refused:
            await limiter.run(blocking)
        release.set()
        return [refused.value, await first, await second]

    refused, *answers = asyncio.run(scenario())
    assert refused.status == 429 and refused.headers == {"Retry-After": "3"}
    assert answers == ["done", "done"] and limiter.admitted == 0

    slow = Limiter(max_active=1, max_queue=0, timeout=0.1, retry_after=1)
    with pytest.raises(ApiError) as timed_out:
        asyncio.run(slow.run(time.sleep, 0.5))
    assert timed_out.value.status == 504


def test_chunked_upload_stops_at_the_limit(client):
    boundary = "pgboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def body():  # no Content-Length: the limit is enforced while the body streams in
        yield head
        for _ in range(100):
            yield b"0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/segment",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "payload_too_large" in error_of(response, 413)


def test_chat_history_is_checked():
    client = make_client(models={"vlm": "vlm:tiny:smolvlm"})  # a chat model: history is read
    for bad in ('[["only one"]]', "not json", "[" + '["q", "a"],' * 20 + '["q", "a"]]'):
        data = {"question": "what is there?", "history": bad}
        response = client.post("/v1/chat", files=upload(), data=data)
        assert "history" in error_of(response, 400)
