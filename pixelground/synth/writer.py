"""Write a split of the procedural benchmark to disk, in the formats the evaluator reads.

``write_split(root, task, split, n, seed)`` writes ``root/<task>/<split>/`` (layout and every
file format in docs/synth.md). Sample ``i`` depends only on (seed, task, split, i), and every
file is written in a fixed order with fixed PNG settings, so the same arguments give
byte-identical output.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.masks import encode_rle, masks_to_boxes
from pixelground.core.result import GroundedResult, ImageInfo, Region
from pixelground.synth import finetune
from pixelground.synth.captions import grounded_caption, region_caption
from pixelground.synth.language import ExpressionConfig, generate_expressions
from pixelground.synth.output import GENERATOR, Progress, SplitWriter, SynthOptions
from pixelground.synth.paraphrase import paraphrase
from pixelground.synth.render import Rendered, render_scene
from pixelground.synth.scene import (
    COLOURS,
    KINDS,
    SIZES,
    TEXTURES,
    Scene,
    SceneConfig,
    sample_scene,
)
from pixelground.synth.splits import (
    HELD_OUT_PAIRS,
    REWORDED_SPLITS,
    REWORDED_TASKS,
    SPLITS,
    TASKS,
    SplitPolicy,
    expression_filter,
    sample_rng,
    split_policy,
)
from pixelground.synth.video_writer import write_video

FORMAT_VERSION = 1
VOCABULARY: dict[str, tuple[str, ...]] = {
    "size": SIZES,
    "texture": TEXTURES,
    "colour": tuple(COLOURS),
    "kind": KINDS,
}


def split_dir(root: str | Path, task: str, split: str) -> Path:
    """Where ``write_split`` puts a split: ``root/<task>/<split>``."""
    return Path(root) / task / split


def write_split(
    root: str | Path,
    task: str,
    split: str,
    n: int,
    seed: int = 0,
    options: SynthOptions | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate ``n`` images (or clips) of one task and split and write them.

    Args:
        root: output root; the split goes to ``root/<task>/<split>``.
        task: "refer", "gcg", "region" or "video".
        split: one of ``splits.SPLITS``.
        n: number of images (videos for task "video").
        seed: non-negative seed; same arguments -> byte-identical files.
        options: sizes and per-sample counts.
        progress: called with 1 after each sample.
        overwrite: replace an existing non-empty split directory instead of refusing.

    Returns:
        The split's ``info.json`` content (counts, options, held-out pairs, file names).

    Raises:
        InputError: unknown task or split, negative n or seed, or an existing non-empty
            directory without ``overwrite``.
    """
    options = options or SynthOptions()
    _validate(task, split, n, seed, options)
    directory = split_dir(root, task, split)
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise InputError(
                f"{directory} already holds files; choose another DIR or pass --overwrite"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    policy = split_policy(split)
    writer = SplitWriter(directory)
    try:
        if task == "video":
            counts = write_video(writer, policy, n, seed, options, progress)
        else:
            reworded = split if split in REWORDED_SPLITS else None
            counts = _write_images(writer, task, policy, n, seed, options, progress, reworded)
    finally:
        writer.close()
    info = _info(task, split, n, seed, options, counts, sorted({*writer.written, "info.json"}))
    writer.json("info.json", info)
    return info


def _info(
    task: str,
    split: str,
    n: int,
    seed: int,
    options: SynthOptions,
    counts: dict[str, Any],
    files: list[str],
) -> dict[str, Any]:
    """The content of a split's info.json."""
    return {
        "format": GENERATOR,
        "version": FORMAT_VERSION,
        "task": task,
        "split": split,
        "n": n,
        "seed": seed,
        "options": asdict(options),
        "held_out_pairs": [list(p) for p in HELD_OUT_PAIRS],
        "vocabulary": {k: list(v) for k, v in VOCABULARY.items()},
        "files": files,
        "counts": counts,
        "prompts": {
            "refer": finetune.REFER_PROMPT,
            "gcg": finetune.GCG_PROMPT,
            "region": finetune.REGION_PROMPT,
            "video": finetune.VIDEO_PROMPT,
            "no_target_answer": finetune.NO_TARGET_ANSWER,
        },
    }


def _validate(task: str, split: str, n: int, seed: int, options: SynthOptions) -> None:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} (or all)")
    if split in REWORDED_SPLITS and task not in REWORDED_TASKS:
        raise InputError(
            f"the {split} split exists for {', '.join(REWORDED_TASKS)} only (got --task {task})"
        )
    if n < 0 or seed < 0:
        raise InputError(f"--n and --seed must be >= 0 (got n={n}, seed={seed})")
    if options.size < 64:
        raise InputError(f"--size must be at least 64 pixels (got {options.size})")
    if options.num_frames < 2:
        raise InputError(f"clips need at least 2 frames (got {options.num_frames})")
    if options.image_format not in ("png", "jpg"):
        raise InputError(f"image format must be png or jpg (got {options.image_format!r})")


