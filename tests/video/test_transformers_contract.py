"""The private parts of transformers' SAM2 video session that backends/sam2_video.py uses.

The bounded session prunes transformers' inference-session state by hand and sets the
model's memory-bank size per session. pyproject pins transformers to the range this was
tested on; when a new release renames any of these, this test says which one, before a user
meets a KeyError deep inside the model.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pixelground.core.prompts import Box, Prompt
from pixelground.video.frames import open_video

SWAN_BOX = Box(200, 100, 500, 400)
#: Per-frame output keys the session keeps or drops by name.
OUTPUT_KEYS = ("maskmem_features", "maskmem_pos_enc", "object_pointer", "object_score_logits")


def _changed(what: str) -> str:
    import transformers

    return (
        f"transformers {transformers.__version__} changed {what}, which "
        "pixelground/backends/sam2_video.py relies on: pin transformers to the range in "
        "pyproject.toml or update the bounded session"
    )


def test_model_reads_its_memory_bank_size_from_num_maskmem(tracker):
    model = tracker.model
    assert isinstance(getattr(model, "num_maskmem", None), int), _changed(
        "Sam2VideoModel.num_maskmem"
    )
    gather = getattr(model, "_gather_memory_frame_outputs", None)
    assert gather is not None, _changed("Sam2VideoModel._gather_memory_frame_outputs")
    assert "self.num_maskmem" in inspect.getsource(gather), _changed(
        "how _gather_memory_frame_outputs chooses memory frames (self.num_maskmem)"
    )
    assert "max_object_pointers_in_encoder" in vars(model.config) or hasattr(
        model.config, "max_object_pointers_in_encoder"
    ), _changed("Sam2VideoConfig.max_object_pointers_in_encoder")


def test_inference_session_attributes(tracker, swan_dir: Path):
    parameters = inspect.signature(tracker.processor.init_video_session).parameters
    assert "max_vision_features_cache_size" in parameters, _changed(
        "Sam2VideoProcessor.init_video_session(max_vision_features_cache_size=...)"
    )
    session = tracker.session(open_video(swan_dir, max_frames=3))
    state = session._state
    for name in ("output_dict_per_obj", "frames_tracked_per_obj", "processed_frames", "cache"):
        assert hasattr(state, name), _changed(f"Sam2VideoInferenceSession.{name}")
    assert callable(getattr(state, "obj_id_to_idx", None)), _changed("obj_id_to_idx")
    assert callable(getattr(state.cache, "clear_all", None)), _changed("cache.clear_all")
    assert isinstance(getattr(state.cache, "_vision_features", None), dict), _changed(
        "cache._vision_features"
    )
    session.add_prompt(0, Prompt(box=SWAN_BOX))
    outputs = list(session.propagate("forward"))
    assert len(outputs) == 3
    per_object = state.output_dict_per_obj[state.obj_id_to_idx(1)]
    for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
        assert key in per_object, _changed(f"output_dict_per_obj[...][{key!r}]")
    entry = next(iter(per_object["cond_frame_outputs"].values()))
    for key in OUTPUT_KEYS:
        assert key in entry, _changed(f"the per-frame output key {key!r}")


def test_pinned_range_is_the_installed_one():
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    if (major, minor) != (5, 25):
        pytest.fail(_changed("its version (tested on 5.25.x)"))
