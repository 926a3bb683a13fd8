"""The page in a real browser: Debian's headless Chromium driven by Playwright.

Upload the bundled example, type the expression, see the mask drawn on the canvas,
download the JSON and compare it with the CLI's; click a point and see the mask change;
an API error shows as a readable message. Screenshots go to the test's temp folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from server_support import EXAMPLE, EXPRESSION, SHAPES_WITH_CLICKS, serve_process, swan_clip

from pixelground.core.masks import decode_rle
from pixelground.serve.commands.common import COMMAND_ROLES

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODEL_ARGS = [f"--model={role}={source}" for role, source in SHAPES_WITH_CLICKS.items()]

COUNT_MASK_PIXELS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""
MAX_ALPHA = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let m = 0; for (let i = 3; i < d.length; i += 4) m = Math.max(m, d[i]);
  return m;
}"""
MASK_SIGNATURE = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) h = (h * 31 + i) % 1000000007;
  return h;
}"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


def cli_segment(tmp_path: Path) -> dict:
    """``pixelground segment`` run beside the example, with the server's preset and parts."""
    out = tmp_path / "cli.json"
    command = [sys.executable, "-m", "pixelground.serve.cli", "segment", EXAMPLE.name, EXPRESSION]
    # the parts segment uses (an override of a role a command never uses is refused)
    used = [
        f"--model={r}={s}" for r, s in SHAPES_WITH_CLICKS.items() if r in COMMAND_ROLES["segment"]
    ]
    command += ["--preset", "shapes", *used, "-o", str(out)]
    subprocess.run(command, cwd=EXAMPLE.parent, check=True, capture_output=True, timeout=300)
    return json.loads(out.read_text())


def wait_for_result(page, count: int) -> None:
    # attribute selectors, not JS predicates: the page's CSP forbids eval
    page.wait_for_selector(f'body[data-results="{count}"]', state="attached", timeout=120_000)


def test_page_segments_clicks_and_downloads(browser, tmp_path):
    expected = cli_segment(tmp_path)
    with serve_process(["--preset", "shapes", *MODEL_ARGS]) as url:
        page = browser.new_page(accept_downloads=True)
        page.goto(url)
        page.set_input_files("#image-file", str(EXAMPLE))
        page.wait_for_selector("body[data-image-id]", state="attached", timeout=120_000)
        page.fill("#text", EXPRESSION)
        page.click("#run")
        wait_for_result(page, 1)
        page.screenshot(path=str(tmp_path / "segment.png"))
        area = int(decode_rle(expected["regions"][0]["mask"]).sum())
        assert area > 100
        assert page.evaluate(COUNT_MASK_PIXELS, "mask-canvas") == area
        assert "the small green triangle" in page.inner_text("#legend")

        page.hover("#legend li")  # hovering a legend entry highlights its mask and phrase
        assert page.evaluate(MAX_ALPHA, "mask-canvas") == 200
        assert "hot" in page.get_attribute("#result-text .phrase", "class")
        page.mouse.move(0, 0)
        assert page.evaluate(MAX_ALPHA, "mask-canvas") == 130

        with page.expect_download() as download_info:
            page.click("#download-json")
        downloaded = json.loads(Path(download_info.value.path()).read_text())
        assert downloaded == expected

        before = page.evaluate(MASK_SIGNATURE, "mask-canvas")
        box = page.locator("#prompt-canvas").bounding_box()
        scale = box["width"] / 256
        page.mouse.click(box["x"] + 200 * scale, box["y"] + 60 * scale)
        wait_for_result(page, 2)
        page.screenshot(path=str(tmp_path / "click.png"))
        assert page.evaluate(MASK_SIGNATURE, "mask-canvas") != before
        assert np.isfinite(float(page.inner_text("#legend").split("(")[-1].rstrip(")")))

        page.fill("#text", "   ")
        page.click("#run")
        page.wait_for_selector("#error:not([hidden])", timeout=60_000)
        message = page.inner_text("#error")
        assert message.startswith("400:") and "expression" in message
        page.screenshot(path=str(tmp_path / "error.png"))
        track_and_scrub(page, swan_clip(tmp_path / "swan.mp4"), tmp_path)
        browse_results(page, tmp_path / "cli.json", area, tmp_path)
        page.close()


def engine_shard(result: dict, path: Path) -> Path:
    """A data-engine shard (layout of pixelground/engine/dataset.py) holding the result's mask."""
    region = result["regions"][0]
    obj = {
        "id": 0,
        "mask": region["mask"],
        "box": region["box"],
        "score": 0.9,
        "labels": ["triangle"],
        "label": "triangle",
        "attribute": None,
        "sources": ["test"],
    }
    caption = {
        "text": "a small triangle",
        "phrases": [{"text": "a small triangle", "span": [0, 16], "object": 0}],
    }
    record = {
        "id": "shapes",
        "status": "done",
        "image": "/data/shapes.png",
        "width": 256,
        "height": 256,
        "objects": [obj],
        "caption": caption,
    }
    path.write_text(json.dumps(record) + "\n")
    return path


def browse_results(page, results: Path, area: int, tmp_path: Path) -> None:
    """Browse view: a CLI result and an engine shard with their image, masks drawn locally."""
    shard = engine_shard(json.loads(results.read_text()), tmp_path / "shard-run-00000.jsonl")
    page.click("#tab-browse")
    page.set_input_files("#browse-files", [str(results), str(shard), str(EXAMPLE)])
    page.wait_for_selector('body[data-browse-shown="0"]', state="attached", timeout=30_000)
    assert page.inner_text("#browse-pos") == "1 / 2"
    assert page.evaluate(COUNT_MASK_PIXELS, "browse-mask-canvas") == area
    assert "(image not opened)" not in page.inner_text("#browse-text")
    page.click("#browse-next")
    page.wait_for_selector('body[data-browse-shown="1"]', state="attached", timeout=30_000)
    assert page.evaluate(COUNT_MASK_PIXELS, "browse-mask-canvas") == area
    assert page.inner_text("#browse-text .phrase") == "a small triangle"
    page.screenshot(path=str(tmp_path / "browse.png"))


def track_and_scrub(page, clip: Path, tmp_path: Path) -> None:
    """Video view: upload a clip, draw a box on its first frame, track, scrub to frame 3."""
    page.click("#tab-video")
    page.set_input_files("#video-file", str(clip))
    page.wait_for_timeout(1000)  # the browser decodes the first frame for the box
    canvas = page.locator("#frame-mask-canvas")
    width = page.evaluate("(id) => document.getElementById(id).width", "frame-mask-canvas")
    if width != 160:  # this Chromium cannot decode H.264: track by text instead
        page.select_option("#video-task", "track")
        page.fill("#video-text", "the black swan")
    else:
        box = canvas.bounding_box()
        scale = box["width"] / 160
        page.mouse.move(box["x"] + 40 * scale, box["y"] + 30 * scale)
        page.mouse.down()
        page.mouse.move(box["x"] + 120 * scale, box["y"] + 80 * scale)
        page.mouse.up()
    page.click("#video-run")
    page.wait_for_selector('body[data-job-state="done"]', state="attached", timeout=180_000)
    page.wait_for_selector('body[data-frame-shown="0"]', state="attached", timeout=60_000)
    page.locator("#scrubber").fill("3")
    page.wait_for_selector('body[data-frame-shown="3"]', state="attached", timeout=60_000)
    page.screenshot(path=str(tmp_path / "video.png"))
    assert page.inner_text("#frame-index") == "3"
    assert page.get_attribute("#dl-mp4", "href").endswith("/overlay.mp4")
    assert page.is_hidden("#error")