def _write_images(
    writer: SplitWriter,
    task: str,
    policy: SplitPolicy,
    n: int,
    seed: int,
    options: SynthOptions,
    progress: Progress | None,
    reworded: str | None = None,
) -> dict[str, Any]:
    """Write ``n`` images of ``policy``'s samples; a ``reworded`` split (``paraphrase``) words
    their expressions with ``paraphrase.paraphrase`` and writes no fine-tuning lines."""
    config = SceneConfig(size=options.size)
    counts: dict[str, Any] = {"images": 0, "records": 0, "by_type": {}}
    coco = _CocoFiles() if task in ("gcg", "region") else None
    for index in range(n):
        rng = sample_rng(seed, task, policy.name, index)
        scene = sample_scene(rng, config, policy.pairs, policy.required_pairs)
        rendered = render_scene(scene)
        image = writer.image(f"images/{index:05d}", rendered.image, options)
        writer.line("scenes.jsonl", scene_record(index, image, scene, rendered))
        sample = _Sample(index, image, scene, rendered, rng)
        if reworded is not None:
            sample.reword = sample_rng(seed, task, reworded, index)
        if task == "refer":
            records = _refer(writer, sample, policy, options)
        elif task == "gcg":
            records = _gcg(writer, sample, coco)
        else:
            records = _region(writer, sample, policy, options, coco)
        counts["images"] += 1
        counts["records"] += len(records)
        for kind in records:
            counts["by_type"][kind] = counts["by_type"].get(kind, 0) + 1
        if progress is not None:
            progress(1)
    if coco is not None:
        coco.write(writer, task, policy.name)
    return counts


@dataclass
class _Sample:
    index: int
    image: str
    scene: Scene
    rendered: Rendered
    rng: np.random.Generator
    reword: np.random.Generator | None = None  # words the expressions anew (paraphrase)

    def info(self) -> ImageInfo:
        return ImageInfo(width=self.scene.width, height=self.scene.height, path=self.image)

    def visible(self, shape_id: int) -> np.ndarray:
        return self.rendered.visible[list(self.rendered.ids).index(shape_id)]


def scene_record(index: int, image: str, scene: Scene, rendered: Rendered) -> dict[str, Any]:
    """One line of scenes.jsonl: the scene and every object's visible mask and box."""
    objects = []
    boxes = masks_to_boxes(rendered.visible) if len(rendered.ids) else np.zeros((0, 4))
    rles = encode_rle(rendered.visible) if len(rendered.ids) else []
    for i, shape in enumerate(scene.shapes):
        full_area = int(rendered.full[i].sum())
        area = int(rendered.visible[i].sum())
        objects.append(
            {
                "id": shape.id,
                **{k: shape.attribute(k) for k in VOCABULARY},
                "depth": i,
                "box": [float(v) for v in boxes[i]],
                "area": area,
                "visible_fraction": round(area / max(full_area, 1), 4),
                "mask": rles[i],
            }
        )
    return {"index": index, "image": image, "scene": scene.to_dict(), "objects": objects}


def _shape_region(sample: _Sample, shape_id: int, **fields: Any) -> Region:
    shape = sample.scene.shape(shape_id)
    attributes = {k: shape.attribute(k) for k in VOCABULARY}
    return Region(
        mask=sample.visible(shape_id),
        id=shape_id,
        label=shape.kind,
        attributes=attributes,
        **fields,
    )


def _refer(
    writer: SplitWriter, sample: _Sample, policy: SplitPolicy, options: SynthOptions
) -> list[str]:
    shapes = sample.scene.shapes
    config = ExpressionConfig(
        margin=0.05 * options.size, prefer_pair=0.7 if policy.is_test else 0.0
    )
    accept = expression_filter(policy, shapes)
    focus = [s for s in shapes if policy.accepts([s], [])]
    expressions = generate_expressions(
        sample.rng, shapes, options.expressions_per_image, VOCABULARY, config, accept, focus
    )
    for j, expression in enumerate(expressions):
        record_id = f"{sample.index:05d}_{j}"
        text = expression.text
        if sample.reword is not None:
            text = paraphrase(expression.query, len(expression.targets), sample.reword)
        span = (0, len(text))
        regions = [_shape_region(sample, i, phrase=text, span=span) for i in expression.targets]
        gt = GroundedResult(
            task="refer",
            image=sample.info(),
            text=text,
            regions=regions,
            model={"generator": GENERATOR},
        )
        writer.line(
            "annotations.jsonl",
            {
                "id": record_id,
                "image": sample.image,
                "expression": text,
                "targets": list(expression.targets),
                "no_target": expression.no_target,
                "type": expression.type,
                "query": expression.query,
                "gt": gt.to_dict(),
            },
        )
        if sample.reword is not None:
            continue  # never a training line
        union = gt.union_mask() if regions else None
        writer.line("finetune.jsonl", finetune.refer_record(record_id, sample.image, text, union))
    return [e.type for e in expressions]


