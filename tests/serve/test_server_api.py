"""The HTTP API against the app (httpx through TestClient) on the shapes preset.

Task responses must equal the CLI's ``-o`` JSON for the same inputs; interactive prompts
run the decoder on a cached embedding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_support import EXAMPLE, EXPRESSION, SHAPES_WITH_CLICKS, upload

from pixelground.core.masks import decode_rle, encode_rle
from pixelground.serve.app.factory import create_app
from pixelground.serve.app.settings import ServerSettings
from pixelground.serve.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client() -> TestClient:
    """The shapes preset as shipped: what the CLI runs with --preset shapes."""
    with TestClient(create_app(ServerSettings(preset="shapes"))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def clicks() -> TestClient:
    """Shapes plus a tiny random-weight SAM2 segmenter for clicks and boxes."""
    app = create_app(ServerSettings(preset="shapes", models=SHAPES_WITH_CLICKS))
    with TestClient(app) as test_client:
        yield test_client


def cli_json(tmp_path, monkeypatch, argv: list[str]) -> dict:
    """The CLI's -o JSON for ARGV run beside the example (so image.path is its name)."""
    monkeypatch.chdir(EXAMPLE.parent)
    out = tmp_path / "cli.json"
    assert main([*argv, "-o", str(out)]) == 0
    return json.loads(out.read_text())


def test_health_presets_and_openapi(client):
    assert client.get("/healthz").json()["preset"] == "shapes"
    presets = client.get("/v1/presets").json()
    assert presets["serving"] == "shapes"
    assert {"preset": "shapes", "role": "grounding_model", "backend": "segtoken"}.items() <= next(
        p for p in presets["parts"] if p["preset"] == "shapes"
    ).items()
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("segment", "ground", "caption", "describe", "entities", "semseg", "chat"):
        assert f"/v1/{route}" in paths
    assert "/v1/images/{image_id}/prompt" in paths


def test_segment_equals_cli(client, tmp_path, monkeypatch):
    response = client.post("/v1/segment", files=upload(), data={"text": EXPRESSION})
    assert response.status_code == 200, response.text
    expected = cli_json(
        tmp_path, monkeypatch, ["segment", EXAMPLE.name, EXPRESSION, "--preset", "shapes"]
    )
    assert response.json() == expected
    assert len(expected["regions"]) == 1 and expected["regions"][0]["mask"] is not None


def test_caption_by_image_id_equals_cli(client, tmp_path, monkeypatch):
    image_id = client.post("/v1/images", files=upload()).json()["image_id"]
    response = client.post("/v1/caption", data={"image_id": image_id, "grounded": "true"})
    assert response.status_code == 200, response.text
    argv = ["caption", EXAMPLE.name, "--grounded", "--preset", "shapes"]
    assert response.json() == cli_json(tmp_path, monkeypatch, argv)


def test_describe_box_equals_cli(client, tmp_path, monkeypatch):
    response = client.post("/v1/describe", files=upload(), data={"box": "10,170,50,212"})
    assert response.status_code == 200, response.text
    argv = ["describe", EXAMPLE.name, "--box", "10,170,50,212", "--preset", "shapes"]
    assert response.json() == cli_json(tmp_path, monkeypatch, argv)


def test_without_segmenter_clicks_are_refused(client):
    session = client.post("/v1/images", files=upload()).json()
    assert not session["interactive"] and session["embedding_ms"] is None
    url = f"/v1/images/{session['image_id']}/prompt"
    response = client.post(url, json={"points": [{"x": 30, "y": 195}]})
    assert response.status_code == 400
    assert "needs a segmenter" in response.json()["error"]["message"]


def test_interactive_clicks_reuse_the_embedding(clicks):
    client = clicks
    session = client.post("/v1/images", files=upload()).json()
    assert session["interactive"] and session["embedding_ms"] > 0
    assert (session["width"], session["height"]) == (256, 256)
    url = f"/v1/images/{session['image_id']}/prompt"
    first = client.post(url, json={"points": [{"x": 30, "y": 195}]})
    assert first.status_code == 200, first.text
    data = first.json()
    assert data["task"] == "interactive" and len(data["regions"]) == 1
    mask = decode_rle(data["regions"][0]["mask"])
    assert mask.shape == (256, 256)
    three = client.post(url, json={"box": [10, 170, 50, 212], "multimask": True}).json()
    assert len(three["regions"]) == 3
    scores = [r["score"] for r in three["regions"]]
    assert scores == sorted(scores, reverse=True)
    previous = data["regions"][0]["mask"] if mask.any() else _square_rle()
    refined = client.post(
        url, json={"points": [{"x": 200, "y": 40, "positive": False}], "mask": previous}
    )
    assert refined.status_code == 200, refined.text


def _square_rle() -> dict:
    mask = np.zeros((256, 256), bool)
    mask[20:60, 20:60] = True
    rle = encode_rle(mask)[0]
    return {"size": rle["size"], "counts": rle["counts"]}


def test_interactive_prompt_errors(clicks):
    client = clicks
    image_id = client.post("/v1/images", files=upload()).json()["image_id"]
    url = f"/v1/images/{image_id}/prompt"
    outside = client.post(url, json={"points": [{"x": 300, "y": 10}]})
    assert outside.status_code == 400 and "outside the 256x256 image" in outside.text
    assert client.post(url, json={}).status_code == 400  # no prompt at all
    bad_rle = {"size": [256, 256], "counts": "0000"}
    response = client.post(url, json={"mask": bad_rle})
    assert response.status_code == 400
    assert "do not cover" in response.json()["error"]["message"]
    wrong_size = encode_rle(np.ones((8, 8), bool))[0]
    response = client.post(url, json={"mask": wrong_size})
    assert response.status_code == 400 and "mask prompt has shape" in response.text


def test_chat_refused_without_a_chat_model_as_the_cli(client, monkeypatch):
    data = {"question": "where is the small green triangle?", "history": "[]"}
    response = client.post("/v1/chat", files=upload(), data=data)
    assert response.status_code == 400
    assert "has no chat model" in response.json()["error"]["message"]
    monkeypatch.chdir(EXAMPLE.parent)
    assert main(["chat", EXAMPLE.name, data["question"], "--preset", "shapes"]) == 2
