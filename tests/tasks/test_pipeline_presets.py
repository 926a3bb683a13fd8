"""Presets, overrides and the Pipeline's errors, without loading any model."""

from __future__ import annotations

import pytest
from fakes import colour_squares_image

import pixelground
from pixelground.backends.presets import (
    PRESETS,
    Part,
    Preset,
    get_preset,
    package_checkpoint,
    resolve_auto,
)
from pixelground.backends.registry import backend_class, backend_names
from pixelground.core.errors import DependencyMissingError, InputError, UnknownNameError
from pixelground.pipeline import Pipeline


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown preset 'nope'.*tiny"):
        pixelground.load("nope")


def test_auto_picks_the_shipped_shapes_model_offline():
    assert resolve_auto().name == "shapes"
    assert get_preset("auto").meaningful is True
    for part in PRESETS["shapes"].parts.values():
        assert (package_checkpoint(part.checkpoint) / "model.safetensors").is_file()


def test_auto_falls_back_to_tiny_without_the_shipped_checkpoint(monkeypatch, tmp_path):
    from pixelground.backends import presets

    monkeypatch.setattr(presets, "package_checkpoint", lambda checkpoint: tmp_path / "gone")
    assert resolve_auto().name == "tiny"
    assert get_preset("auto").meaningful is False


def test_overrides_change_checkpoint_or_backend():
    preset = PRESETS["default"].with_overrides(
        {"segmenter": "/models/sam2", "detector": "owlv2:google/owlv2-base-patch16-ensemble"}
    )
    assert preset.parts["segmenter"] == Part("sam2", "/models/sam2")
    assert preset.parts["detector"] == Part("owlv2", "google/owlv2-base-patch16-ensemble")
    assert preset.parts["captioner"].backend == "florence2"  # untouched roles stay


def test_override_errors():
    with pytest.raises(UnknownNameError, match="unknown role 'segmentor'"):
        PRESETS["default"].with_overrides({"segmentor": "/x"})
    with pytest.raises(InputError, match="has no grounding_model"):
        PRESETS["default"].with_overrides({"grounding_model": "/x"})


def test_shared_parts_share_one_instance_key():
    parts = PRESETS["default"].parts
    assert parts["detector"].key == parts["captioner"].key


def test_task_without_needed_backend_is_a_clear_error():
    pipeline = Pipeline(Preset("bare", "no parts"))
    with pytest.raises(InputError, match="entity segmentation needs a segmenter"):
        pipeline.entities(colour_squares_image())
    with pytest.raises(InputError, match="describe needs a captioner"):
        pipeline.describe(colour_squares_image(), box=(0, 0, 10, 10))


def test_backend_table():
    assert {"sam2", "florence2", "clip", "textblob", "segtoken"} <= set(backend_names())
    with pytest.raises(UnknownNameError, match="unknown backend 'nope'"):
        backend_class("nope")
    assert backend_class("textblob").__name__ == "TextBlobParser"


def test_missing_module_is_a_dependency_error(monkeypatch):
    from pixelground.backends import registry

    monkeypatch.setitem(registry.BACKENDS, "ghost", "pixelground.no_such_module:Ghost")
    with pytest.raises(DependencyMissingError):
        backend_class("ghost")
