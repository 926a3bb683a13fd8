"""Deterministic fakes for the video task tests: a scripted scene, its detector and tracker.

Frames are small arrays whose pixel (0, 0, 0) holds the frame number, so a fake model that
only sees pixels still knows which frame it is looking at. A Scene lists, per object, its
box on each frame where it is visible; SceneDetector finds the objects a query names (with
scripted scores), SceneTracker follows whichever scene object a prompt overlaps most.
Also the tiny-model cache fixture the tiny end-to-end tests use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from pixelground.backends.base import Detection, MaskCandidates
from pixelground.backends.presets import Preset
from pixelground.backends.sam2_video import FrameTracks, TrackMask
from pixelground.core.prompts import Prompt
from pixelground.pipeline import Pipeline
from pixelground.video.keyframes import box_mask

HEIGHT, WIDTH = 48, 64


@pytest.fixture(scope="module", autouse=True)
def video_task_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Tiny models go to the session's cache: the root conftest's when it has one, else ours."""
    try:
        request.getfixturevalue("tiny_model_cache")
        yield
        return
    except pytest.FixtureLookupError:
        pass
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXELGROUND_CACHE", str(tmp_path_factory.getbasetemp() / "pg_tiny_cache"))
        yield


def frame_number(image: np.ndarray) -> int:
    """The frame number a scene frame carries in pixel (0, 0, 0)."""
    return int(np.asarray(image)[0, 0, 0])


@dataclass
class Scene:
    """Objects by name: frame -> xyxy box on the frames where the object is visible."""

    num_frames: int
    objects: dict[str, dict[int, tuple[float, float, float, float]]] = field(default_factory=dict)

    def frames(self) -> list[np.ndarray]:
        """RGB (HEIGHT, WIDTH, 3) frames carrying their frame number in pixel (0, 0, 0)."""
        out = []
        for index in range(self.num_frames):
            pixels = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
            for boxes in self.objects.values():
                if index in boxes:
                    pixels[box_mask(boxes[index], HEIGHT, WIDTH)] = 200
            pixels[0, 0, 0] = index
            out.append(pixels)
        return out

    def mask(self, name: str, index: int) -> np.ndarray:
        box = self.objects[name].get(index)
        if box is None:
            return np.zeros((HEIGHT, WIDTH), dtype=bool)
        return box_mask(box, HEIGHT, WIDTH)


def moving_box(frames: range, x0: float, y0: float, size: float = 10, dx: float = 1.0):
    """Boxes of an object moving right by ``dx`` pixels per frame."""
    return {f: (x0 + dx * f, y0, x0 + dx * f + size, y0 + size) for f in frames}


class SceneDetector:
    """Detects the scene objects a query names; scores[(name, frame)] overrides ``score``.

    ``names`` maps a query (lower case) to scene object names. Every call is logged.
    """

    def __init__(self, scene: Scene, names: dict[str, list[str]], scores=None, score=0.5):
        self.scene, self.names = scene, names
        self.scores = dict(scores or {})
        self.score = score
        self.calls: list[tuple[int, tuple[str, ...]]] = []
        self.info = {"class": "SceneDetector"}

    def detect(self, image, queries: Sequence[str], threshold: float = 0.2) -> list[Detection]:
        index = frame_number(image)
        self.calls.append((index, tuple(queries)))
        out = []
        for q, query in enumerate(queries):
            for name in self.names.get(query.lower(), []):
                box = self.scene.objects[name].get(index)
                score = self.scores.get((name, index), self.score)
                if box is not None and score >= threshold:
                    out.append(Detection(box, score, q, query))
        return out


class FillSegmenter:
    """A box prompt -> the box filled (quality 0.9)."""

    info = {"class": "FillSegmenter"}

    def segment(self, image, prompts: Sequence[Prompt], multimask: bool = False):
        h, w = image.shape[:2]
        return [
            MaskCandidates(box_mask(p.box.as_array(), h, w)[None], np.array([0.9])) for p in prompts
        ]


