"""What the video tasks share: key frames, grounding text on them, and starting tracks there.

A video task grounds text on a few *key frames* sampled evenly across the video (first and
last frame included), not only on frame 0, and starts tracks on the frame where the grounding
is most confident. The image-side detector boxes the text on each key frame (detections are
cached per frame, so a frame is never detected twice), the image segmenter turns the kept
boxes into masks (without a segmenter the boxes go to the tracker as box prompts), and
``Candidate.prompt`` is what the tracking session receives. New detections are matched to the
masks of existing tracks by IoU so that the same object never gets two tracks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.backends.base import DETECTION_THRESHOLD, Detection, Detector, Segmenter
from pixelground.backends.sam2_video import FrameTracks
from pixelground.core.errors import InputError
from pixelground.core.frames import FrameSource
from pixelground.core.masks import mask_iou
from pixelground.core.prompts import Box, Prompt
from pixelground.core.result import Track
from pixelground.tasks.common import boxes_to_masks, inside_detections, select_detections
from pixelground.video.frames import open_video
from pixelground.video.interactive import InteractiveVideoSegmentation

log = logging.getLogger(__name__)

#: Mask IoU at or above which a detection is an object already tracked (or already kept).
MATCH_IOU = 0.3

VideoSource = str | Path | FrameSource | Sequence[np.ndarray]
OnFrame = Callable[[FrameTracks], None]


#: Boxes smaller than this many square pixels are not objects (degenerate detections).
def as_frames(video: VideoSource, **sampling: Any) -> FrameSource:
    """A FrameSource for ``video`` (a path, a folder, arrays, or a FrameSource as is).

    Args:
        video: video file, folder of frames, sequence of RGB (H, W, 3) arrays, or a FrameSource.
        **sampling: stride, fps, start, end, max_frames, frame_rate (see ``open_video``);
            not allowed with a FrameSource, which is already sampled.
    """
    if isinstance(video, FrameSource):
        given = [k for k, v in sampling.items() if v is not None and (k, v) != ("stride", 1)]
        if given:
            raise InputError(
                f"this video is already opened; give the sampling ({', '.join(given)}) to "
                "open_video instead"
            )
        return video
    options = {k: v for k, v in sampling.items() if v is not None}
    return open_video(video, **options)


def key_frame_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``[0, num_frames)``, first and last included.

    Args:
        num_frames: frames in the (sampled) video, >= 1.
        count: how many key frames, >= 1; all frames when it is at least ``num_frames``.

    Returns:
        Sorted, distinct indices.
    """
    if int(count) != count or count < 1:
        raise InputError(f"the number of key frames must be a whole number >= 1, got {count}")
    if num_frames < 1:
        raise InputError("the video has no frames")
    if count >= num_frames:
        return list(range(num_frames))
    if count == 1:
        return [(num_frames - 1) // 2]
    return sorted({int(round(v)) for v in np.linspace(0, num_frames - 1, int(count))})


def read_frames(frames: FrameSource, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Pixels (RGB uint8 (H, W, 3)) of a few sampled frames, by index."""
    return {int(i): frames.read(int(i)) for i in indices}


@dataclass
class Candidate:
    """A detection on one frame turned into something a tracker can start from.

    Attributes:
        frame: sampled frame index.
        detection: the detector's box, score and query index.
        mask: (H, W) bool mask from the segmenter, or the filled box when there is none.
        quality: the segmenter's predicted IoU (1.0 for a filled box).
        segmented: whether ``mask`` came from a segmenter.
    """

    frame: int
    detection: Detection
    mask: np.ndarray
    quality: float = 1.0
    segmented: bool = True

    @property
    def score(self) -> float:
        return float(self.detection.score)

    def prompt(self) -> Prompt:
        """A mask prompt (segmented) or a box prompt for the tracking session."""
        if self.segmented:
            return Prompt(mask=self.mask)
        return Prompt(box=Box(*self.detection.box))


@dataclass
class Grounding:
    """Where a query is grounded best among the key frames.

    Attributes:
        frame: the key frame with the highest grounding score.
        detections: the kept detections there (one, or several for multi-target text).
        score: that frame's grounding score.
        frame_scores: key frame -> its grounding score (0 where nothing was kept): the best
            kept detection score for single-target text, the sum of the kept scores for
            multi-target text (a frame showing more of the instances, confidently, wins).
    """

    frame: int
    detections: list[Detection]
    score: float
    frame_scores: dict[int, float]


class KeyFrameGrounder:
    """Detect a fixed list of queries on frames of a video, caching detections per frame.

    Args:
        frames: the video.
        detector: boxes text on an image.
        queries: the texts (an expression, or a caption's phrases).
        many: per query, whether it may name several objects (keeps every box after NMS).
        threshold: minimum detection score.
    """

    def __init__(
        self,
        frames: FrameSource,
        detector: Detector,
        queries: Sequence[str],
        many: Sequence[bool],
        threshold: float = DETECTION_THRESHOLD,
    ) -> None:
        if len(queries) != len(many):
            raise InputError("give one 'many' flag per query")
        self.frames = frames
        self.detector = detector
        self.queries = list(queries)
        self.many = list(many)
        self.threshold = float(threshold)
        self.pixels: dict[int, np.ndarray] = {}
        self._detections: dict[int, list[list[Detection]]] = {}

    def frame(self, index: int) -> np.ndarray:
        """Pixels of a frame, kept for frames already detected on."""
        if index not in self.pixels:
            self.pixels[index] = self.frames.read(index)
        return self.pixels[index]

    def forget(self, index: int) -> None:
        """Drop a frame's cached pixels (its detections stay cached)."""
        self.pixels.pop(index, None)

    def detections(self, index: int) -> list[list[Detection]]:
        """Per query, the detections kept on frame ``index`` (best first)."""
        if index not in self._detections:
            pixels = self.frame(index)
            height, width = pixels.shape[:2]
            found = self.detector.detect(pixels, self.queries, threshold=self.threshold)
            per_query: list[list[Detection]] = []
            for q, many in enumerate(self.many):
                mine = inside_detections(
                    [d for d in found if d.query_index == q and d.score >= self.threshold],
                    height,
                    width,
                )
                per_query.append(select_detections(mine, many))
            self._detections[index] = per_query
        return self._detections[index]

    def best(self, indices: Sequence[int]) -> list[Grounding | None]:
        """Per query, the frame among ``indices`` with the highest grounding score.

        The grounding score is the best kept detection score, or for multi-target text the
        sum of the kept scores (see Grounding). Ties go to the earlier frame. None for a query
        with no detection on any of the frames.
        """
        out: list[Grounding | None] = []
        per_frame = {int(i): self.detections(int(i)) for i in indices}
        for q, many in enumerate(self.many):
            scores = {i: _frame_score(dets[q], many) for i, dets in per_frame.items()}
            found = [i for i in per_frame if per_frame[i][q]]
            if not found:
                out.append(None)
                continue
            frame = max(found, key=lambda i: (scores[i], -i))
            out.append(Grounding(frame, per_frame[frame][q], scores[frame], scores))
        return out


def _frame_score(detections: Sequence[Detection], many: bool) -> float:
    values = [float(d.score) for d in detections]
    if not values:
        return 0.0
    return sum(values) if many else max(values)


def candidates(
    segmenter: Segmenter | None, pixels: np.ndarray, frame: int, detections: Sequence[Detection]
) -> list[Candidate]:
    """Turn detections on one frame into Candidates (segmenter masks, else filled boxes).

    A box the segmenter returns an empty mask for falls back to its filled box (and is given
    to the tracker as a box prompt).
    """
    if not detections:
        return []
    height, width = pixels.shape[:2]
    segmented = (
        boxes_to_masks(segmenter, pixels, [d.box for d in detections])
        if segmenter is not None
        else [(None, 1.0)] * len(detections)
    )
    out = []
    for detection, (mask, quality) in zip(detections, segmented, strict=True):
        if mask is not None and mask.any():
            out.append(Candidate(frame, detection, mask.astype(bool), float(quality)))
        else:
            out.append(
                Candidate(frame, detection, box_mask(detection.box, height, width), 1.0, False)
            )
    return out


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of an xyxy box (pixels whose centre is inside, at least one pixel)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    mask = np.zeros((height, width), dtype=bool)
    left, top = min(max(int(round(x0)), 0), width - 1), min(max(int(round(y0)), 0), height - 1)
    right = min(max(int(round(x1)), left + 1), width)
    bottom = min(max(int(round(y1)), top + 1), height)
    mask[top:bottom, left:right] = True
    return mask


def unmatched(
    found: Sequence[Candidate], existing: Sequence[np.ndarray], match_iou: float = MATCH_IOU
) -> list[Candidate]:
    """The candidates that are new objects: IoU below ``match_iou`` with every existing mask.

    Candidates are taken best score first; an accepted one counts as existing for the rest,
    so two detections of one new object start one track.

    Args:
        found: candidates on one frame.
        existing: (H, W) masks of the tracks present on that frame.
        match_iou: IoU at or above which a candidate is the same object as a track.
    """
    kept: list[Candidate] = []
    masks = [np.asarray(m, dtype=bool) for m in existing if np.asarray(m).any()]
    for candidate in sorted(found, key=lambda c: -c.score):
        if masks and float(mask_iou(candidate.mask[None], np.stack(masks)).max()) >= match_iou:
            continue
        kept.append(candidate)
        masks.append(candidate.mask)
    return kept


def masks_on(tracks: Sequence[Track], frame: int) -> list[np.ndarray]:
    """(H, W) masks of the tracks present on ``frame``."""
    return [t.frames[frame].mask for t in tracks if frame in t.frames]


def run_session(session: Any, on_frame: OnFrame | None = None) -> list[Track]:
    """Propagate a prompted session both ways; one Track per session track.

    Each Track's score is its mean presence score over the frames where it is visible
    (``attributes["prompt_frames"]`` lists where it was prompted).
    """
    return InteractiveVideoSegmentation(session).run("both", on_frame=on_frame).tracks


def record_start(tracks: Sequence[Track], started: dict[int, Candidate], **extra: Any) -> None:
    """Note on each track the detection it started from; its score becomes that detection's.

    Attributes set: ``start_frame``, ``presence`` (the session's mean presence score, which was
    the track's score), ``detector_box``, ``mask_quality`` and any ``extra``.
    """
    for track in tracks:
        candidate = started[track.id]
        track.attributes.update(
            {
                "start_frame": candidate.frame,
                **extra,
                "presence": track.score,
                "detector_box": [float(v) for v in candidate.detection.box],
                "mask_quality": candidate.quality,
            }
        )
        track.score = candidate.score


def storyboard(
    images: Sequence[np.ndarray], columns: int | None = None, height: int = 384, gap: int = 8
) -> np.ndarray:
    """Tile frames (or crops) into one image, in reading order, for single-image models.

    Args:
        images: RGB uint8 (h, w, 3) images of any sizes.
        columns: images per row; default ceil(sqrt(n)).
        height: every image is resized to this height (aspect kept).
        gap: grey pixels between images.

    Returns:
        (H, W, 3) uint8 tiles on a grey background.
    """
    from PIL import Image

    if not images:
        raise InputError("no images to tile")
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    tiles = []
    for image in images:
        h, w = image.shape[:2]
        size = (max(1, int(round(w * height / max(h, 1)))), height)
        tiles.append(np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)))
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    width = max(sum(t.shape[1] for t in row) + gap * (len(row) - 1) for row in rows)
    board = np.full((len(rows) * height + gap * (len(rows) - 1), width, 3), 128, dtype=np.uint8)
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            y = r * (height + gap)
            board[y : y + height, x : x + tile.shape[1]] = tile
            x += tile.shape[1] + gap
    return board
