"""The data engine: GranD-style auto-annotation of image collections, locally or on Ray.

>>> from pixelground.engine import annotate, export
>>> annotate("photos/", "dataset/", preset="default", levels=(1, 2, 3))   # resumable
>>> export("dataset/", "gcg", "train.jsonl")       # for `pixelground finetune --data`

Stages (stages.py, scene_stages.py) are plain functions record -> record naming the roles
they need; the local engine (local.py) and the Ray engine (ray_engine.py) run the same
stages and commit the same shards (dataset.py). See docs/engine.md.
"""

from pixelground.engine.api import annotate
from pixelground.engine.dataset import Dataset
from pixelground.engine.export import export
from pixelground.engine.stages import Settings, Stage

__all__ = ["Dataset", "Settings", "Stage", "annotate", "export"]
