"""Dense open-vocabulary segmentation post-processing: channels-first fast path vs reference."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelground.tasks.association import softmax
from pixelground.tasks.semseg import (
    OpenVocabSegmentation,
    channel_argmax,
    upsample_channels,
    upsample_scores,
    winning_softmax,
)


def _reference_upsample(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, C): one PIL bilinear resize per channel, stacked last (the old code)."""
    channels = [
        np.asarray(
            Image.fromarray(scores[:, :, c].astype(np.float32), mode="F").resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(scores.shape[2])
    ]
    return np.stack(channels, axis=2)


def test_upsampling_matches_the_per_channel_reference():
    scores = np.random.default_rng(0).standard_normal((7, 12, 4)).astype(np.float32)
    reference = _reference_upsample(scores, 45, 70)
    channels = upsample_channels(scores, 45, 70)
    assert channels.shape == (4, 45, 70) and channels.dtype == np.float32
    np.testing.assert_array_equal(np.moveaxis(channels, 0, 2), reference)
    np.testing.assert_array_equal(upsample_scores(scores, 45, 70), reference)


def test_channel_argmax_is_argmax_with_first_wins_ties():
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 4, (6, 30, 40)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(channel_argmax(stack), stack.argmax(axis=0))
    assert channel_argmax(stack[:1]).max() == 0


def test_winning_softmax_is_the_softmax_of_the_arg_max():
    logits = (30 * np.random.default_rng(3).standard_normal((5, 20, 30))).astype(np.float32)
    labels, confidence = winning_softmax(logits)
    probabilities = softmax(logits.astype(np.float64), axis=0)
    np.testing.assert_array_equal(labels, probabilities.argmax(axis=0))
    expected = np.take_along_axis(probabilities, labels[None], axis=0)[0]
    np.testing.assert_allclose(confidence, expected, rtol=1e-5)


class PatchScorer:
    """A scorer whose dense patches and texts are fixed random vectors."""

    logit_scale = 100.0

    def __init__(self, classes: int) -> None:
        rng = np.random.default_rng(2)
        self.patches = rng.standard_normal((5, 9, 16)).astype(np.float32)
        self.texts = rng.standard_normal((classes, 16)).astype(np.float32)

    def embed_patches(self, image):
        return self.patches / np.linalg.norm(self.patches, axis=-1, keepdims=True)

    def embed_texts(self, texts):
        return self.texts / np.linalg.norm(self.texts, axis=-1, keepdims=True)


@pytest.mark.parametrize("classes", [1, 3, 7])
def test_dense_regions_match_the_float64_reference(classes):
    image = np.zeros((60, 100, 3), dtype=np.uint8)
    scorer = PatchScorer(classes)
    names = [f"class {i}" for i in range(classes)]
    result = OpenVocabSegmentation(scorer, mode="dense")(image, names)

    logits = _reference_upsample(
        100.0 * scorer.embed_patches(image) @ scorer.embed_texts(names).T, 60, 100
    )
    probabilities = softmax(logits.astype(np.float64), axis=2)
    labels = probabilities.argmax(axis=2)
    present = [c for c in range(classes) if (labels == c).any()]
    assert [r.label for r in result.regions] == [names[c] for c in present]
    for region, c in zip(result.regions, present, strict=True):
        np.testing.assert_array_equal(region.mask, labels == c)
        expected = probabilities[:, :, c][labels == c].mean()
        assert region.score == pytest.approx(expected, rel=1e-5)
