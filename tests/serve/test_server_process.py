"""A real ``pixelground serve`` process on a free loopback port, started and stopped here."""

from __future__ import annotations

import httpx
import pytest
from server_support import EXPRESSION, serve_process, upload

pytestmark = pytest.mark.slow


def test_serve_process_answers_with_the_api_key():
    key = "process-test-key"
    args = ["--preset", "shapes", "--max-upload-mb", "1"]
    with serve_process(args, env={"PIXELGROUND_API_KEY": key}) as url:
        assert httpx.get(f"{url}/healthz", timeout=10).json()["preset"] == "shapes"
        refused = httpx.post(f"{url}/v1/segment", data={"text": EXPRESSION}, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        response = httpx.post(
            f"{url}/v1/segment",
            files=upload(),
            data={"text": EXPRESSION},
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["task"] == "segment" and data["image"]["path"] == "shapes.png"
        assert len(data["regions"]) == 1
        big = httpx.post(
            f"{url}/v1/segment",
            files={"file": ("big.png", b"\x89PNG" + b"0" * 2_000_000, "image/png")},
            data={"text": EXPRESSION},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
        page = httpx.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and "pixelground" in page.text
