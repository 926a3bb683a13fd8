"""The evaluation's PNG decoder (libdeflate + row filters undone in C): every filter type at
every pixel width against the PNG specification and Pillow, damaged files left to Pillow,
threads, and the per-thread buffers."""

from __future__ import annotations

import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.eval.datasets import png_decode, thread_buffers
from pixelground.eval.datasets.mask_png import fast_png, read_label_frame
from pixelground.eval.datasets.png_decode import decode_png, decode_rgb_words

CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # colour type -> bytes per pixel (gray, gray+alpha, RGB, RGBA)


def _paeth(a: int, b: int, c: int) -> int:
    estimate = a + b - c
    pa, pb, pc = abs(estimate - a), abs(estimate - b), abs(estimate - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _filtered_rows(pixels: np.ndarray, filters: list[int]) -> bytes:
    """(H, W[, C]) uint8 pixels filtered row by row, byte by byte, as the PNG spec states."""
    values = pixels.reshape(pixels.shape[0], -1).astype(int)
    bpp = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = []
    for r, kind in enumerate(filters):
        above = values[r - 1] if r else np.zeros(values.shape[1], dtype=int)
        row = []
        for x, value in enumerate(values[r]):
            a = values[r, x - bpp] if x >= bpp else 0
            b, c = above[x], (above[x - bpp] if x >= bpp else 0)
            predicted = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            row.append((value - predicted) % 256)
        rows.append(bytes([kind, *row]))
    return b"".join(rows)


def _png(
    pixels: np.ndarray, filters: list[int], colour: int, idat: bytes | None = None, interlace=0
) -> bytes:
    """An 8-bit PNG of ``pixels`` whose rows use ``filters`` (0 None ... 4 Paeth)."""
    height, width = pixels.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, interlace)
    palette = _chunk(b"PLTE", bytes(range(256)) * 3) if colour == 3 else b""
    body = zlib.compress(_filtered_rows(pixels, filters)) if idat is None else idat
    half = len(body) // 2  # image data split over two IDAT chunks, as encoders may write
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + palette
        + _chunk(b"IDAT", body[:half])
        + _chunk(b"IDAT", body[half:])
        + _chunk(b"IEND", b"")
    )


def _idat_of(data: bytes) -> bytes:
    """The joined IDAT bodies of PNG bytes."""
    bodies, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] == b"IDAT":
            bodies.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    return b"".join(bodies)


def _pillow(data: bytes, tmp_path) -> np.ndarray:
    (tmp_path / "p.png").write_bytes(data)
    with Image.open(tmp_path / "p.png") as image:
        return np.asarray(image)


def test_the_c_extension_is_built():
    """The install builds ``_png_filters`` (setup.py); without it every reader falls back to
    Pillow, which is correct but several times slower."""
    assert png_decode.FAST_PNG


@pytest.mark.parametrize("colour", [0, 4, 2, 6, 3])
@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
def test_each_filter_type_at_each_pixel_width(tmp_path, colour, kind):
    """Every filter, alone and mixed with the others, on random bytes (every predictor branch)
    and on flat shapes, decodes to the pixels written and to what Pillow reads."""
    rng = np.random.default_rng(kind + 10 * colour)
    shape = (9, 13) if colour in (0, 3) else (9, 13, CHANNELS[colour])
    shapes = np.zeros(shape, dtype=np.uint8)
    shapes[2:7, 3:10] = 200
    shapes[4:, 6:] = 17
    for pixels in (rng.integers(0, 256, shape).astype(np.uint8), shapes):
        for filters in ([kind] * 9, [kind, *rng.integers(0, 5, 8).tolist()]):
            data = _png(pixels, filters, colour)
            decoded = decode_png(data)
            assert decoded is not None
            assert np.array_equal(decoded.pixels, pixels)
            assert np.array_equal(decoded.pixels, _pillow(data, tmp_path))
            words = decode_rgb_words(data)
            assert (words is None) == (colour not in (2, 6))
            assert words is None or np.array_equal(words, _words(pixels))


def test_images_pillow_writes(tmp_path):
    """Masks and RGB id maps saved by Pillow (its own filter choices, Paeth among them)."""
    rng = np.random.default_rng(3)
    mask = np.zeros((120, 200), dtype=np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, 100), rng.integers(0, 180)
        mask[y : y + rng.integers(5, 40), x : x + rng.integers(5, 60)] = 255
    rgb = rng.integers(0, 256, (120, 200, 3)).astype(np.uint8) * (mask[..., None] > 0)
    for array, mode in ((mask, "L"), (rgb, "RGB")):
        Image.fromarray(array, mode=mode).save(tmp_path / "m.png")
        decoded = decode_png((tmp_path / "m.png").read_bytes())
        assert decoded is not None and np.array_equal(decoded.pixels, array)
    assert fast_png(tmp_path / "m.png") is None  # RGB is not a mask PNG: left to Pillow


