"""Write video clips: frame folders, DAVIS-style palette annotations, MeViS-style metadata.

Per clip ``NNNNN`` of a split directory:

- ``JPEGImages/NNNNN/TTTTT.png`` (or ``.jpg``): RGB frames (folder named as in MeViS and
  Ref-YouTube-VOS);
- ``Annotations/NNNNN/TTTTT.png``: palette PNGs (DAVIS palette), value = object id, 0 =
  background;
- a ``videos`` entry in ``meta_expressions.json`` (MeViS / Ref-YouTube-VOS layout: videos ->
  expressions -> ``exp``, ``obj_id``, ``anno_id``; and the frame names);
- per object an entry of ``mask_dict.json`` (MeViS: anno_id -> one RLE or null per frame);
- lines in ``annotations.jsonl`` (one per expression, with a VideoResult as ground truth),
  ``finetune.jsonl`` and ``clips.jsonl``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pixelground.core.masks import encode_rle
from pixelground.core.result import Track, VideoInfo, VideoResult
from pixelground.synth import finetune
from pixelground.synth.output import GENERATOR, Progress, SplitWriter, SynthOptions
from pixelground.synth.scene import SceneConfig
from pixelground.synth.splits import SplitPolicy, expression_filter, sample_rng
from pixelground.synth.video import (
    Clip,
    ClipConfig,
    generate_motion_expressions,
    render_clip,
    sample_clip,
)
from pixelground.viz.colors import davis_palette

FRAMES = "JPEGImages"
ANNOTATIONS = "Annotations"


def write_video(
    writer: SplitWriter,
    policy: SplitPolicy,
    n: int,
    seed: int,
    options: SynthOptions,
    progress: Progress | None,
) -> dict[str, Any]:
    """Generate and write ``n`` clips of a split; returns counts for info.json."""
    config = ClipConfig(num_frames=options.num_frames, scene=SceneConfig(size=options.size))
    palette = davis_palette()
    meta: dict[str, Any] = {"videos": {}}
    mask_dict: dict[str, Any] = {}
    counts: dict[str, Any] = {"videos": 0, "frames": 0, "records": 0, "by_type": {}}
    for index in range(n):
        rng = sample_rng(seed, "video", policy.name, index)
        clip = sample_clip(rng, config, policy.pairs, policy.required_pairs)
        frames, masks = render_clip(clip)
        video = f"{index:05d}"
        names = [f"{t:05d}" for t in range(clip.num_frames)]
        paths = _write_frames(writer, video, names, clip, frames, masks, options, palette)
        anno_ids = {}
        for k, obj in enumerate(clip.objects):
            anno_id = len(mask_dict)
            anno_ids[obj.shape.id] = anno_id
            mask_dict[str(anno_id)] = [encode_rle(m)[0] if m.any() else None for m in masks[:, k]]
        writer.line("clips.jsonl", clip_record(video, paths, clip, masks, anno_ids))
        accept = expression_filter(policy, [o.shape for o in clip.objects])
        focus = [o for o in clip.objects if policy.accepts([o.shape], [])]
        expressions = generate_motion_expressions(
            rng,
            clip.objects,
            options.expressions_per_video,
            accept,
            prefer_pair=0.7 if policy.is_test else 0.0,
            focus=focus,
        )
        entry: dict[str, Any] = {"expressions": {}, "frames": names}
        for j, expression in enumerate(expressions):
            targets = list(expression.targets)
            entry["expressions"][str(j)] = {
                "exp": expression.text,
                "obj_id": targets,
                "anno_id": [anno_ids[i] for i in targets],
            }
            _write_expression(writer, video, paths, clip, masks, j, expression)
            counts["by_type"][expression.type] = counts["by_type"].get(expression.type, 0) + 1
        meta["videos"][video] = entry
        counts["videos"] += 1
        counts["frames"] += clip.num_frames
        counts["records"] += len(expressions)
        if progress is not None:
            progress(1)
    writer.json("meta_expressions.json", meta)
    writer.json("mask_dict.json", mask_dict)
    return counts


def _write_frames(
    writer: SplitWriter,
    video: str,
    names: list[str],
    clip: Clip,
    frames: np.ndarray,
    masks: np.ndarray,
    options: SynthOptions,
    palette: list[int],
) -> list[str]:
    """Write a clip's (T, H, W, 3) frames and (T, N, H, W) masks as id maps; frame paths."""
    ids = [o.shape.id for o in clip.objects]
    paths = []
    for t, name in enumerate(names):
        paths.append(writer.image(f"{FRAMES}/{video}/{name}", frames[t], options))
        ids_map = _label_map(masks[t], ids)
        writer.palette_png(
            f"{ANNOTATIONS}/{video}/{name}.png", ids_map, palette, options.compress_level
        )
    return paths


def _label_map(masks: np.ndarray, ids: list[int]) -> np.ndarray:
    """(N, H, W) disjoint visible masks of objects ``ids`` -> (H, W) uint8 id map (0 = none)."""
    out = np.zeros(masks.shape[1:], dtype=np.uint8)
    for obj_id, mask in zip(ids, masks, strict=True):
        out[mask] = obj_id
    return out


def clip_record(
    video: str, paths: list[str], clip: Clip, masks: np.ndarray, anno_ids: dict[int, int]
) -> dict[str, Any]:
    """One line of clips.jsonl: the clip, and per object its motion and the frames it is on."""
    objects = []
    for k, obj in enumerate(clip.objects):
        present = [t for t in range(clip.num_frames) if masks[t, k].any()]
        shape = obj.shape
        objects.append(
            {
                "id": shape.id,
                "anno_id": anno_ids[shape.id],
                "kind": shape.kind,
                "colour": shape.colour,
                "size": shape.size,
                "texture": shape.texture,
                "motion": obj.motion,
                "direction": obj.direction,
                "side": obj.side,
                "present_frames": present,
            }
        )
    return {
        "video": video,
        "frames": paths,
        "clip": clip.to_dict(),
        "objects": objects,
    }


def _write_expression(
    writer: SplitWriter,
    video: str,
    paths: list[str],
    clip: Clip,
    masks: np.ndarray,
    j: int,
    expression: Any,
) -> None:
    text = expression.text
    tracks = []
    for obj_id in expression.targets:
        k = [o.shape.id for o in clip.objects].index(obj_id)
        track = Track(id=obj_id, phrase=text, span=(0, len(text)), label=clip.objects[k].shape.kind)
        for t in range(clip.num_frames):
            track.add(t, masks[t, k])
        tracks.append(track)
    info = VideoInfo(
        width=clip.width,
        height=clip.height,
        num_frames=clip.num_frames,
        path=f"{FRAMES}/{video}",
        frame_indices=list(range(clip.num_frames)),
    )
    gt = VideoResult(
        task="refer_video", video=info, text=text, tracks=tracks, model={"generator": GENERATOR}
    )
    record_id = f"{video}_{j}"
    writer.line(
        "annotations.jsonl",
        {
            "id": record_id,
            "video": video,
            "frames_dir": f"{FRAMES}/{video}",
            "annotations_dir": f"{ANNOTATIONS}/{video}",
            "expression": text,
            "targets": list(expression.targets),
            "no_target": expression.no_target,
            "type": expression.type,
            "query": expression.query,
            "gt": gt.to_dict(),
        },
    )
    index = [[o.shape.id for o in clip.objects].index(i) for i in expression.targets]
    union = masks[:, index].any(axis=1)
    writer.line(
        "finetune.jsonl", finetune.video_record(record_id, f"{FRAMES}/{video}", paths, text, union)
    )