class SceneTracker:
    """Opens SceneSessions; ``sessions`` keeps them for inspection."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self.sessions: list[SceneSession] = []
        self.info = {"class": "SceneTracker"}

    def session(self, frames, memory_frames=None) -> SceneSession:
        session = SceneSession(self, frames)
        self.sessions.append(session)
        return session


class SceneSession:
    """A tracking session that follows the scene object a prompt overlaps most, on every frame.

    Mimics TrackingSession's interface: add_prompt, track_ids, prompt_frames, propagate.
    """

    def __init__(self, tracker: SceneTracker, frames):
        self.tracker, self.frames = tracker, frames
        self.height, self.width = frames.height, frames.width
        self.objects: dict[int, str | None] = {}
        self.prompts: list[tuple[int, int, Prompt]] = []

    @property
    def track_ids(self) -> list[int]:
        return list(self.objects)

    def prompt_frames(self, track_id: int) -> list[int]:
        return sorted({f for t, f, _ in self.prompts if t == track_id})

    def add_prompt(self, frame: int, prompt: Prompt, track_id: int | None = None):
        prompt.validate(self.height, self.width)
        if prompt.mask is not None:
            region = prompt.mask
        elif prompt.box is not None:
            region = box_mask(prompt.box.as_array(), self.height, self.width)
        else:
            p = prompt.points[0]
            region = box_mask((p.x, p.y, p.x + 1, p.y + 1), self.height, self.width)
        track_id = track_id if track_id is not None else max(self.objects, default=0) + 1
        best, best_overlap = None, 0
        for name in self.tracker.scene.objects:
            overlap = int((self.tracker.scene.mask(name, frame) & region).sum())
            if overlap > best_overlap:
                best, best_overlap = name, overlap
        self.objects.setdefault(track_id, best)
        self.prompts.append((track_id, frame, prompt))
        return track_id, self._mask(track_id, frame)

    def _mask(self, track_id: int, index: int) -> TrackMask:
        name = self.objects[track_id]
        if name is None:
            return TrackMask(np.zeros((self.height, self.width), dtype=bool), 0.0)
        mask = self.tracker.scene.mask(name, index)
        return TrackMask(mask, 0.9 if mask.any() else 0.1)

    def propagate(self, direction: str = "both"):
        for index in range(len(self.frames)):
            tracks = {t: self._mask(t, index) for t in self.objects}
            yield FrameTracks(index, self.frames.source_index(index), tracks)


class FakeSa2VAModel:
    """Sa2VA's predict_forward for videos: one [SEG] whose masks are a scene object's boxes."""

    def __init__(self, scene: Scene, name: str, answer: str = "Sure, [SEG].", extra=None):
        self.scene, self.name, self.answer = scene, name, answer
        self.extra = extra or {}  # more [SEG]s: list of object names
        self.calls: list[dict] = []

    def predict_forward(self, image=None, video=None, text=None, tokenizer=None, **kwargs):
        frames = [frame_number(np.asarray(f)) for f in video]
        self.calls.append({"frames": frames, "text": text, "tokenizer": tokenizer, **kwargs})
        names = [self.name, *self.extra]
        masks = [np.stack([self.scene.mask(n, f) for f in frames]) for n in names]
        return {"prediction": self.answer, "prediction_masks": masks}


class FakeCaptioner:
    """Captions frame n with ``captions[n]``; describe_region logs (frame, box)."""

    def __init__(self, captions: dict[int, str] | None = None, region_text: str = "a grey box"):
        self.captions = captions or {}
        self.region_text = region_text
        self.regions: list[tuple[int, tuple[float, ...]]] = []
        self.info = {"class": "FakeCaptioner"}

    def caption(self, image, detailed: bool = False) -> str:
        return self.captions.get(frame_number(image), "")

    def describe_region(self, image, box, detailed: bool = False) -> str:
        self.regions.append((frame_number(image), tuple(float(v) for v in box)))
        return f"{self.region_text} on frame {frame_number(image)}"


class FakeVLM:
    """Answers with ``answers`` in turn (the last one repeats); logs (image, question)."""

    def __init__(self, answers: Sequence[str]):
        self.answers = list(answers)
        self.calls: list[tuple[np.ndarray, str]] = []
        self.info = {"class": "FakeVLM"}

    def chat(self, image, question: str, history=()) -> str:
        self.calls.append((np.asarray(image), question))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


class ListParser:
    """Noun phrases = the listed phrases, found in the text in order."""

    def __init__(self, phrases: Sequence[str]):
        self.phrases = list(phrases)

    def noun_phrases(self, text: str):
        from pixelground.backends.base import Phrase

        out, cursor = [], 0
        for phrase in self.phrases:
            start = text.find(phrase, cursor)
            if start >= 0:
                out.append(Phrase(phrase, start, start + len(phrase), phrase.endswith("s")))
                cursor = start + len(phrase)
        return out


class FakePipeline(Pipeline):
    """A real Pipeline over fake backends (a random-weight preset named "fake") that records
    which roles the video methods ask for."""

    def __init__(self, **backends):
        super().__init__(Preset("fake", "fake backends", meaningful=False), backends=backends)
        self.asked: list[str] = []

    def backend(self, role: str):
        self.asked.append(role)
        return super().backend(role)
