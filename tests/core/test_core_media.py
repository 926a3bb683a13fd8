"""load_image and list_images: every source type, EXIF orientation, and every bad file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from paths import SHARED_DATA
from PIL import Image

from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.media import LoadedImage, list_images, load_image

SWAN_JPG = SHARED_DATA / "davis2016_blackswan" / "JPEGImages" / "480p" / "blackswan" / "00000.jpg"
SWAN_PNG = SHARED_DATA / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan" / "00000.png"
PALETTE_PNG = (
    SHARED_DATA / "davis2017eval_predictions" / "semi-supervised" / "osvos" / "blackswan"
) / "00000.png"


@pytest.fixture(scope="module")
def swan() -> np.ndarray:
    loaded = load_image(SWAN_JPG)
    assert loaded.path == str(SWAN_JPG)
    return loaded.pixels


def test_load_from_path_bytes_pil_and_array_agree(swan):
    assert swan.shape == (480, 854, 3) and swan.dtype == np.uint8
    assert (load_image(SWAN_JPG).height, load_image(SWAN_JPG).width) == (480, 854)
    assert np.array_equal(load_image(str(SWAN_JPG)).pixels, swan)
    from_bytes = load_image(SWAN_JPG.read_bytes())
    assert from_bytes.path is None and np.array_equal(from_bytes.pixels, swan)
    assert np.array_equal(load_image(bytearray(SWAN_JPG.read_bytes())).pixels, swan)
    with Image.open(SWAN_JPG) as pil:
        assert np.array_equal(load_image(pil).pixels, swan)
    assert np.array_equal(load_image(swan).pixels, swan)
    loaded = LoadedImage(swan, path="x.jpg")
    assert load_image(loaded) is loaded


def test_grey_and_palette_pngs_become_rgb():
    grey = load_image(SWAN_PNG).pixels  # mode L, 0/255
    assert grey.shape == (480, 854, 3)
    assert np.array_equal(grey[..., 0], np.asarray(Image.open(SWAN_PNG)))
    assert (grey[..., 0] == grey[..., 2]).all()
    palette = load_image(PALETTE_PNG).pixels  # mode P, object ids as indices
    with Image.open(PALETTE_PNG) as image:
        assert image.mode == "P"
        expected = np.asarray(image.convert("RGB"))
    assert np.array_equal(palette, expected)
    array = np.asarray(Image.open(SWAN_PNG))
    assert np.array_equal(load_image(array).pixels, grey)


def test_rgba_is_composited_on_white(tmp_path, swan):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, :, 3] = 255  # opaque row
    rgba[1, :, 3] = 0  # transparent row
    rgba[2, :, 3] = 128
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image(path).pixels
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[1, 0].tolist() == [255, 255, 255]
    assert 120 < out[2, 0, 0] < 140  # about half way between 10 and 255
    assert np.array_equal(load_image(rgba).pixels, out)  # same answer from an array


def test_float_and_other_arrays():
    ones = np.ones((3, 4, 3), dtype=np.float32)
    assert (load_image(ones).pixels == 255).all()
    assert (load_image(ones * 0.2).pixels == 51).all()
    big = np.full((3, 4), 300.0)
    assert (load_image(big).pixels == 255).all()  # clipped
    assert load_image(np.zeros((3, 4, 3), dtype=np.uint16)).pixels.dtype == np.uint8
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        load_image(np.zeros((3, 4, 2), dtype=np.uint8))
    with pytest.raises(InputError, match="no pixels"):
        load_image(np.zeros((0, 4, 3), dtype=np.uint8))


def test_16_bit_images_are_scaled_not_saturated(tmp_path):
    deep = np.array([[0, 257, 32896], [65535, 514, 1000]], dtype=np.uint16)
    expected = [[0, 1, 128], [255, 2, 4]]  # value / 257, rounded
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I;16")
    assert load_image(path).pixels[..., 0].tolist() == expected
    assert load_image(deep).pixels[..., 1].tolist() == expected
    assert load_image(deep.astype(">u2")).pixels[..., 2].tolist() == expected


def jpeg_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def test_exif_orientation_is_applied(tmp_path, swan):
    upright = load_image(jpeg_with_orientation(swan, 1)).pixels
    assert upright.shape == (480, 854, 3)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg_with_orientation(swan, 6))  # display needs 90 degrees clockwise
    rotated = load_image(path).pixels
    assert rotated.shape == (854, 480, 3)
    assert np.array_equal(rotated, np.rot90(upright, k=-1))
    flipped = load_image(jpeg_with_orientation(swan, 3)).pixels  # 180 degrees
    assert np.array_equal(flipped, upright[::-1, ::-1])
    left = load_image(jpeg_with_orientation(swan, 8)).pixels  # 90 degrees anticlockwise
    assert np.array_equal(left, np.rot90(upright, k=1))


def test_missing_empty_folder_and_not_an_image(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    empty = tmp_path / "empty.jpg"
    empty.touch()
    with pytest.raises(InputError, match="empty"):
        load_image(empty)
    with pytest.raises(InputError, match="empty"):
        load_image(b"")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n")
    with pytest.raises(InputError, match="not an image"):
        load_image(text)
    noise = tmp_path / "noise.png"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=str(noise)):
        load_image(noise)


def test_truncated_jpeg_and_png(tmp_path):
    data = SWAN_JPG.read_bytes()
    half = tmp_path / "half.jpg"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(half)
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    png = SWAN_PNG.read_bytes()
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(png[: len(png) // 2])


def test_corrupt_png_is_a_user_error():
    png = bytearray(SWAN_PNG.read_bytes())
    png[1000] ^= 0xFF  # inside the compressed pixel data
    with pytest.raises(PixelgroundError, match="corrupt"):
        load_image(bytes(png))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header(width: int, height: int) -> bytes:
    """A valid PNG start claiming the given size, with (almost) no pixel data: tiny to write,
    huge if a decoder allocated it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def test_huge_dimensions_are_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(100_000, 100_000))  # 10^10 pixels, 30 GB if decoded
    with pytest.raises(InputError, match="too large"):
        load_image(bomb)
    with pytest.raises(InputError, match="more than the limit of 1,000,000"):
        load_image(png_header(3000, 3000), max_pixels=1_000_000)