def _words(pixels: np.ndarray) -> np.ndarray:
    """What decode_rgb_words must give: R + 256 G + 65536 B per pixel."""
    rgb = pixels[..., :3].astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


@pytest.mark.parametrize("colour", [2, 6])
def test_rgb_words_for_every_filter_and_into_the_reused_buffer(colour):
    rng = np.random.default_rng(colour)
    pixels = rng.integers(0, 256, (11, 7, CHANNELS[colour])).astype(np.uint8)
    data = _png(pixels, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 4], colour)
    fresh = decode_rgb_words(data)
    assert fresh.dtype == np.uint32 and np.array_equal(fresh, _words(pixels))
    first = decode_rgb_words(data, reuse="test words")
    second = decode_rgb_words(data, reuse="test words")
    assert np.array_equal(first, fresh) and np.shares_memory(first, second)
    assert not np.shares_memory(fresh, decode_rgb_words(data))
    gray = _png(pixels[..., 0], [4] * 11, 0)
    assert decode_rgb_words(gray) is None and decode_png(gray) is not None


def test_what_is_left_to_pillow(tmp_path):
    """Not an 8-bit non-interlaced PNG, or damaged: None here; the readers then ask Pillow,
    whose error names the file."""
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    good = _png(pixels, [0, 4, 0], 0)
    raw = bytearray(zlib.decompress(zlib.compress(_filtered_rows(pixels, [0, 4, 0]))))
    raw[5] = 7  # no such filter type
    bad_filter = _png(pixels, [0, 4, 0], 0, idat=zlib.compress(bytes(raw)))
    short = _png(pixels, [0, 4, 0], 0, idat=zlib.compress(bytes(raw[:-1])))
    long = _png(pixels, [0, 4, 0], 0, idat=zlib.compress(bytes(raw) + b"\0"))
    corrupt = _png(pixels, [0, 4, 0], 0, idat=zlib.compress(bytes(raw))[:-5] + b"\0" * 5)
    Image.fromarray(pixels.astype(np.uint16) * 1000).save(tmp_path / "deep.png")
    cases = [bad_filter, short, long, corrupt, good[: len(good) // 2], b"GIF89a", b""]
    cases.append((tmp_path / "deep.png").read_bytes())
    cases.append(_png(pixels, [0, 4, 0], 0, interlace=1))  # Adam7: rows are not in order
    for data in cases:
        assert decode_png(data) is None and decode_rgb_words(data) is None
    rgb_bad_filter = bytearray(zlib.decompress(_idat_of(_png(np.zeros((3, 4, 3)), [0] * 3, 2))))
    rgb_bad_filter[13] = 5
    rgb = _png(np.zeros((3, 4, 3), np.uint8), [0] * 3, 2, idat=zlib.compress(rgb_bad_filter))
    assert decode_rgb_words(rgb) is None
    assert decode_png(good) is not None
    (tmp_path / "bad.png").write_bytes(bad_filter)
    assert fast_png(tmp_path / "bad.png") is None
    with pytest.raises(InputError, match="cannot read mask PNG"):
        read_label_frame(tmp_path / "bad.png")


def test_the_extension_checks_its_buffers():
    from pixelground.eval.datasets import _png_filters

    rows, out, words = bytes(2 * 7), bytearray(2 * 6), bytearray(2 * 2 * 4)
    _png_filters.unfilter(rows, out, 2, 6, 3)
    _png_filters.unfilter_words(rows, words, 2, 6, 3)
    for args in ((rows, out, 2, 6, 4), (rows, out, 3, 6, 3), (rows, bytearray(5), 2, 6, 3)):
        with pytest.raises(ValueError, match="unfilter"):
            _png_filters.unfilter(*args)
    for args in ((rows, words, 2, 6, 2), (rows, out, 2, 6, 3), (rows, words, 2, 6, 6)):
        with pytest.raises(ValueError, match="unfilter_words"):
            _png_filters.unfilter_words(*args)
    with pytest.raises(TypeError):
        _png_filters.unfilter(rows, bytes(12), 2, 6, 3)  # read-only output
    runs = bytearray(2 * 2 * 8)
    assert _png_filters.pair_runs(rows, 3, rows, 3, 2, 2, runs) == 2  # one run per row
    for args in ((rows, 3, rows, 4, 2, 2, runs), (rows, 3, rows, 3, 2, 2, bytearray(31))):
        with pytest.raises(ValueError, match="pair_runs: the buffers"):
            _png_filters.pair_runs(*args)
    bad = bytes(7) + b"\x09" + bytes(6)  # row 1 of this image has filter type 9
    with pytest.raises(ValueError, match="row 1 of the prediction"):
        _png_filters.pair_runs(rows, 3, bad, 3, 2, 2, runs)
    with pytest.raises(ValueError, match="row 1 of the ground truth"):
        _png_filters.pair_runs(bad, 3, rows, 3, 2, 2, runs)


def test_threads_decode_alike():
    rng = np.random.default_rng(8)
    images = [rng.integers(0, 4, (40, 50, 3)).astype(np.uint8) * 60 for _ in range(12)]
    files = [_png(a, rng.integers(0, 5, 40).tolist(), 2) for a in images]
    with ThreadPoolExecutor(4) as pool:
        decoded = list(pool.map(lambda d: decode_png(d).pixels.copy(), files * 3))
    assert all(np.array_equal(d, a) for d, a in zip(decoded, images * 3, strict=True))


def test_thread_buffers_are_per_thread_and_handed_on():
    """Two threads get their own buffers; a finished thread's set goes to the next one."""
    seen: dict[str, np.ndarray] = {}
    both = threading.Barrier(2)

    def take(name: str) -> None:
        seen[name] = thread_buffers.thread_buffer("probe", 1000)
        if name != "c":
            both.wait(timeout=10)  # a and b hold their buffers at the same time

    threads = [threading.Thread(target=take, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not np.shares_memory(seen["a"], seen["b"])
    later = threading.Thread(target=take, args=("c",))
    later.start()
    later.join()
    assert any(np.shares_memory(seen["c"], seen[n]) for n in ("a", "b"))
    here = thread_buffers.thread_buffer("probe", 10)
    assert thread_buffers.thread_buffer("probe", 10) is not here  # a new view ...
    assert np.shares_memory(here, thread_buffers.thread_buffer("probe", 10))  # ... same memory
    assert thread_buffers.thread_buffer("probe", 10**6).size == 10**6  # grown when too small


def test_the_shared_pngs_decode_as_pillow_reads_them(shared_data):
    """DAVIS 0/255 masks, palette results and COCO panoptic RGB id maps: every one decoded
    here, equal to Pillow."""
    folders = [
        shared_data / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan",
        shared_data / "davis2017eval_predictions" / "unsupervised" / "rvos" / "blackswan",
        shared_data / "panopticapi_sample" / "panoptic_examples",
        shared_data / "golden" / "pq_pred" / "panoptic_pred",
    ]
    paths = [p for folder in folders for p in sorted(folder.glob("*.png"))[::7]]
    assert len(paths) >= 12
    for path in paths:
        decoded = decode_png(path.read_bytes())
        with Image.open(path) as image:
            assert decoded is not None and np.array_equal(decoded.pixels, np.asarray(image))


def test_without_the_extension_the_figures_are_the_same(shared_data, monkeypatch):
    """An install without a C compiler reads every PNG with Pillow: VOS (semi and
    unsupervised) and PQ on the shared data give the same figures as the fast path."""
    from pixelground.eval.metrics import evaluate_vos
    from pixelground.eval.metrics.panoptic import evaluate_panoptic

    gt_root = shared_data / "davis2016_blackswan" / "Annotations" / "480p"
    preds = shared_data / "davis2017eval_predictions"
    pq_args = (
        shared_data / "panopticapi_sample" / "panoptic_examples.json",
        shared_data / "panopticapi_sample" / "panoptic_examples",
        shared_data / "golden" / "pq_pred" / "panoptic_pred.json",
        shared_data / "golden" / "pq_pred" / "panoptic_pred",
    )

    def figures() -> tuple:
        semi = evaluate_vos(gt_root, preds / "semi-supervised" / "osvos", "semi", workers=1)
        unsup = evaluate_vos(gt_root, preds / "unsupervised" / "rvos", "unsupervised", workers=1)
        return semi, unsup, evaluate_panoptic(*pq_args)

    fast = figures()
    monkeypatch.setattr(png_decode, "png_filters", None)
    a_png = next((shared_data / "panopticapi_sample" / "panoptic_examples").glob("*.png"))
    assert decode_png(a_png.read_bytes()) is None  # every PNG now goes to Pillow
    assert figures() == fast
