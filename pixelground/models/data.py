"""Fine-tuning data: the JSONL reader and validator, the torch Dataset, and collate.

One JSON object per line::

    {"image": "images/000001.png",
     "conversation": [{"role": "user", "content": "Please segment the small red triangle."},
                      {"role": "assistant", "content": "[SEG]"}],
     "masks": [{"size": [256, 256], "counts": "..."}],
     "regions": [{"size": [256, 256], "counts": "..."}]}

``image`` is relative to the JSONL file's folder (or absolute). ``masks`` are COCO RLE at the
image's size, one per ``[SEG]`` of the conversation in order. ``regions`` (optional) are RLE
masks, one per ``<region>`` marker in order. A video line gives ``frames`` (the frame image
paths, in order) instead of ``image``, and each entry of ``masks`` is then a list with one
RLE per frame (an empty mask where the target is absent). A line with a missing image, a
mask of the wrong size or a marker/mask count mismatch is reported with its line number and
either skipped (``on_error="skip"``) or refused (``on_error="raise"``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pixelground.core.colours import COLOUR_WORDS
from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle
from pixelground.core.media import load_image
from pixelground.models.config import REGION_TOKEN, SEG_TOKEN, SegModelConfig
from pixelground.models.tokenizer import IGNORE_INDEX, TokenIds, encode_conversation

logger = logging.getLogger(__name__)

ON_ERROR = ("skip", "raise")

# A training line whose text names a colour (core.colours.COLOUR_WORDS) is never hue-rotated
# (see SegDataset): rotating the hue of "the red triangle" would make its text wrong.

_COLOUR_WORD = re.compile(rf"\b(?:{'|'.join(sorted(COLOUR_WORDS))})\b ?", re.IGNORECASE)
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def names_colour(texts: Sequence[str]) -> bool:
    """True when any of ``texts`` contains a word of COLOUR_WORDS (case-insensitive)."""
    words = {w.strip(".,;:!?()[]'\"").lower() for text in texts for w in text.split()}
    return not words.isdisjoint(COLOUR_WORDS)


def drop_colour_words(text: str) -> str:
    """``text`` without its words of COLOUR_WORDS: "<p>a large red star</p>" -> "<p>a large
    star</p>"."""
    return _COLOUR_WORD.sub("", text)


