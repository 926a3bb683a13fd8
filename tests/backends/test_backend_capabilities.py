"""Optional backend capabilities are runtime-checkable Protocols of backends/base.py."""

from __future__ import annotations

import numpy as np

from pixelground.backends.base import (
    DEFAULT_LOGIT_SCALE,
    CaptionInstructed,
    EmbeddingSegmenter,
    MaskDescriber,
    TemperedScorer,
    VideoStreamer,
    logit_scale,
)
from pixelground.backends.sa2va import Sa2VABackend
from pixelground.video.referring import streams_video
from pixelground.video.sa2va_video import supports_video


class Plain:
    def caption(self, image, detailed=False):
        return ""


class Capable:
    gcg_prompt = "describe and segment"
    logit_scale = 42.0

    def embed(self, image):
        return "embedding"

    def describe_mask(self, image, mask):
        return "a thing"

    def stream_video_expression(self, frames, expression, chunk=8):
        yield [], np.zeros((0, 0, 1, 1), bool)


class PredictingModel:
    def predict_forward(self, **inputs):
        return {"prediction": ""}


def test_capabilities_are_found_by_isinstance():
    protocols = (
        MaskDescriber,
        CaptionInstructed,
        TemperedScorer,
        VideoStreamer,
        EmbeddingSegmenter,
    )
    for protocol in protocols:
        assert isinstance(Capable(), protocol) and not isinstance(Plain(), protocol)
    assert streams_video(Capable()) and not streams_video(Plain())
    assert logit_scale(Capable()) == 42.0 and logit_scale(Plain()) == DEFAULT_LOGIT_SCALE


def test_sa2va_video_needs_a_wrapped_predict_forward():
    assert supports_video(Sa2VABackend.from_model(PredictingModel(), tokenizer=None))
    assert not supports_video(Sa2VABackend.from_model(Plain(), tokenizer=None))
    assert not supports_video(Capable()) and not supports_video(None)
