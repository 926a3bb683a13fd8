"""The examples in docs/result-format.md are generated from real data and must stay parseable.

Each example block in the document follows an ``<!-- example: NAME -->`` marker. This module
builds the same results from the real masks in ../shared/data; the tests check that the
document shows exactly them and that they parse with ``from_dict``. After a change to the
format, regenerate the blocks with ``python tests/core/test_core_docs_example.py`` and paste.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for running as a script

from paths import REPO, SHARED_DATA  # noqa: E402

from pixelground.core.masks import decode_rle  # noqa: E402
from pixelground.core.result import (  # noqa: E402
    CaptionEvent,
    GroundedResult,
    ImageInfo,
    Region,
    Track,
    VideoInfo,
    VideoResult,
)

DOC = REPO / "docs" / "result-format.md"
IMAGE_TEXT = "A lifted player reaches up beside the ball."
PLAYER, BALL = 2822390, 16757838  # COCO panoptic segment ids in image 000000142238
SAV_FRAMES = (7, 8, 9)  # annotated SA-V frames (every 4th frame of the 24 fps video)
SAV_MASKLETS = (0, 2)  # masklet 2 is invisible on frames 8 and 9


def panoptic_masks() -> dict[int, np.ndarray]:
    """Segment id -> (427, 640) GT mask of COCO val2017 image 000000142238."""
    folder = SHARED_DATA / "panopticapi_sample"
    detection = json.loads((folder / "panoptic_coco_detection_format.json").read_text())
    panoptic = json.loads((folder / "panoptic_examples.json").read_text())
    info = panoptic["annotations"][0]["segments_info"]
    anns = [a for a in detection["annotations"] if a["image_id"] == 142238]
    return {s["id"]: decode_rle(a["segmentation"]) for s, a in zip(info, anns, strict=True)}


def image_example() -> GroundedResult:
    """Phrase grounding on a real COCO image, with ground-truth masks standing in for output."""
    masks = panoptic_masks()
    player = (0, len("A lifted player"))
    ball_start = IMAGE_TEXT.index("the ball")
    regions = [
        Region(
            mask=masks[PLAYER],
            phrase=IMAGE_TEXT[player[0] : player[1]],
            span=player,
            label="person",
            score=0.91,
            attributes={"caption": "a rugby player with the number 4, lifted by teammates"},
        ),
        Region(
            mask=masks[BALL],
            phrase="the ball",
            span=(ball_start, ball_start + len("the ball")),
            label="sports ball",
            score=0.84,
        ),
    ]
    return GroundedResult(
        task="ground",
        image=ImageInfo(width=640, height=427, path="000000142238.jpg"),
        text=IMAGE_TEXT,
        regions=regions,
        model={"preset": "example", "note": "masks are COCO panoptic ground truth"},
    )


def video_example() -> VideoResult:
    """Two real SA-V masklets over three sampled frames; one is absent from two of them."""
    data = json.loads((SHARED_DATA / "sav_example" / "sav_000001_manual.json").read_text())
    tracks = [Track(id=k, attributes={"sav_masklet": k}) for k in SAV_MASKLETS]
    for sampled, annotated in enumerate(SAV_FRAMES):
        for track in tracks:
            track.add(sampled, decode_rle(data["masklet"][annotated][track.id]))
    tracks[0].phrase, tracks[0].span, tracks[0].label = "the first object", (0, 16), "object"
    return VideoResult(
        task="track",
        video=VideoInfo(
            width=480,
            height=848,
            num_frames=len(SAV_FRAMES),
            fps=6.0,
            path="sav_000001.mp4",
            frame_indices=[4 * i for i in SAV_FRAMES],
        ),
        text="the first object and another one",
        tracks=tracks,
        events=[CaptionEvent(0, 2, "example text: SA-V has no captions", track_id=0)],
        model={"preset": "example", "note": "masks are SA-V manual masklets"},
    )


def compact_json(data: dict) -> str:
    """Indented JSON with short lists of numbers kept on one line, as printed in the doc."""
    text = json.dumps(data, indent=2)
    return re.sub(
        r"\[\s*([-0-9.e, \n]+?)\s*\]",
        lambda m: "[" + ", ".join(part.strip() for part in m[1].split(",")) + "]",
        text,
    )


def doc_examples() -> dict[str, dict]:
    """Name -> parsed JSON of each ``<!-- example: NAME -->`` block in the document."""
    text = DOC.read_text()
    found = re.findall(r"<!-- example: (\w+) -->\s*```json\n(.*?)\n```", text, flags=re.S)
    return {name: json.loads(block) for name, block in found}


def test_compact_json_is_still_the_same_json():
    data = image_example().to_dict()
    assert json.loads(compact_json(data)) == data
    assert '"span": [0, 15]' in compact_json(data)


def test_doc_image_example_is_generated_from_real_data_and_parses():
    shown = doc_examples()["image"]
    expected = image_example()
    assert shown == expected.to_dict(), "regenerate: python tests/core/test_core_docs_example.py"
    parsed = GroundedResult.from_dict(shown)
    assert parsed.to_dict() == shown
    for region, truth in zip(parsed, expected, strict=True):
        assert np.array_equal(region.mask, truth.mask)
        start, end = region.span
        assert parsed.text[start:end] == region.phrase
    assert parsed.regions[1].mask.sum() == 175  # the ball's area in the COCO annotation


def test_doc_video_example_is_generated_from_real_data_and_parses():
    shown = doc_examples()["video"]
    assert shown == video_example().to_dict(), (
        "regenerate: python tests/core/test_core_docs_example.py"
    )
    parsed = VideoResult.from_dict(shown)
    assert parsed.to_dict() == shown
    assert [sorted(t.frames) for t in parsed] == [[0, 1, 2], [0]]  # absent frames omitted
    assert parsed.frame_masks(1).keys() == {0}


def test_doc_mentions_every_field_written():
    text = DOC.read_text()
    image = image_example().to_dict()
    video = video_example().to_dict()
    keys = set(image) | set(image["image"]) | set(image["regions"][0]) | set(video)
    keys |= set(video["video"]) | set(video["tracks"][0]) | set(video["tracks"][0]["frames"][0])
    keys |= set(video["events"][0]) | {"size", "counts"}
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"fields written but not documented: {missing}"


if __name__ == "__main__":
    print("<!-- example: image -->\n```json\n" + compact_json(image_example().to_dict()) + "\n```")
    print(
        "\n<!-- example: video -->\n```json\n" + compact_json(video_example().to_dict()) + "\n```"
    )
