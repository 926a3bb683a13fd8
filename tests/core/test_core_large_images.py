"""Large images: decoded at a working resolution (JPEG draft, reduce), masks scaled back to
the original size as RLE."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pixelground.core.masks import decode_rle
from pixelground.core.media import image_size, load_image_reduced
from pixelground.core.result import GroundedResult, ImageInfo, Region
from pixelground.serve.commands.image import at_size


def _picture(height: int, width: int) -> np.ndarray:
    pixels = np.full((height, width, 3), 40, np.uint8)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = (0, 200, 0)
    return pixels


def test_reduced_decoding_of_png_and_jpeg(tmp_path):
    for suffix in (".png", ".jpg"):
        path = tmp_path / f"big{suffix}"
        Image.fromarray(_picture(3000, 4000)).save(path)
        assert image_size(path) == (3000, 4000)
        small = load_image_reduced(path, work_pixels=1_000_000)
        height, width = small.pixels.shape[:2]
        assert height * width <= 1_000_000 and abs(width / height - 4 / 3) < 0.01
        assert small.path == str(path)
        green = small.pixels[height * 3 // 8, width * 3 // 8]
        assert green[1] > 150 and green[0] < 60  # the square is where it was


def test_results_are_written_at_the_original_size():
    mask = np.zeros((300, 400), bool)
    mask[75:150, 100:200] = True
    result = GroundedResult(
        task="segment",
        image=ImageInfo(path="big.png", width=400, height=300),
        text="the square",
        regions=[Region(mask=mask, phrase="the square", span=(0, 10), score=1.0)],
    )
    data = at_size(result, 3000, 4000)
    assert (data["image"]["height"], data["image"]["width"]) == (3000, 4000)
    assert data["model"]["working_size"] == [300, 400]
    big = decode_rle(data["regions"][0]["mask"])
    assert big.shape == (3000, 4000) and big[750:1500, 1000:2000].all() and big.sum() == 750_000
    assert data["regions"][0]["box"] == [1000.0, 750.0, 2000.0, 1500.0]
    assert GroundedResult.from_dict(data).regions[0].mask.shape == (3000, 4000)
