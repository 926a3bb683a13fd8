"""SamSegmenter and Sam2Segmenter: tiny random-weight models saved and loaded back, real image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixelground.backends.base import MaskCandidates, Segmenter
from pixelground.backends.sam import Sam2Segmenter, SamSegmenter
from pixelground.backends.tiny.vision import build_tiny_sam, build_tiny_sam2
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.core.media import load_image
from pixelground.core.prompts import Box, Point, Prompt

KINDS = {"sam2": (Sam2Segmenter, build_tiny_sam2), "sam": (SamSegmenter, build_tiny_sam)}


@pytest.fixture(scope="module")
def swan(swan_image_path: Path) -> np.ndarray:
    return load_image(swan_image_path).pixels


@pytest.fixture(scope="module", params=sorted(KINDS))
def segmenter(request, tmp_path_factory):
    cls, build = KINDS[request.param]
    directory = build(tmp_path_factory.mktemp(request.param))
    return cls(str(directory), device="cpu")


def _swan_mask(shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[150:330, 300:600] = True
    return mask


def test_loads_through_constructor_and_reports_itself(segmenter):
    assert isinstance(segmenter, Segmenter)
    assert segmenter.info["class"] == type(segmenter).__name__
    assert Path(segmenter.info["checkpoint"]).is_dir()
    assert segmenter.info["device"] == "cpu"
    assert segmenter.info["dtype"] == "float32"


def test_every_prompt_kind_gives_image_sized_masks(segmenter, swan):
    mask = _swan_mask(swan.shape[:2])
    prompts = [
        Prompt(points=(Point(450, 240),)),
        Prompt(points=(Point(450, 240), Point(100, 50, positive=False))),
        Prompt(box=Box(300, 150, 600, 330)),
        Prompt(points=(Point(450, 240),), box=Box(300, 150, 600, 330)),
        Prompt(mask=mask),
        Prompt(points=(Point(450, 240),), mask=mask),
        Prompt(box=Box(300, 150, 600, 330), mask=mask),
    ]
    for multimask, count in ((False, 1), (True, 3)):
        results = segmenter.segment(swan, prompts, multimask=multimask)
        assert len(results) == len(prompts)
        for result in results:
            assert isinstance(result, MaskCandidates)
            assert result.masks.shape == (count, 480, 854)
            assert result.masks.dtype == bool
            assert result.scores.shape == (count,)
            assert result.scores.dtype == np.float32
            assert ((result.scores >= 0) & (result.scores <= 1)).all()


def test_multimask_candidates_are_sorted_best_first(segmenter, swan):
    prompts = [Prompt(points=(Point(x, 200),)) for x in (50, 300, 700)]
    for result in segmenter.segment(swan, prompts, multimask=True):
        assert (np.diff(result.scores) <= 0).all()
        best_mask, best_score = result.best()
        assert best_score == result.scores[0]
        assert np.array_equal(best_mask, result.masks[0])


def test_multimask_order_follows_the_model_scores(segmenter, swan):
    """The sorted candidates are the model's own candidates, permuted by its IoU scores."""
    embedding = segmenter.embed(swan)
    prompt = Prompt(points=(Point(420, 260),))
    logits, scores = segmenter._decode(embedding, [prompt], multimask=True)
    raw = segmenter._postprocess(logits, embedding)[0]
    order = np.argsort(-scores[0].numpy(), kind="stable")
    result = segmenter.segment(swan, [prompt], multimask=True)[0]
    assert np.array_equal(result.masks, raw[order])


def test_batched_prompts_match_one_by_one(segmenter, swan):
    """Grouping prompts by kind and batching them changes nothing."""
    mask = _swan_mask(swan.shape[:2])
    prompts = [
        Prompt(points=(Point(100, 100),)),
        Prompt(box=Box(10, 20, 400, 300)),
        Prompt(points=(Point(600, 300), Point(50, 50, positive=False))),
        Prompt(points=(Point(700, 400),)),
        Prompt(mask=mask),
        Prompt(box=Box(200, 100, 800, 470)),
    ]
    together = segmenter.segment(swan, prompts)
    for prompt, batched in zip(prompts, together, strict=True):
        alone = segmenter.segment(swan, [prompt])[0]
        np.testing.assert_allclose(alone.scores, batched.scores, atol=1e-5)
        differing = np.mean(alone.masks != batched.masks)
        assert differing < 1e-3


