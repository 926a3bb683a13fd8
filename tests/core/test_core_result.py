"""GroundedResult and VideoResult on real masks: access, filtering, merging, JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from paths import SHARED_DATA

from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.masks import decode_rle, masks_to_boxes
from pixelground.core.result import (
    SCHEMA_VERSION,
    CaptionEvent,
    FrameMask,
    GroundedResult,
    ImageInfo,
    Region,
    Track,
    VideoInfo,
    VideoResult,
)

PANOPTIC = SHARED_DATA / "panopticapi_sample"
TEXT = "Players lift a jumper towards the ball above the grass."
#          0         1         2         3         4         5
#          0123456789012345678901234567890123456789012345678901234


@pytest.fixture(scope="module")
def segments() -> dict[int, tuple[str, np.ndarray]]:
    """Real COCO panoptic segments of image 142238 (640 x 427): id -> (category, mask)."""
    detection = json.loads((PANOPTIC / "panoptic_coco_detection_format.json").read_text())
    panoptic = json.loads((PANOPTIC / "panoptic_examples.json").read_text())
    names = {c["id"]: c["name"] for c in detection["categories"]}
    info = panoptic["annotations"][0]["segments_info"]
    anns = [a for a in detection["annotations"] if a["image_id"] == 142238]
    return {
        s["id"]: (names[s["category_id"]], decode_rle(a["segmentation"]))
        for s, a in zip(info, anns, strict=True)
    }


def make_result(segments) -> GroundedResult:
    players = [4325578, 3937500]  # two lifters
    regions = [
        Region(mask=segments[i][1], phrase="Players", span=(0, 7), label="person", score=s)
        for i, s in zip(players, [0.9, 0.6], strict=True)
    ]
    regions += [
        Region(mask=segments[2822390][1], phrase="a jumper", span=(13, 21), label="person"),
        Region(
            mask=segments[16757838][1],
            phrase="the ball",
            span=(30, 38),
            label="sports ball",
            score=0.8,
        ),
        Region(
            box=(0.0, 241.0, 640.0, 427.0),
            phrase="the grass",
            span=(45, 54),
            label="grass-merged",
            attributes={"note": "box only", "rank": [1, 2]},
        ),
    ]
    return GroundedResult(
        task="ground",
        image=ImageInfo(width=640, height=427, path="000000142238.jpg"),
        text=TEXT,
        regions=regions,
        model={"preset": "test", "parts": {"segmenter": "gt"}},
    )


def test_spans_index_the_text():
    assert TEXT[0:7] == "Players" and TEXT[13:21] == "a jumper"
    assert TEXT[30:38] == "the ball" and TEXT[45:54] == "the grass"


def test_regions_ids_boxes_and_access(segments):
    result = make_result(segments)
    assert len(result) == 5
    assert [r.id for r in result] == [0, 1, 2, 3, 4]
    assert result[2].phrase == "a jumper"
    assert result[-1].mask is None and result[-1].area == 0
    ball = segments[16757838][1]
    assert result[3].box == tuple(masks_to_boxes(ball)[0].tolist())
    assert result[3].area == int(ball.sum()) == 175
    sliced = result[1:3]
    assert isinstance(sliced, GroundedResult)
    assert [r.id for r in sliced] == [1, 2] and sliced.text == TEXT
    assert result.phrases == ["Players", "a jumper", "the ball", "the grass"]


def test_masks_boxes_scores_properties(segments):
    result = make_result(segments)
    masks = result.masks
    assert masks.shape == (5, 427, 640) and masks.dtype == bool
    assert np.array_equal(masks[0], segments[4325578][1])
    assert not masks[4].any()  # box-only region: empty mask
    boxes = result.boxes
    assert boxes.shape == (5, 4)
    assert boxes[4].tolist() == [0, 241, 640, 427]
    assert result.scores.tolist() == [0.9, 0.6, 1.0, 0.8, 1.0]
    nobox = GroundedResult("segment", ImageInfo(4, 3), regions=[Region(score=0.5)])
    assert np.isnan(nobox.boxes).all()
    empty = GroundedResult("segment", ImageInfo(640, 427))
    assert empty.masks.shape == (0, 427, 640) and empty.boxes.shape == (0, 4)
    assert not empty.union_mask().any()


def test_filter_and_by_phrase(segments):
    result = make_result(segments)
    assert [r.id for r in result.filter(min_score=0.7)] == [0, 2, 3, 4]
    assert [r.id for r in result.filter(phrase="Players")] == [0, 1]
    big = result.filter(predicate=lambda r: r.area > 3000)
    assert [r.id for r in big] == [0, 1]  # areas 4076, 3528, 2969, 175, 0
    assert [r.id for r in result.filter(min_score=0.7, phrase="Players")] == [0]
    groups = result.by_phrase()
    assert list(groups) == ["Players", "a jumper", "the ball", "the grass"]
    assert [r.id for r in groups["Players"]] == [0, 1]
    union = result.union_mask("Players")
    assert union.sum() == segments[4325578][1].sum() + segments[3937500][1].sum()


def test_label_map_later_regions_overwrite(segments):
    result = make_result(segments)
    labels = ["person", "sports ball"]
    label_map = result.label_map(labels)
    assert label_map.shape == (427, 640) and label_map.dtype == np.int32
    persons = result.masks[:3].any(axis=0)
    ball = segments[16757838][1]
    assert (label_map[ball] == 1).all()
    assert (label_map[persons & ~ball] == 0).all()
    assert (label_map[~persons & ~ball] == -1).all()  # grass has no mask, no label index
    overlap = np.zeros((2, 2), dtype=bool)
    overlap[0, 0] = True
    two = GroundedResult(
        "semseg",
        ImageInfo(2, 2),
        regions=[Region(mask=overlap, label="a"), Region(mask=overlap, label="b")],
    )
    assert two.label_map(["a", "b"], background=9).tolist() == [[1, 9], [9, 9]]


def test_merge_renumbers_ids(segments):
    result = make_result(segments)
    other = GroundedResult(
        "segment",
        ImageInfo(640, 427),
        regions=[Region(mask=segments[2098642][1], id=0), Region(mask=segments[5186532][1], id=7)],
    )
    merged = result.merge(other)
    assert [r.id for r in merged] == [0, 1, 2, 3, 4, 5, 6]
    assert np.array_equal(merged[5].mask, segments[2098642][1])
    assert [r.id for r in other] == [0, 7]  # the merged-in result is not changed
    assert merged.text == TEXT and merged.task == "ground"
    with pytest.raises(ValueError, match="different sizes"):
        result.merge(GroundedResult("segment", ImageInfo(10, 10)))


def test_ids_are_assigned_around_explicit_ones():
    regions = [Region(box=(0, 0, 1, 1)), Region(box=(0, 0, 1, 1), id=0), Region(box=(0, 0, 1, 1))]
    result = GroundedResult("segment", ImageInfo(4, 4), regions=regions)
    assert [r.id for r in result] == [1, 0, 2]


def test_lossless_dict_round_trip(segments):
    result = make_result(segments)
    data = result.to_dict()
    assert data["version"] == SCHEMA_VERSION == 1
    assert data["image"] == {"path": "000000142238.jpg", "width": 640, "height": 427}
    region = data["regions"][3]
    assert set(region) == {"id", "phrase", "span", "label", "score", "box", "mask"}
    assert region["mask"]["size"] == [427, 640] and isinstance(region["mask"]["counts"], str)
    assert data["regions"][4]["mask"] is None
    assert data["regions"][4]["attributes"] == {"note": "box only", "rank": [1, 2]}
    back = GroundedResult.from_dict(data)
    assert back.to_dict() == data
    for a, b in zip(result, back, strict=True):
        assert (a.mask is None) == (b.mask is None)
        if a.mask is not None:
            assert np.array_equal(a.mask, b.mask)
        assert (a.box, a.span, a.score, a.phrase, a.label, a.id) == (
            b.box,
            b.span,
            b.score,
            b.phrase,
            b.label,
            b.id,
        )


def test_json_string_and_file_round_trip(segments, tmp_path):
    result = make_result(segments)
    text = result.to_json()
    assert json.loads(text) == result.to_dict()
    assert GroundedResult.from_json(text).to_dict() == result.to_dict()
    path = tmp_path / "result.json"
    written = result.to_json(path, indent=2)
    assert path.read_text() == written + "\n"
    assert GroundedResult.from_json(path).to_dict() == result.to_dict()
    assert GroundedResult.from_json(str(path)).to_dict() == result.to_dict()
    assert GroundedResult.from_json("  \n" + text).to_dict() == result.to_dict()


def test_unknown_version_is_an_error(segments):
    data = make_result(segments).to_dict()
    for version in (2, 0, None, "1"):
        with pytest.raises(InputError, match="unsupported result version"):
            GroundedResult.from_dict({**data, "version": version})
    data.pop("version")
    with pytest.raises(PixelgroundError, match="reads version 1"):
        GroundedResult.from_dict(data)
    with pytest.raises(ValueError):  # InputError stays a ValueError for older callers
        GroundedResult.from_json(json.dumps({**data, "version": 2}))


def test_region_mask_size_mismatch_is_an_error(segments):
    mask = segments[16757838][1]
    with pytest.raises(ValueError, match="does not match the image"):
        GroundedResult("segment", ImageInfo(width=427, height=640), regions=[Region(mask=mask)])
    data = make_result(segments).to_dict()
    data["image"]["width"] = 641
    with pytest.raises(ValueError, match="does not match"):
        GroundedResult.from_dict(data)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        Region(mask=np.zeros((1, 4, 4), dtype=bool))


# --- video ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sav() -> dict:
    return json.loads((SHARED_DATA / "sav_example" / "sav_000001_manual.json").read_text())


def make_video(sav) -> VideoResult:
    """Two real SA-V masklets over all 121 annotated frames, absent frames skipped."""
    tracks = [Track(id=10, phrase="the person", span=(0, 10)), Track(id=11, label="object")]
    for frame_index, frame in enumerate(sav["masklet"]):
        masks = decode_rle(frame[:2])
        for track, mask in zip(tracks, masks, strict=True):
            track.add(frame_index, mask, score=0.5 + frame_index / 1000)
    return VideoResult(
        task="track",
        video=VideoInfo(
            width=480,
            height=848,
            num_frames=121,
            fps=6.0,
            path="sav_000001.mp4",
            frame_indices=list(range(0, 484, 4)),
        ),
        text="the person and an object",
        tracks=tracks,
        events=[CaptionEvent(0, 20, "someone walks", track_id=10)],
        model={"preset": "test"},
    )


def test_tracks_omit_absent_frames(sav):
    video = make_video(sav)
    visible = [
        [i for i, frame in enumerate(sav["masklet"]) if decode_rle(frame[k]).any()]
        for k in range(2)
    ]
    assert [sorted(t.frames) for t in video] == visible
    assert any(len(v) < 121 for v in visible)  # at least one object disappears somewhere
    sparse = min(video.tracks, key=lambda t: len(t.frames))
    absent = next(i for i in range(121) if i not in sparse.frames)
    assert not sparse.mask(absent, 848, 480).any()
    assert sparse.id not in video.frame_masks(absent)
    assert set(video.frame_masks(absent)) == {t.id for t in video if absent in t.frames}


def test_track_add_empty_mask_removes_the_frame():
    track = Track(id=1)
    mask = np.zeros((4, 5), dtype=bool)
    mask[1, 2] = True
    track.add(3, mask)
    assert list(track.frames) == [3] and track.frames[3].box == (2, 1, 3, 2)
    track.add(3, np.zeros((4, 5), dtype=bool))
    assert track.frames == {}


def test_video_round_trip_is_lossless(sav, tmp_path):
    video = make_video(sav)
    data = video.to_dict()
    assert data["version"] == 1 and data["video"]["frame_indices"][:3] == [0, 4, 8]
    first = sav["masklet"][0][0]
    if decode_rle(first).any():
        assert data["tracks"][0]["frames"][0]["mask"]["counts"] == first["counts"]
    back = VideoResult.from_dict(data)
    assert back.to_dict() == data
    for a, b in zip(video, back, strict=True):
        assert sorted(a.frames) == sorted(b.frames)
        for i in a.frames:
            assert np.array_equal(a.frames[i].mask, b.frames[i].mask)
    path = tmp_path / "video.json"
    video.to_json(path)
    assert VideoResult.from_json(path).to_dict() == data
    assert VideoResult.from_json(video.to_json()).to_dict() == data
    with pytest.raises(ValueError, match="unsupported result version"):
        VideoResult.from_dict({**data, "version": 99})
    with pytest.raises(InputError):
        VideoResult.from_dict({**data, "version": 2})
    with pytest.raises(KeyError):
        video.track(12345)


def test_readers_ignore_keys_added_later_in_the_same_version(sav, segments):
    video = make_video(sav).to_dict()
    video["extra"] = 1
    video["video"]["codec"] = "h264"
    video["tracks"][0]["frames"][0]["new"] = True
    video["events"][0]["language"] = "en"
    back = VideoResult.from_dict(video)
    assert back.events[0] == CaptionEvent(0, 20, "someone walks", track_id=10)
    image = make_result(segments).to_dict()
    image["regions"][0]["polygon"] = [[0, 0, 1, 0, 1, 1]]
    image["image"]["exif"] = {}
    assert GroundedResult.from_dict(image).to_dict() == make_result(segments).to_dict()


def test_frame_mask_keeps_real_rle(sav):
    rle = sav["masklet"][30][0]
    entry = FrameMask.from_mask(decode_rle(rle), score=0.25)
    assert entry.rle == rle
    assert np.array_equal(entry.mask, decode_rle(rle))
    assert entry.box == tuple(masks_to_boxes(decode_rle(rle))[0].tolist())
