"""Video jobs through the API on the tiny preset: track by box, events, downloads, cancel,
a restart that keeps finished jobs and marks interrupted ones, and bad inputs."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import swan_clip

from pixelground.serve.app.factory import create_app
from pixelground.serve.app.jobs import JobStore
from pixelground.serve.app.settings import ServerSettings
from pixelground.serve.cli import main

pytestmark = pytest.mark.slow
BOX = "40,30,120,80@0"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return swan_clip(tmp_path_factory.mktemp("clip") / "swan.mp4").read_bytes()


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def client(jobs_dir) -> TestClient:
    app = create_app(ServerSettings(preset="tiny", jobs_dir=jobs_dir))
    with TestClient(app) as test_client:
        yield test_client


def events(client: TestClient, job_id: str) -> list[dict]:
    """The job's server-sent events until it ends."""
    seen = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: ")))
    return seen


def test_track_job_by_box_streams_progress_and_downloads(client, clip, tmp_path):
    files = {"file": ("swan.mp4", clip, "video/mp4")}
    response = client.post("/v1/jobs", files=files, data={"kind": "track", "box": BOX})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued" and job["video"] == "swan.mp4"
    seen = events(client, job["id"])
    assert seen[-1]["state"] == "done", seen[-1]
    assert seen[-1]["done"] == seen[-1]["total"] == 6
    result = client.get(f"/v1/jobs/{job['id']}/result.json").json()
    (clip_path := tmp_path / "swan.mp4").write_bytes(clip)
    out = tmp_path / "cli.json"
    assert main(["track", str(clip_path), "--box", BOX, "--preset", "tiny", "-o", str(out)]) == 0
    expected = json.loads(out.read_text())
    assert result["tracks"] == expected["tracks"] and result["task"] == expected["task"]
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/v1/jobs/{job['id']}/masks.zip").content))
    assert len([n for n in archive.namelist() if n.endswith(".png")]) == 6
    mp4 = client.get(f"/v1/jobs/{job['id']}/overlay.mp4")
    assert mp4.headers["content-type"] == "video/mp4" and mp4.content[4:8] == b"ftyp"
    frame = Image.open(io.BytesIO(client.get(f"/v1/jobs/{job['id']}/frames/5").content))
    assert frame.size == (160, 96)
    assert client.get(f"/v1/jobs/{job['id']}/frames/6").status_code == 400


def test_cancel_then_restart_keeps_finished_and_marks_interrupted(client, clip, jobs_dir):
    files = {"file": ("swan.mp4", clip, "video/mp4")}
    job = client.post("/v1/jobs", files=files, data={"kind": "track", "box": BOX}).json()
    cancelled = client.delete(f"/v1/jobs/{job['id']}").json()
    assert cancelled["state"] in ("cancelled", "running")
    assert events(client, job["id"])[-1]["state"] == "cancelled"
    assert client.get(f"/v1/jobs/{job['id']}/result.json").status_code == 409

    store = JobStore(jobs_dir, ttl_hours=24, quota_bytes=2**30)
    finished = [i for i in store.ids() if store.load(i).state == "done"]
    crashed = store.create("track", {"box": [BOX]}, clip, {"name": "x.mp4", "container": "mp4"})
    crashed.state = "running"  # as a server killed mid-job leaves it
    store.save(crashed)
    restarted = TestClient(create_app(ServerSettings(preset="tiny", jobs_dir=jobs_dir)))
    assert finished and restarted.get(f"/v1/jobs/{finished[0]}").json()["state"] == "done"
    assert restarted.get(f"/v1/jobs/{finished[0]}/result.json").status_code == 200
    info = restarted.get(f"/v1/jobs/{crashed.id}").json()
    assert info["state"] == "interrupted" and info["error"]["code"] == "interrupted"


def test_bad_job_requests(client, clip, tmp_path):
    video = {"file": ("swan.mp4", clip, "video/mp4")}
    not_video = {"file": ("swan.mp4", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "video/mp4")}
    response = client.post("/v1/jobs", files=not_video, data={"box": BOX})
    assert response.status_code == 415 and "not a video" in response.json()["error"]["message"]
    response = client.post("/v1/jobs", files=video, data={"kind": "track"})
    assert response.status_code == 400 and "needs a text or box" in response.text
    response = client.post("/v1/jobs", files=video, data={"box": "1,2,3@0"})
    assert response.status_code == 400
    response = client.post("/v1/jobs", files=video, data={"kind": "dance", "box": BOX})
    assert response.status_code == 422
    assert client.get("/v1/jobs/" + "f" * 32).status_code == 404
    assert client.get("/v1/jobs/..%2f..%2fetc").status_code == 404
    assert client.get("/v1/jobs/" + "f" * 32 + "/secrets.txt").status_code == 404
    full = TestClient(
        create_app(ServerSettings(preset="tiny", jobs_dir=tmp_path, jobs_quota_mb=0.001))
    )
    response = full.post("/v1/jobs", files=video, data={"box": BOX})
    assert response.status_code == 507 and response.json()["error"]["code"] == "quota_exceeded"


def test_describe_job_and_its_errors(client, clip):
    video = {"file": ("swan.mp4", clip, "video/mp4")}
    response = client.post("/v1/jobs", files=video, data={"kind": "describe"})
    assert response.status_code == 400 and "needs one box" in response.text
    bad_id = {"kind": "describe", "box": "40,30,120,80@0:2"}
    assert client.post("/v1/jobs", files=video, data=bad_id).status_code == 400
    data = {"kind": "describe", "box": "40,30,120,80@1", "max_frames": "4"}
    job = client.post("/v1/jobs", files=video, data=data).json()
    final = events(client, job["id"])[-1]
    assert final["state"] == "done" and final["total"] == 4, final
    result = client.get(f"/v1/jobs/{job['id']}/result.json").json()
    assert result["task"] == "describe" and result["video"]["num_frames"] == 4
