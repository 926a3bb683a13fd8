"""pixelground: ground language in images and videos.

>>> import pixelground
>>> pipe = pixelground.load("default")          # or "quality", "sa2va-1b", "shapes", "auto"
>>> result = pipe.segment("photo.jpg", "the man in the red jacket")
>>> result.masks.shape                           # (N, H, W) bool
>>> result.to_json("out.json")                   # JSON v1, masks as COCO RLE
"""

from pixelground.core.errors import (
    CheckpointMissingError,
    InputError,
    PixelgroundError,
    UnknownNameError,
)
from pixelground.core.result import GroundedResult, Region, VideoResult
from pixelground.engine.api import annotate
from pixelground.pipeline import Pipeline, load

__version__ = "0.1.0"

__all__ = [
    "CheckpointMissingError",
    "GroundedResult",
    "InputError",
    "Pipeline",
    "PixelgroundError",
    "Region",
    "UnknownNameError",
    "VideoResult",
    "annotate",
    "load",
]
