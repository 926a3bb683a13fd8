"""The one table of backends: name -> "module:Class", imported lazily, plus entry points.

Third-party packages add backends through the ``pixelground.backends`` entry-point group
(``name = "package.module:Class"``). Nothing is imported until a backend is asked for.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from pixelground.core.errors import DependencyMissingError, UnknownNameError

BACKENDS: dict[str, str] = {
    "sam": "pixelground.backends.sam:SamSegmenter",
    "sam2": "pixelground.backends.sam:Sam2Segmenter",
    "owlv2": "pixelground.backends.owlv2:Owlv2Detector",
    "grounding-dino": "pixelground.backends.grounding_dino:GroundingDinoDetector",
    "clip": "pixelground.backends.clip:ClipScorer",
    "dino": "pixelground.backends.dino:DinoKeys",
    "depth": "pixelground.backends.depth:DepthEstimator",
    "florence2": "pixelground.backends.florence2:Florence2Backend",
    "vlm": "pixelground.backends.vlm:ChatVLM",
    "sa2va": "pixelground.backends.sa2va:Sa2VABackend",
    "textblob": "pixelground.backends.parser:TextBlobParser",
    "spacy": "pixelground.backends.parser:SpacyParser",
    "sam2-video": "pixelground.backends.sam2_video:Sam2VideoTracker",
    "segtoken": "pixelground.backends.seg_token:SegTokenModelBackend",
}

ENTRY_POINT_GROUP = "pixelground.backends"


def backend_names() -> list[str]:
    """Every known backend name: the built-in table and installed entry points."""
    return sorted({*BACKENDS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def backend_class(name: str) -> Any:
    """Import and return the class registered under ``name``.

    Raises:
        UnknownNameError: no such backend.
        DependencyMissingError: the backend's module needs an extra that is not installed.
    """
    target = BACKENDS.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            raise UnknownNameError(
                f"unknown backend {name!r}; known backends: {', '.join(backend_names())}"
            )
        target = found[0].value
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise DependencyMissingError(
            f"backend {name!r} needs a package that is not installed ({error.name}); "
            "install it with: pip install 'pixelground[models]'"
        ) from error
    return getattr(module, class_name)