def _gcg(writer: SplitWriter, sample: _Sample, coco: _CocoFiles) -> list[str]:
    caption = grounded_caption(sample.scene)
    regions = [_shape_region(sample, i, phrase=p, span=s) for p, s, i in caption.phrases]
    gt = GroundedResult(
        task="gcg",
        image=sample.info(),
        text=caption.text,
        regions=regions,
        model={"generator": GENERATOR},
    )
    record_id = f"{sample.index:05d}"
    phrases = [p for p, _, _ in caption.phrases]
    writer.line(
        "annotations.jsonl",
        {
            "id": record_id,
            "image": sample.image,
            "caption": caption.text,
            "phrases": phrases,
            "gt": gt.to_dict(),
        },
    )
    writer.line(
        "finetune.jsonl", finetune.gcg_record(record_id, sample.image, caption.markup, gt.masks)
    )
    coco.add_image(record_id, sample)
    coco.captions.append(
        {
            "id": len(coco.captions) + 1,
            "image_id": record_id,
            "caption": caption.text,
            "labels": phrases,
        }
    )
    for region in regions:
        coco.add_mask(record_id, region.mask)
    return ["gcg"]


def _region(
    writer: SplitWriter,
    sample: _Sample,
    policy: SplitPolicy,
    options: SynthOptions,
    coco: _CocoFiles,
) -> list[str]:
    scene, rendered = sample.scene, sample.rendered
    candidates = [s for s in scene.shapes if policy.accepts([s], [])]
    order = sample.rng.permutation(len(candidates))[: options.regions_per_image]
    out = []
    for j, k in enumerate(sorted(int(v) for v in order)):
        shape = candidates[k]
        text = region_caption(scene, shape.id, rendered.full, rendered.visible)
        region = _shape_region(sample, shape.id, phrase=None)
        region.label = f"{shape.colour} {shape.kind}"
        region.attributes["caption"] = text
        gt = GroundedResult(
            task="region",
            image=sample.info(),
            text=text,
            regions=[region],
            model={"generator": GENERATOR},
        )
        record_id = f"{sample.index:05d}_{j}"
        mask_rle = encode_rle(region.mask)[0]
        writer.line(
            "annotations.jsonl",
            {
                "id": record_id,
                "image": sample.image,
                "region_id": shape.id,
                "box": list(region.box),
                "mask": mask_rle,
                "label": region.label,
                "caption": text,
                "gt": gt.to_dict(),
            },
        )
        writer.line(
            "finetune.jsonl", finetune.region_record(record_id, sample.image, region.mask, text)
        )
        coco.add_image(record_id, sample, bbox=list(region.box))
        coco.captions.append({"id": len(coco.captions) + 1, "image_id": record_id, "caption": text})
        out.append("region")
    return out


class _CocoFiles:
    """GranD-f style COCO files: ``<split>_gcg_coco_{mask,caption}_gt.json`` (GLaMM's evaluate
    reads them) and, for regions, ``<split>_region_coco_caption_gt.json``."""

    def __init__(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.masks: list[dict[str, Any]] = []
        self.captions: list[dict[str, Any]] = []

    def add_image(self, image_id: str, sample: _Sample, **extra: Any) -> None:
        self.images.append(
            {
                "id": image_id,
                "file_name": sample.image,
                "height": sample.scene.height,
                "width": sample.scene.width,
                **extra,
            }
        )

    def add_mask(self, image_id: str, mask: np.ndarray) -> None:
        box = masks_to_boxes(mask)[0]
        self.masks.append(
            {
                "id": len(self.masks) + 1,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": encode_rle(mask)[0],
                "area": int(mask.sum()),
                "bbox": [
                    float(box[0]),
                    float(box[1]),
                    float(box[2] - box[0]),
                    float(box[3] - box[1]),
                ],
            }
        )

    def write(self, writer: SplitWriter, task: str, split: str) -> None:
        categories = [{"id": 1, "name": "object"}]
        if task == "gcg":
            writer.json(
                f"{split}_gcg_coco_mask_gt.json",
                {"images": self.images, "annotations": self.masks, "categories": categories},
            )
            writer.json(
                f"{split}_gcg_coco_caption_gt.json",
                {"images": self.images, "annotations": self.captions},
            )
        else:
            writer.json(
                f"{split}_region_coco_caption_gt.json",
                {"images": self.images, "annotations": self.captions},
            )