def rotate_hue(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate the hue of an RGB uint8 (H, W, 3) image by ``angle`` radians.

    The chroma plane of YIQ space is rotated and luma kept, so shapes, textures and
    brightness stay while every colour moves round the colour wheel.
    """
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    matrix = (_YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ).astype(np.float32)
    rotated = image.astype(np.float32) @ matrix.T
    return np.clip(rotated + 0.5, 0, 255).astype(np.uint8)


class DataLineError(InputError):
    """A bad line of a fine-tuning JSONL file (``path`` and 1-based ``line`` attached)."""

    def __init__(self, path: Path, line: int, problem: str):
        self.path, self.line, self.problem = path, line, problem
        super().__init__(
            f"{path} line {line}: {problem}; fix the line, or skip bad lines with "
            "on_error='skip' (CLI: --on-error skip)"
        )


@dataclass
class Sample:
    """One validated line.

    Attributes:
        line: 1-based line number in its file.
        frames: resolved image path(s): one for an image, T for a video.
        size: (H, W) of the image / frames.
        conversation: turns ``{"role", "content"}``.
        masks: per [SEG], in order: one COCO RLE per frame.
        regions: COCO RLE per ``<region>``, in order (on the first frame).
        video: whether the line is a video line (``frames``) rather than an image line.
    """

    line: int
    frames: list[Path]
    size: tuple[int, int]
    conversation: list[dict[str, str]]
    masks: list[list[dict[str, Any]]] = field(default_factory=list)
    regions: list[dict[str, Any]] = field(default_factory=list)
    video: bool = False

    @property
    def image(self) -> Path:
        """The image (the first frame of a video)."""
        return self.frames[0]


@dataclass
class FinetuneData:
    """Samples of a JSONL file and the problems of the lines that were skipped."""

    path: Path
    samples: list[Sample]
    problems: list[DataLineError]

    def texts(self) -> list[str]:
        """Every turn's text (to build a vocabulary)."""
        return [turn["content"] for s in self.samples for turn in s.conversation]


class _Bad(Exception):
    """A problem with one line (turned into DataLineError with the line number)."""


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except OSError as error:
        raise _Bad(f"image {str(path)!r} cannot be read ({error})") from error


def _resolve_image(name: Any, base: Path) -> Path:
    if not isinstance(name, str) or not name:
        raise _Bad("'image' must be a non-empty path string")
    candidates = [Path(name)] if Path(name).is_absolute() else [base / name, Path(name)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise _Bad(f"image {name!r} not found (looked for {candidates[0]})")


def _check_conversation(conversation: Any) -> list[dict[str, str]]:
    ok = (
        isinstance(conversation, list)
        and conversation
        and all(
            isinstance(t, dict)
            and t.get("role") in ("user", "assistant")
            and isinstance(t.get("content"), str)
            for t in conversation
        )
    )
    if not ok:
        raise _Bad("'conversation' must be a non-empty list of {role: user|assistant, content}")
    if not any(t["role"] == "assistant" for t in conversation):
        raise _Bad("'conversation' has no assistant turn to learn from")
    return [{"role": t["role"], "content": t["content"]} for t in conversation]


def _check_rle(rle: Any, what: str, size: tuple[int, int]) -> dict[str, Any]:
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise _Bad(f"{what} is not a COCO RLE dict with 'size' and 'counts'")
    if tuple(rle["size"]) != size:
        h, w = rle["size"]
        raise _Bad(f"{what} is {h}x{w} (HxW) but the image is {size[0]}x{size[1]}")
    return rle


def _check_counts(found: int, given: int, marker: str, key: str) -> None:
    if found > given:
        raise _Bad(f"the text has {found} {marker} markers but only {given} {key}")
    if found < given:
        raise _Bad(f"the text has {found} {marker} markers but {given} {key} (one each)")


def _check_masks(masks: Any, count: int, size: tuple[int, int], frames: int | None) -> list:
    """Masks per [SEG]: an RLE each (image) or a list of one RLE per frame (video)."""
    masks = [] if masks is None else masks
    if not isinstance(masks, list):
        raise _Bad("'masks' must be a list of COCO RLE dicts")
    _check_counts(count, len(masks), SEG_TOKEN, "masks")
    out = []
    for i, entry in enumerate(masks, 1):
        if frames is None:
            out.append([_check_rle(entry, f"mask {i}", size)])
            continue
        if not isinstance(entry, list) or len(entry) != frames:
            raise _Bad(f"mask {i} must be a list of {frames} RLEs, one per frame")
        out.append([_check_rle(r, f"mask {i} frame {t}", size) for t, r in enumerate(entry)])
    return out


def _check_frames(record: dict[str, Any], base: Path) -> tuple[list[Path], tuple[int, int]]:
    names = record["frames"]
    if not isinstance(names, list) or not names:
        raise _Bad("'frames' must be a non-empty list of image paths")
    frames = [_resolve_image(name, base) for name in names]
    size = _image_size(frames[0])
    for name, frame in zip(names[1:], frames[1:], strict=True):
        if _image_size(frame) != size:
            raise _Bad(f"frame {name!r} is not {size[0]}x{size[1]} like the first frame")
    return frames, size


def check_record(record: Any, line: int, base: Path) -> Sample:
    """Validate one parsed line; raise ``_Bad`` with a plain message when it is unusable."""
    if not isinstance(record, dict):
        raise _Bad("the line is not a JSON object")
    video = "frames" in record
    for key in ("frames" if video else "image", "conversation"):
        if key not in record:
            raise _Bad(f"missing key {key!r}")
    conversation = _check_conversation(record["conversation"])
    if video:
        frames, size = _check_frames(record, base)
    else:
        frames = [_resolve_image(record["image"], base)]
        size = _image_size(frames[0])
    text = " ".join(t["content"] for t in conversation)
    masks = _check_masks(
        record.get("masks"), text.count(SEG_TOKEN), size, len(frames) if video else None
    )
    regions = record.get("regions") or []
    if not isinstance(regions, list):
        raise _Bad("'regions' must be a list of COCO RLE dicts")
    _check_counts(text.count(REGION_TOKEN), len(regions), REGION_TOKEN, "regions")
    regions = [_check_rle(r, f"region {i}", size) for i, r in enumerate(regions, 1)]
    return Sample(line, frames, size, conversation, masks, regions, video)


def _parse_line(text: str) -> Any:
    """One JSONL line parsed; _Bad naming the column (on this line) where the JSON breaks."""
    line = text.rstrip("\r\n")  # a trailing newline would move an error at the end to line 2
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        at = " " if error.msg.endswith(" at") else " at "  # "Invalid control character at"
        where = f"{error.msg}{at}column {error.pos + 1}"
        if error.pos >= len(line):
            where += f", the end of the line (it stops at column {len(line)})"
        raise _Bad(f"not valid JSON: {where}") from None


def read_finetune_jsonl(path: str | Path, on_error: str = "raise") -> FinetuneData:
    """Read and validate a fine-tuning JSONL file.

    Args:
        path: the JSONL file.
        on_error: "raise" refuses the file at its first bad line; "skip" logs and skips it.

    Returns:
        FinetuneData with the good samples and the skipped lines' errors.

    Raises:
        DataLineError: a bad line when ``on_error="raise"``.
        InputError: a missing file, a bad ``on_error``, or no usable line at all.
    """
    if on_error not in ON_ERROR:
        raise InputError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"fine-tuning data {path} not found; pass a JSONL file (docs/models.md)")
    samples: list[Sample] = []
    problems: list[DataLineError] = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                record = _parse_line(text)
                samples.append(check_record(record, number, path.parent))
            except _Bad as bad:
                problem = DataLineError(path, number, str(bad))
                if on_error == "raise":
                    raise problem from None
                logger.warning("skipping %s line %d: %s", path, number, bad)
                problems.append(problem)
    if not samples:
        raise InputError(f"{path} has no usable line ({len(problems)} skipped as bad)")
    return FinetuneData(path, samples, problems)


def preprocess_image(image: np.ndarray, config: SegModelConfig) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> normalised float (3, S, S) with S = ``config.image_size``."""
    size = config.image_size
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
    if pixels.shape[-2:] != (size, size):
        pixels = F.interpolate(
            pixels[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )[0]
    mean = torch.tensor(config.image_mean)[:, None, None]
    std = torch.tensor(config.image_std)[:, None, None]
    return (pixels - mean) / std


def masks_tensor(rles: Sequence[dict[str, Any]], size: int) -> torch.Tensor:
    """COCO RLEs -> (N, size, size) float masks (area-resampled when the size differs)."""
    if not rles:
        return torch.zeros((0, size, size))
    masks = torch.from_numpy(decode_rle(list(rles))).float()
    if masks.shape[-2:] != (size, size):
        masks = F.interpolate(
            masks[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )[0]
    return masks


class SegDataset(torch.utils.data.Dataset):
    """Tokenised samples with their frames and masks, ready for :func:`collate`.

    Args:
        samples: validated samples.
        tokenizer: the model's tokenizer.
        config: the model config (image size, visual token counts, lengths).
        train: pick a random sorted subset of ``video_frames`` frames of a video (else evenly
            spaced ones, as at inference).
        hue_augment: with ``train``, the probability of rotating a line's image(s) by a random
            hue when its text names no colour (COLOUR_WORDS), so that shape, size and texture
            are learned apart from colour (as referring-segmentation training skips flips when
            the text says left or right).
        colour_blind_hue: with ``train``, the probability of rotating a line's image(s) by a
            random hue whatever its text says; the item is then ``colour_blind`` and the
            phrase-word losses leave the colour words out of its targets. Only for training
            that reads no other target from the text (``first_words_only``).
        colour_drop_hue: with ``train``, the probability of rotating a line's image(s) by a
            random hue when its colour words are all in its answers (a grounded caption, a
            region's description): they are dropped from the answers, which stay true of
            the rotated image, and the item is ``colour_blind``.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        tokenizer: Any,
        config: SegModelConfig,
        train: bool = True,
        hue_augment: float = 0.0,
        colour_blind_hue: float = 0.0,
        colour_drop_hue: float = 0.0,
    ):
        self.samples = list(samples)
        self.tokenizer = tokenizer
        self.config = config
        self.train = train
        self.hue_augment = hue_augment
        self.colour_blind_hue = colour_blind_hue
        self.colour_drop_hue = colour_drop_hue
        self.ids = TokenIds.of(tokenizer)

    def __len__(self) -> int:
        return len(self.samples)

    def _pick_frames(self, sample: Sample) -> tuple[list[int], list[float]]:
        total = len(sample.frames)
        if not sample.video:
            return [0], [-1.0]
        count = min(self.config.video_frames, total)
        if self.train:
            picks = sorted(torch.randperm(total)[:count].tolist())
        else:
            picks = sorted({int(round(v)) for v in np.linspace(0, total - 1, count)})
        return picks, [i / max(total - 1, 1) for i in picks]

    def _hue_rotation(self, sample: Sample) -> tuple[bool, bool, bool]:
        """Whether to rotate the line's hue, whether it is then colour-blind, and whether its
        answers' colour words are dropped."""
        if not self.train:
            return False, False, False
        if self.colour_blind_hue > 0 and torch.rand(()) < self.colour_blind_hue:
            return True, True, False
        if not names_colour([t["content"] for t in sample.conversation]):
            rotates = self.hue_augment > 0 and bool(torch.rand(()) < self.hue_augment)
            return rotates, False, False
        questions = [t["content"] for t in sample.conversation if t["role"] != "assistant"]
        if self.colour_drop_hue > 0 and not names_colour(questions):
            drops = bool(torch.rand(()) < self.colour_drop_hue)
            return drops, drops, drops
        return False, False, False

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        picks, times = self._pick_frames(sample)
        rotates, colour_blind, drops_colours = self._hue_rotation(sample)
        conversation = sample.conversation
        if drops_colours:
            conversation = [
                {**t, "content": drop_colour_words(t["content"])} if t["role"] == "assistant" else t
                for t in conversation
            ]
        per_frame = (self.config.video_lm_grid if sample.video else self.config.lm_grid) ** 2
        input_ids, labels = encode_conversation(
            self.tokenizer,
            conversation,
            per_frame * len(picks),
        )
        limit = self.config.max_length
        if len(input_ids) > limit:
            logger.warning("line %d is %d tokens; cut to %d", sample.line, len(input_ids), limit)
            input_ids, labels = input_ids[:limit], labels[:limit]
        seg_count = input_ids.count(self.ids.seg)
        region_count = input_ids.count(self.ids.region)
        size = self.config.image_size
        rles = [per_seg[i] for per_seg in sample.masks[:seg_count] for i in picks]
        frames = [load_image(sample.frames[i]).pixels for i in picks]
        keys = [str(sample.frames[i]) for i in picks]
        if rotates:
            angle = float(torch.rand(())) * 2 * np.pi
            frames = [rotate_hue(frame, angle) for frame in frames]
            keys = [f"{key}#hue={angle:.6f}" for key in keys]
        return {
            "frame_keys": keys,
            "pixel_values": torch.stack([preprocess_image(f, self.config) for f in frames]),
            "frame_times": torch.tensor(times, dtype=torch.float32),
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "gt_masks": masks_tensor(rles, size),
            "region_masks": masks_tensor(sample.regions[:region_count], size),
            "colour_blind": colour_blind,
        }


def collate(batch: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Stack a list of dataset items into a right-padded batch.

    Frames shared by several items (expressions about one image) are stored once.

    Returns:
        pixel_values (U, 3, S, S) the distinct frames; frame_image (F,) which of them each
        item's frame is (F frames, row-major); frame_sample (F,) the row of each frame;
        frame_times (F,); input_ids, labels, attention_mask (B, L); gt_masks (M, S, S) and
        region_masks (R, S, S) concatenated in row-major marker order; colour_blind (B,)
        the rows whose colour words are no targets (see ``SegDataset``).
    """
    length = max(len(item["input_ids"]) for item in batch)
    count = len(batch)
    input_ids = torch.full((count, length), pad_id, dtype=torch.long)
    labels = torch.full((count, length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((count, length), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        input_ids[row, :n] = item["input_ids"]
        labels[row, :n] = item["labels"]
        attention[row, :n] = 1
    distinct: dict[str, int] = {}
    pixels, frame_image = [], []
    for item in batch:
        keys = item.get("frame_keys") or [None] * len(item["pixel_values"])
        for key, frame in zip(keys, item["pixel_values"], strict=True):
            if key is None or key not in distinct:
                distinct[key if key is not None else f"#{len(pixels)}"] = len(pixels)
                pixels.append(frame)
            frame_image.append(distinct[key] if key is not None else len(pixels) - 1)
    frames = torch.tensor([len(item["pixel_values"]) for item in batch])
    return {
        "pixel_values": torch.stack(pixels),
        "frame_image": torch.tensor(frame_image),
        "frame_sample": torch.repeat_interleave(torch.arange(count), frames),
        "frame_times": torch.cat([item["frame_times"] for item in batch]),
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": attention,
        "gt_masks": torch.cat([item["gt_masks"] for item in batch]),
        "region_masks": torch.cat([item["region_masks"] for item in batch]),
        "colour_blind": torch.tensor([bool(item.get("colour_blind")) for item in batch]),
    }
