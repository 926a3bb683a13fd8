"""Region understanding: a box, a point or a mask in; label, short and detailed caption out.

As Perceive Anything does, one region yields three texts: a category label, a short
caption and a detailed description. A point or box is first turned into a mask by the
segmenter, so every answer carries the region's mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixelground.backends.base import Captioner, MaskDescriber, Segmenter
from pixelground.core.errors import InputError
from pixelground.core.masks import masks_to_boxes
from pixelground.core.media import ImageSource
from pixelground.core.prompts import Box, Point, Prompt
from pixelground.core.result import GroundedResult, Region
from pixelground.tasks.association import mask_crops
from pixelground.tasks.common import image_info, load, model_info


@dataclass
class RegionUnderstanding:
    """Describe one region of an image.

    Attributes:
        captioner: labels and describes regions.
        segmenter: turns a point or box into the region's mask.
        detailed: also generate the detailed caption (one more generation per region when
            the captioner is not region-prompted); False leaves it out (attribute None,
            text = the short caption).
    """

    captioner: Captioner
    segmenter: Segmenter | None = None
    preset: str | None = None
    detailed: bool = True

    def __call__(
        self,
        image: ImageSource,
        box: Box | None = None,
        point: Point | None = None,
        mask: np.ndarray | None = None,
    ) -> GroundedResult:
        """Describe the region given by exactly one of ``box``, ``point`` or ``mask``.

        Args:
            image: the image.
            box: xyxy box in pixels.
            point: a click on the object.
            mask: (H, W) bool mask of the region.

        Returns:
            GroundedResult (task "describe"): text = detailed caption; one region with the
            mask, label, and attributes short_caption / detailed_caption.
        """
        given = [v is not None for v in (box, point, mask)]
        if sum(given) != 1:
            raise InputError("describe needs exactly one of a box, a point or a mask")
        loaded = load(image)
        pixels = loaded.pixels
        prompt = Prompt(
            points=(point,) if point is not None else (),
            box=box,
            mask=None if mask is None else np.asarray(mask).astype(bool),
        )
        prompt.validate(loaded.height, loaded.width)
        region_mask, quality = self._region_mask(pixels, prompt)
        region_box = tuple(float(v) for v in masks_to_boxes(region_mask)[0])
        label = self.captioner.describe_region(pixels, region_box, detailed=False).strip()
        if isinstance(self.captioner, MaskDescriber):
            # a region-prompted model (mask-pooled visual prompt) sees the whole image
            short = detailed = self.captioner.describe_mask(pixels, region_mask).strip()
        else:
            crop = mask_crops(pixels, [region_mask], margin=0.15)[0]
            short = self.captioner.caption(crop, detailed=False).strip()
            detailed = (
                self.captioner.caption(crop, detailed=True).strip() if self.detailed else None
            )
        region = Region(
            mask=region_mask,
            box=region_box,
            score=quality,
            phrase=label or None,
            label=label or None,
            attributes={"short_caption": short, "detailed_caption": detailed},
        )
        return GroundedResult(
            task="describe",
            image=image_info(loaded),
            text=short if detailed is None else detailed,
            regions=[region],
            model=model_info(self.preset, captioner=self.captioner, segmenter=self.segmenter),
        )

    def _region_mask(self, pixels: np.ndarray, prompt: Prompt) -> tuple[np.ndarray, float]:
        if prompt.mask is not None:
            return prompt.mask, 1.0
        if self.segmenter is None:
            if prompt.box is None:
                raise InputError("a point prompt needs a segmenter; this preset has none")
            b = prompt.box.clipped(*pixels.shape[:2])
            mask = np.zeros(pixels.shape[:2], dtype=bool)
            mask[int(b.y0) : int(np.ceil(b.y1)), int(b.x0) : int(np.ceil(b.x1))] = True
            return mask, 1.0
        mask, quality = self.segmenter.segment(pixels, [prompt])[0].best()
        if not mask.any():
            raise InputError("the segmenter found no region at that prompt; try a box instead")
        return mask, quality
