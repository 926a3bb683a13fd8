"""Video clips: motion labels agree with the per-frame masks; motion expressions, read back
independently, refer to exactly their targets; the MeViS/DAVIS files agree with each other."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from pixelground.core.masks import decode_rle
from pixelground.core.result import VideoResult
from pixelground.synth.scene import SceneConfig
from pixelground.synth.splits import HELD_OUT_PAIRS, sample_rng
from pixelground.synth.video import ClipConfig, render_clip, sample_clip
from pixelground.synth.writer import VOCABULARY

CONFIG = ClipConfig(num_frames=8, scene=SceneConfig(size=128))
ADJECTIVES = {v: k for k, vs in VOCABULARY.items() if k != "kind" for v in vs}
KINDS = {k: k for k in VOCABULARY["kind"]} | {k + "s": k for k in VOCABULARY["kind"]}
MOTION = {  # words -> (motion label tested, value)
    r"moves? to the (left|right)": "direction",
    r"moves? (up|down)": "direction",
    r"stays? still": "static",
    r"enters? from the (left|right|top|bottom)": "enter",
    r"leaves? (?:to|through) the (left|right|top|bottom)": "leave",
}


def _clip(seed: int):
    clip = sample_clip(sample_rng(seed, "video", "train", 0), CONFIG)
    return clip, *render_clip(clip)


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("seed", range(16))
def test_masks_follow_the_motion_labels(seed):
    clip, frames, masks = _clip(seed)
    t_count = clip.num_frames
    assert frames.shape == (t_count, 128, 128, 3) and frames.dtype == np.uint8
    assert masks.shape == (t_count, len(clip.objects), 128, 128)
    assert masks.sum(axis=1).max() <= 1  # one object per pixel
    for k, obj in enumerate(clip.objects):
        present = [t for t in range(t_count) if masks[t, k].any()]
        first, last = masks[present[0], k], masks[present[-1], k]
        if obj.motion == "enter":
            assert not masks[0, k].any() and masks[-1, k].any()
            edge = {
                "left": first[:, 0],
                "right": first[:, -1],
                "top": first[0],
                "bottom": first[-1],
            }
            assert edge[obj.side].any()  # comes in across the named side
        elif obj.motion == "leave":
            assert masks[0, k].any() and not masks[-1, k].any()
            edge = {"left": last[:, 0], "right": last[:, -1], "top": last[0], "bottom": last[-1]}
            assert edge[obj.side].any()
        else:
            assert len(present) == t_count  # never leaves, never fully hidden
        if obj.motion == "static":
            assert obj.start == obj.end
            continue
        dx, dy = _geometric_shift(clip, k)
        expected = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[obj.direction]
        major, minor = (dx, dy) if expected[0] else (dy, dx)
        assert np.sign(major) == sum(expected) and abs(major) > 4 * abs(minor)
        if obj.motion == "move":  # the visible mask moves the same way
            shift = _centroid(last) - _centroid(first)
            assert np.sign(shift[0 if expected[0] else 1]) == sum(expected)


def _geometric_shift(clip, k):
    a, b = (
        clip.objects[k].at(0, clip.num_frames),
        clip.objects[k].at(clip.num_frames - 1, clip.num_frames),
    )
    return b.cx - a.cx, b.cy - a.cy


def test_same_seed_same_clip_different_seed_differs():
    _, a, ma = _clip(2)
    _, b, mb = _clip(2)
    _, c, _ = _clip(3)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(a, c)


def parse_motion(text: str) -> dict:
    """ "the small red circle that moves up" -> desc, motion label and value, plural."""
    m = re.fullmatch(r"(the|all) (.+?)(?: that (.+))?", text)
    assert m, text
    *adjectives, noun = m[2].split()
    desc = {ADJECTIVES[w]: w for w in adjectives}
    if noun not in ("shape", "shapes"):
        desc["kind"] = KINDS[noun]
    motion = None
    if m[3]:
        for pattern, label in MOTION.items():
            if mm := re.fullmatch(pattern, m[3]):
                motion = (label, mm.groups()[0] if mm.groups() else None)
        assert motion, text
    return {"all": m[1] == "all", "desc": desc, "motion": motion}


def _does(obj: dict, motion) -> bool:
    label, value = motion
    if label == "direction":
        return obj["direction"] == value
    if label == "static":
        return obj["motion"] == "static"
    return obj["motion"] == label and obj["side"] == value


@pytest.mark.parametrize("split", ["train", "test"])
def test_written_video_split_is_consistent(synth_root, jsonl, split):
    folder = synth_root / "video" / split
    clips = {c["video"]: c for c in jsonl(folder / "clips.jsonl")}
    meta = json.loads((folder / "meta_expressions.json").read_text())["videos"]
    mask_dict = json.loads((folder / "mask_dict.json").read_text())
    held = {tuple(p) for p in HELD_OUT_PAIRS}
    annotations = jsonl(folder / "annotations.jsonl")
    assert annotations and set(meta) == set(clips)
    for ann in annotations:
        clip = clips[ann["video"]]
        objects = {o["id"]: o for o in clip["objects"]}
        meaning = parse_motion(ann["expression"])
        found = [
            i for i, o in objects.items()
            if all(o[k] == v for k, v in meaning["desc"].items())
            and (meaning["motion"] is None or _does(o, meaning["motion"]))
        ]  # fmt: skip
        assert found == ann["targets"], ann["expression"]
        assert len(found) >= 2 if meaning["all"] else len(found) == 1
        pairs = {(objects[i]["colour"], objects[i]["kind"]) for i in found}
        assert bool(pairs & held) == (split == "test")
        exp = meta[ann["video"]]["expressions"][ann["id"].split("_")[1]]
        assert exp["exp"] == ann["expression"] and exp["obj_id"] == ann["targets"]
        gt = VideoResult.from_dict(ann["gt"])
        assert [t.id for t in gt.tracks] == ann["targets"]
        for track, anno_id in zip(gt.tracks, exp["anno_id"], strict=True):
            assert sorted(track.frames) == objects[track.id]["present_frames"]
            for t, rle in enumerate(mask_dict[str(anno_id)]):
                assert (rle is None) == (t not in track.frames)
                if rle is not None:
                    assert np.array_equal(decode_rle(rle), track.frames[t].mask)
    _check_palette_pngs(folder, clips, mask_dict)


def _check_palette_pngs(folder, clips, mask_dict):
    for video, clip in list(clips.items())[:3]:
        names = sorted(p.stem for p in (folder / "Annotations" / video).glob("*.png"))
        assert len(names) == clip["clip"]["num_frames"] == len(clip["frames"])
        for t, name in enumerate(names):
            with Image.open(folder / "Annotations" / video / f"{name}.png") as image:
                assert image.mode == "P"
                ids = np.asarray(image)
            for obj in clip["objects"]:
                rle = mask_dict[str(obj["anno_id"])][t]
                expected = decode_rle(rle) if rle else np.zeros_like(ids, dtype=bool)
                assert np.array_equal(ids == obj["id"], expected)
            assert (folder / clip["frames"][t]).is_file()