def test_image_embedding_is_computed_once_per_image(segmenter, swan, monkeypatch):
    calls = []
    original = segmenter.model.get_image_embeddings

    def counting(pixel_values):
        calls.append(pixel_values.shape)
        return original(pixel_values)

    monkeypatch.setattr(segmenter.model, "get_image_embeddings", counting)
    segmenter.clear_cache()
    grid = [Prompt(points=(Point(x, y),)) for x in np.linspace(0, 853, 6) for y in (10, 470)]
    for start in range(0, len(grid), 4):  # the entity task's pattern: a grid in batches
        segmenter.segment(swan, grid[start : start + 4], multimask=True)
    segmenter.segment(swan.copy(), [Prompt(box=Box(0, 0, 100, 100))])  # same content, new array
    assert len(calls) == 1
    other = swan[::-1].copy()
    segmenter.segment(other, [Prompt(points=(Point(5, 5),))])
    segmenter.segment(other, [Prompt(points=(Point(6, 6),))])
    assert len(calls) == 2
    segmenter.segment(swan, [Prompt(points=(Point(5, 5),))])  # only the last image is kept
    assert len(calls) == 3


def test_points_and_boxes_are_scaled_like_the_processor(segmenter, swan):
    points = [[300.0, 150.0], [853.0, 479.0]]
    inputs = segmenter.processor(
        images=swan, input_points=[[points]], input_labels=[[[1, 1]]], return_tensors="pt"
    )
    scale = segmenter._coordinate_scale(segmenter.embed(swan))
    expected = inputs["input_points"].reshape(-1, 2).numpy()
    np.testing.assert_allclose(np.array(points) * scale, expected, rtol=1e-5)


def test_mask_prompt_becomes_low_resolution_logits(segmenter, swan):
    embedding = segmenter.embed(swan)
    mask = _swan_mask(swan.shape[:2])
    logits = segmenter._mask_inputs([Prompt(mask=mask)], embedding)[0, 0].numpy()
    side = segmenter.model.prompt_encoder.image_embedding_size[0] * 4
    assert logits.shape == (side, side)
    in_h, in_w = embedding.input_size
    rows = round(in_h * side / embedding.frame_size)
    cols = round(in_w * side / embedding.frame_size)
    inside = logits[:rows, :cols]
    # the mask covers rows 150..330 of 480 and columns 300..600 of 854
    assert inside[int(rows * 240 / 480), int(cols * 450 / 854)] == pytest.approx(10.0)
    assert inside[int(rows * 50 / 480), int(cols * 50 / 854)] == pytest.approx(-10.0)
    assert (logits[rows:] == -10.0).all() and (logits[:, cols:] == -10.0).all()
    with_mask = segmenter.segment(swan, [Prompt(points=(Point(450, 240),), mask=mask)])[0]
    without = segmenter.segment(swan, [Prompt(points=(Point(450, 240),))])[0]
    assert not np.array_equal(with_mask.masks, without.masks)


@pytest.mark.parametrize(
    "prompt",
    [
        Prompt(points=(Point(854, 10),)),
        Prompt(points=(Point(10, -1),)),
        Prompt(box=Box(900, 500, 1000, 600)),
        Prompt(box=Box(50, 50, 40, 80)),
        Prompt(mask=np.ones((10, 10), dtype=bool)),
        Prompt(mask=np.zeros((480, 854), dtype=bool)),
    ],
    ids=["x-at-width", "negative-y", "box-outside", "box-inverted", "mask-shape", "mask-empty"],
)
def test_prompt_outside_the_image_is_an_input_error(segmenter, swan, prompt):
    with pytest.raises(InputError):
        segmenter.segment(swan, [prompt])


def test_no_prompt_is_an_input_error(segmenter, swan):
    with pytest.raises(InputError):
        segmenter.segment(swan, [])


@pytest.mark.parametrize("cls", [Sam2Segmenter, SamSegmenter])
def test_missing_checkpoint_directory(cls, tmp_path):
    with pytest.raises(CheckpointMissingError, match="does not exist"):
        cls(str(tmp_path / "no-such-model"))


def test_dtype_option_sets_the_weights_dtype(tmp_path, swan):
    segmenter = Sam2Segmenter(
        str(build_tiny_sam2(tmp_path / "sam2")), device="cpu", dtype="bfloat16"
    )
    assert next(segmenter.model.parameters()).dtype == torch.bfloat16
    result = segmenter.segment(swan, [Prompt(points=(Point(450, 240),))])[0]
    assert result.masks.shape == (1, 480, 854)


def test_sam2_loads_a_video_checkpoint_like_the_published_ones(tmp_path, swan):
    """facebook/sam2.1-hiera-* are Sam2VideoModel checkpoints; the image segmenter reads them."""
    from pixelground.backends.tiny.video import build_tiny_sam2_video

    segmenter = Sam2Segmenter(str(build_tiny_sam2_video(tmp_path / "video")), device="cpu")
    assert type(segmenter.model).__name__ == "Sam2Model"
    result = segmenter.segment(swan, [Prompt(points=(Point(450, 240),))], multimask=True)[0]
    assert result.masks.shape == (3, 480, 854)