def test_max_pixels_on_a_real_image(swan):
    limit = "854x480 = 409,920 pixels, more than the limit of 1,000;"
    with pytest.raises(InputError, match=limit) as error:
        load_image(SWAN_JPG, max_pixels=1000)
    assert "corrupt" not in str(error.value)  # a size limit, not a broken file
    with pytest.raises(InputError, match="more than the limit"):
        load_image(swan, max_pixels=1000)
    with Image.open(SWAN_JPG) as pil, pytest.raises(InputError, match="more than the limit"):
        load_image(pil, max_pixels=1000)
    assert load_image(SWAN_JPG, max_pixels=409_920).pixels.shape == (480, 854, 3)


def test_max_pixels_is_the_limit_not_pils_warning_threshold(monkeypatch):
    # PIL warns at Image.MAX_IMAGE_PIXELS and refuses at twice that; images between the two
    # are within our default limit and must load.
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(buffer, "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: warning zone
    assert load_image(buffer.getvalue()).pixels.shape == (40, 40, 3)
    with pytest.raises(InputError, match="more than the limit of 1,500"):
        load_image(buffer.getvalue(), max_pixels=1500)


def test_list_images_folder_glob_and_file(tmp_path, monkeypatch, swan):
    small = Image.fromarray(swan[:8, :8])
    for name in ["b.png", "a.jpg", "C.JPG", "d.webp"]:
        small.save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    small.save(tmp_path / "sub" / "e.png")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["C.JPG", "a.jpg", "b.png", "d.webp"]  # sorted, images only, not recursive
    assert [p.name for p in list_images(str(tmp_path / "*.png"))] == ["b.png"]
    assert [p.name for p in list_images(tmp_path / "**" / "*.png")] == ["b.png", "e.png"]
    monkeypatch.chdir(tmp_path)
    assert list_images("*.jp*g") == [Path("a.jpg")]
    assert list_images("sub/*.png") == [Path("sub/e.png")]
    assert list_images(tmp_path / "a.jpg") == [tmp_path / "a.jpg"]
    assert list_images(tmp_path / "*.gif") == []
    real = list_images(SWAN_JPG.parent)
    assert len(real) == 50 and real[0] == SWAN_JPG
