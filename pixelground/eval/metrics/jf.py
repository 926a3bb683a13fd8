"""J and F of video masks, computed exactly as davis2017-evaluation does, chunk by chunk.

Definitions (``davis2017/metrics.py`` and ``davis2017/utils.py`` of
davisvideochallenge/davis2017-evaluation):

* **J** (region similarity, ``db_eval_iou``): per frame ``|G & P & ~V| / |(G | P) & ~V|``
  with ``V`` the void pixels; a frame where the union is empty scores 1 (both masks empty).
* **F** (boundary F-measure, ``db_eval_boundary`` / ``f_measure``): masks are first cut by
  ``~V``; their one-pixel boundaries come from ``seg2bmap`` (a pixel is a boundary pixel when it
  differs from its east, south or south-east neighbour); a boundary pixel of one mask matches
  when the other mask has a boundary pixel inside a disk of radius
  ``ceil(bound_th * hypot(H, W))`` (8 px at 480x854 with ``bound_th = 0.008``; a
  ``bound_th >= 1`` is taken as the radius in pixels). Precision = matched prediction boundary
  / prediction boundary, recall = matched GT boundary / GT boundary, F = 2PR / (P + R).
  Edge cases as the official code: no predicted boundary but a GT boundary gives P = 1, R = 0
  (F = 0); a predicted boundary but none in the GT gives P = 0, R = 1 (F = 0); neither gives
  F = 1.
* Statistics (``db_statistics``): M = mean over frames, R (recall) = fraction of frames
  scoring > 0.5, D (decay) = mean of the first quartile of frames minus mean of the last.

How it is computed (same numbers, bit for bit): the official code dilates both boundary maps
with ``disk(r)`` (``cv2.dilate``, one byte per pixel) for every frame and counts the boundary
pixels of one mask under the dilated boundary of the other. Here the frames of a mask are
bit-packed (64 pixels per word), the ``seg2bmap`` boundary is computed on the packed words, and
so is the dilation by the disk x^2 + y^2 <= r^2 (``skimage.morphology.disk``'s definition):
row offset dy of the disk is the segment |dx| <= isqrt(r^2 - dy^2), so the boundary is widened
along its rows by shifting and or-ing whole words (each distinct half-width once, by doubling)
and the widened rows are or-ed in at each row offset. Matches are popcounts of "boundary and
dilated boundary of the other mask", J popcounts of the packed masks.

Every count is per frame, so frames are processed in chunks (about 4 megapixels) and only the
integer counts are kept (:class:`PairCounts`): memory stays bounded however long the video,
and a reader can feed chunks as it decodes them. J and F follow from the counts with the
official formulas, so they are identical floats.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from pixelground.core.errors import InputError

BOUND_TH = 0.008
MAX_PROPOSALS = 20
#: Pixels per chunk of frames: about 4 megapixels keeps the packed work in cache.
CHUNK_PIXELS = 2**22

_POPCOUNT_LUT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
_ONE, _SIXTY_THREE = np.uint64(1), np.uint64(63)


def boundary_map(masks: np.ndarray) -> np.ndarray:
    """One-pixel boundaries of binary masks, as ``seg2bmap`` of davis2017-evaluation.

    A pixel is on the boundary when its value differs from its east, south or south-east
    neighbour; in the last row only the east neighbour counts, in the last column only the
    south one, and the bottom-right pixel is never a boundary pixel.

    Args:
        masks: (..., H, W) masks, any dtype; nonzero means inside.

    Returns:
        Bool array of the same shape.
    """
    seg = np.asarray(masks).astype(bool)
    bmap = np.empty_like(seg)
    inner = seg[..., :-1, :-1]
    bmap[..., :-1, :-1] = (inner ^ seg[..., :-1, 1:]) | (inner ^ seg[..., 1:, :-1])
    bmap[..., :-1, :-1] |= inner ^ seg[..., 1:, 1:]
    bmap[..., -1, :-1] = seg[..., -1, :-1] ^ seg[..., -1, 1:]  # last row: east only
    bmap[..., :-1, -1] = seg[..., :-1, -1] ^ seg[..., 1:, -1]  # last column: south only
    bmap[..., -1, -1] = False
    return bmap


def bound_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Boundary tolerance in pixels: ``ceil(bound_th * hypot(H, W))``, or ``bound_th`` if >= 1.

    Raises:
        InputError: ``bound_th`` is >= 1 but not a whole number of pixels, or not positive.
    """
    if bound_th <= 0:
        raise InputError(f"bound_th must be positive, got {bound_th}")
    if bound_th >= 1:
        if float(bound_th) != int(bound_th):
            raise InputError(
                f"a bound_th >= 1 is a radius in pixels; use a whole number, not {bound_th}"
            )
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def as_video_masks(masks: np.ndarray, name: str = "masks") -> np.ndarray:
    """(H, W) or (T, H, W) masks as a bool (T, H, W) array; ``name`` is for the error."""
    array = np.asarray(masks)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise InputError(f"{name} must have shape (H, W) or (T, H, W), got {array.shape}")
    return array.astype(bool, copy=False)


def chunk_frames(height: int, width: int) -> int:
    """Frames per chunk at this size (at least 1): :data:`CHUNK_PIXELS` / (H * W)."""
    return max(1, CHUNK_PIXELS // max(1, height * width))


@dataclass(frozen=True)
class Geometry:
    """Frame size and boundary radius of one evaluation.

    A packed frame has H + 1 rows (the last one replicates row H - 1) of :attr:`words` 64-bit
    words; each row has at least r + 1 padding bits after its W pixels, so bits widened past
    the end of a row, or into the padding of the row above, never reach a pixel of the next.
    """

    height: int
    width: int
    radius: int

    @classmethod
    def of(cls, height: int, width: int, bound_th: float = BOUND_TH) -> Geometry:
        """The geometry of (H, W) frames with the tolerance ``bound_th``."""
        return cls(height, width, bound_radius(height, width, bound_th))

    @property
    def words(self) -> int:  # 64-pixel words per row: W pixels, then at least r + 1 padding bits
        return (self.width + self.radius + 1 + 63) // 64

    @cached_property
    def halves(self) -> list[int]:
        """Half-width of the disk's row at offset dy = 0..r: ``isqrt(r^2 - dy^2)``."""
        return [math.isqrt(self.radius**2 - dy * dy) for dy in range(self.radius + 1)]

    @property
    def chunk(self) -> int:
        return chunk_frames(self.height, self.width)

    @cached_property
    def valid(self) -> np.ndarray:
        """(chunk * (H + 1) * words,) uint64: the bits of real pixels (not padding)."""
        bits = np.zeros((self.height + 1, self.words * 64), dtype=bool)
        bits[: self.height, : self.width] = True
        row_words = _little_words(np.packbits(bits, axis=-1, bitorder="little"))
        return np.tile(row_words.reshape(-1), self.chunk)


@dataclass
class Track:
    """What the pair counts need from one object's (void-cut) masks over the C frames of a chunk.

    Attributes:
        words: (C, (H + 1) * words) uint64 mask bits (pixel (y, x) is bit x % 64 of word
            y * words + x // 64; padding bits are 0), or None for an object absent from the
            chunk.
        area: (C,) int64 pixel counts.
        boundary: (C, H + 1, words) uint64 ``seg2bmap`` boundary bits (padding bits 0), or
            None with ``words``.
        n_boundary: (C,) int64 boundary pixel counts.
    """

    words: np.ndarray | None
    area: np.ndarray
    boundary: np.ndarray | None
    n_boundary: np.ndarray
    _dilated: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def empty(cls, frames: int) -> Track:
        """The track of an object absent from all ``frames`` frames."""
        zeros = np.zeros(frames, dtype=np.int64)
        return cls(None, zeros, None, zeros)

    def dilated(self, geometry: Geometry) -> np.ndarray:
        """(C, H + 1, words) uint64: the boundary dilated by the disk of radius r (computed
        once; padding bits may be set and are never counted)."""
        if self._dilated is None:
            self._dilated = dilate_bits(self.boundary, geometry.halves)
        return self._dilated


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per frame of (T, ...) uint64 words."""
    flat = words.reshape(len(words), -1)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(flat).sum(axis=1, dtype=np.int64)
    return _POPCOUNT_LUT[flat.view(np.uint8)].sum(axis=1, dtype=np.int64)


def _little_words(array: np.ndarray) -> np.ndarray:
    """View uint8 bytes (last axis a multiple of 8) as uint64 words, byte 0 lowest."""
    words = array.view("<u8")
    return words if words.dtype.isnative else words.astype(np.uint64)


def _pack(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """(T, H, W) bool -> (T, H + 1, words) uint64 with column W and row H copying W-1, H-1."""
    frames, height, width = mask.shape
    buf = np.zeros((frames, height + 1, geometry.words * 8), dtype=np.uint8)
    buf[:, :height, : (width + 7) // 8] = np.packbits(mask, axis=-1, bitorder="little")
    return _with_edges(_little_words(buf), width)


def _with_edges(words: np.ndarray, width: int) -> np.ndarray:
    """(T, H + 1, words) uint64 whose rows 0..H-1 are set: column W copies column W - 1 and
    row H copies row H - 1 (in place; returned)."""
    (src_word, src_bit), (dst_word, dst_bit) = divmod(width - 1, 64), divmod(width, 64)
    column = (words[:, :-1, src_word] >> np.uint64(src_bit)) & _ONE
    words[:, :-1, dst_word] |= column << np.uint64(dst_bit)
    words[:, -1] = words[:, -2]
    return words


def _widen(words: np.ndarray, step: int) -> np.ndarray:
    """Flat uint64 words with every set bit copied ``step`` (1..63) pixels to each side,
    carrying across words (what crosses a row end lands on padding bits)."""
    up, down = np.uint64(step), np.uint64(64 - step)
    out = words | (words << up)
    out[1:] |= words[:-1] >> down
    out |= words >> up
    out[:-1] |= words[1:] << down
    return out


def dilate_bits(bits: np.ndarray, halves: Sequence[int]) -> np.ndarray:
    """(C, R, words) packed bits dilated by the disk whose row at offset dy spans
    |dx| <= ``halves[dy]`` (rows of a frame only; never across frames).

    Each distinct half-width is reached by widening the previous one by at most twice its
    reach plus one (so the copies touch), then each widened row is or-ed in at +-dy.
    """
    widened, current, reach = {}, bits.reshape(-1), 0
    for half in sorted(set(halves)):
        while reach < half:
            step = min(half - reach, 2 * reach + 1, 63)
            current, reach = _widen(current, step), reach + step
        widened[half] = current.reshape(bits.shape)
    out = widened[halves[0]].copy()
    for dy in range(1, len(halves)):
        rows = widened[halves[dy]]
        out[:, :-dy] |= rows[:, dy:]  # row y is within reach of a bit in row y + dy
        out[:, dy:] |= rows[:, :-dy]  # and of one in row y - dy
    return out


def _boundary_words(padded: np.ndarray, row_words: int) -> np.ndarray:
    """Flat uint64 words of a packed stack -> words of the pixels differing from E, S or SE.

    Works on the flat array so numpy runs long loops: the south neighbour is ``row_words``
    words further, the east neighbour one bit further (carrying across words). What crosses a
    row or frame end lands on padding bits, which the caller masks out.
    """
    east = padded >> _ONE
    east[:-1] |= padded[1:] << _SIXTY_THREE
    bmap = padded ^ east
    bmap[:-row_words] |= padded[:-row_words] ^ padded[row_words:]
    bmap[:-row_words] |= padded[:-row_words] ^ east[row_words:]
    return bmap


def track(mask: np.ndarray, geometry: Geometry, keep: np.ndarray | None = None) -> Track:
    """Summarise a (C, H, W) bool mask of at most ``geometry.chunk`` frames.

    The boundary is ``seg2bmap``'s, computed 64 pixels at a time: with the last column and row
    replicated, "differs from its east, south or south-east neighbour" is exactly the official
    rule, including its special last row, last column and bottom-right pixel.

    Args:
        mask: (C, H, W) bool.
        geometry: the evaluation's geometry.
        keep: optional (C, H, W) bool ``~void``; the mask is cut by it first.
    """
    if keep is not None:
        mask = mask & keep
    return _track_packed(_pack(mask, geometry), geometry)


def track_rows(rows: np.ndarray, geometry: Geometry) -> Track:
    """:func:`track` of masks given as (C, H, words) uint64 row bits (pixel (y, x) is bit
    x % 64 of word x // 64 of row y; bits from W on are 0)."""
    packed = np.zeros((len(rows), geometry.height + 1, geometry.words), dtype=np.uint64)
    packed[:, : geometry.height] = rows
    return _track_packed(_with_edges(packed, geometry.width), geometry)


def _track_packed(packed: np.ndarray, geometry: Geometry) -> Track:
    """The track of (C, H + 1, words) packed masks (:func:`_pack`'s layout)."""
    frames = len(packed)
    padded = packed.reshape(-1)
    valid = geometry.valid[: padded.size]
    bmap = _boundary_words(padded, geometry.words)
    bmap &= valid
    padded &= valid
    words = padded.reshape(frames, -1)
    boundary = bmap.reshape(frames, geometry.height + 1, geometry.words)
    return Track(words, _popcount(words), boundary, _popcount(boundary))


def matched(source: Track, target: Track, geometry: Geometry) -> np.ndarray:
    """Per frame, how many boundary pixels of ``source`` have one of ``target`` within the
    disk of radius r: popcounts of the source boundary and the target's dilated boundary."""
    if source.boundary is None or target.boundary is None or not source.n_boundary.any():
        return np.zeros(len(source.area), dtype=np.int64)
    if not target.n_boundary.any():
        return np.zeros(len(source.area), dtype=np.int64)
    return _popcount(source.boundary & target.dilated(geometry))


def j_from_counts(inter: np.ndarray, area_gt: np.ndarray, area_pred: np.ndarray) -> np.ndarray:
    """J = inter / union per frame, 1 where the union is empty (``db_eval_iou``)."""
    union = area_gt + area_pred - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    j[union == 0] = 1.0
    return j


def f_from_counts(
    pred_match: np.ndarray, n_pred: np.ndarray, gt_match: np.ndarray, n_gt: np.ndarray
) -> np.ndarray:
    """F per frame from boundary counts, with ``f_measure``'s edge cases."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, pred_match / n_pred.astype(np.float64), 1.0)
        recall = np.where(n_gt > 0, gt_match / n_gt.astype(np.float64), 1.0)
        total = precision + recall
        f = 2 * precision * recall / np.where(total == 0, 1.0, total)
    return np.where(total == 0, 0.0, f)


class PairCounts:
    """Per-frame integer counts of (prediction, GT) pairs over T frames, filled chunk by chunk.

    J and F of every pair follow from these counts (:meth:`scores`); nothing of the masks is
    kept, so a video of any length needs O(M * N * T) integers.

    Args:
        num_pred: M predicted objects (may grow: :meth:`grow`).
        num_gt: N GT objects.
        num_frames: T.
    """

    def __init__(self, num_pred: int, num_gt: int, num_frames: int):
        self.num_frames = num_frames
        self.gt_area = np.zeros((num_gt, num_frames), dtype=np.int64)
        self.gt_boundary = np.zeros((num_gt, num_frames), dtype=np.int64)
        self.pred_area = np.zeros((0, num_frames), dtype=np.int64)
        self.pred_boundary = np.zeros((0, num_frames), dtype=np.int64)
        self.inter = np.zeros((0, num_gt, num_frames), dtype=np.int64)
        self.pred_match = np.zeros((0, num_gt, num_frames), dtype=np.int64)
        self.gt_match = np.zeros((0, num_gt, num_frames), dtype=np.int64)
        self.grow(num_pred)

    @property
    def num_pred(self) -> int:
        return len(self.pred_area)

    @property
    def num_gt(self) -> int:
        return len(self.gt_area)

    def grow(self, num_pred: int) -> None:
        """Make room for ``num_pred`` predictions (new ones count as empty so far)."""
        extra = num_pred - self.num_pred
        if extra <= 0:
            return
        frames = self.num_frames
        self.pred_area = np.concatenate([self.pred_area, np.zeros((extra, frames), np.int64)])
        self.pred_boundary = np.concatenate(
            [self.pred_boundary, np.zeros((extra, frames), np.int64)]
        )
        pad = np.zeros((extra, self.num_gt, frames), dtype=np.int64)
        self.inter = np.concatenate([self.inter, pad])
        self.pred_match = np.concatenate([self.pred_match, pad])
        self.gt_match = np.concatenate([self.gt_match, pad])

    def add(
        self,
        start: int,
        gts: Sequence[Track],
        preds: dict[int, Track],
        geometry: Geometry,
        pairs: Iterable[tuple[int, int]] | None = None,
    ) -> None:
        """Count one chunk of frames ``start..start + C``.

        Args:
            start: index of the chunk's first frame.
            gts: the N GT tracks of the chunk (:meth:`Track.empty` for absent objects).
            preds: prediction index -> track; predictions not given are empty in this chunk.
            geometry: the evaluation's geometry.
            pairs: (prediction, GT) index pairs to count; default every given prediction
                against every GT object.
        """
        frames = len(gts[0].area) if gts else len(next(iter(preds.values())).area)
        window = slice(start, start + frames)
        for g, gt in enumerate(gts):
            self.gt_area[g, window] = gt.area
            self.gt_boundary[g, window] = gt.n_boundary
        for p, pred in preds.items():
            self.pred_area[p, window] = pred.area
            self.pred_boundary[p, window] = pred.n_boundary
        if pairs is None:
            pairs = [(p, g) for p in preds for g in range(len(gts))]
        for p, g in pairs:
            pred, gt = preds.get(p), gts[g]
            if pred is None or pred.words is None or gt.words is None:
                continue  # an empty side: no intersection, no boundary to match
            self.inter[p, g, window] = _popcount(gt.words & pred.words)
            self.pred_match[p, g, window] = matched(pred, gt, geometry)
            self.gt_match[p, g, window] = matched(gt, pred, geometry)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """``(J, F)``, each (M, N, T) float64, from the counts (the official formulas)."""
        j = j_from_counts(self.inter, self.gt_area[None], self.pred_area[:, None])
        f = f_from_counts(
            self.pred_match, self.pred_boundary[:, None], self.gt_match, self.gt_boundary[None]
        )
        return j, f


def pairwise_scores(
    gt_objects: Sequence[np.ndarray] | np.ndarray,
    pred_objects: Sequence[np.ndarray] | np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
    pairs: str = "all",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of prediction objects against GT objects (in memory).

    Args:
        gt_objects: N GT objects, each (T, H, W) bool: an (N, T, H, W) array or any sequence
            whose items are (T, H, W) masks (e.g. a lazy stack that builds ``labels == k``).
        pred_objects: M predicted objects, same form.
        void: Optional (T, H, W) bool void pixels, excluded from J and cut out before the
            boundaries of F are extracted.
        bound_th: Boundary tolerance, fraction of the image diagonal (or pixels if >= 1).
        pairs: ``"all"`` for every (prediction, GT) pair, ``"diagonal"`` for prediction i vs
            GT i only (needs M == N).

    Returns:
        ``(J, F)``, each (M, N, T) float64 for ``"all"`` or (N, T) for ``"diagonal"``.
    """
    num_gt, num_pred = len(gt_objects), len(pred_objects)
    if not num_gt and not num_pred:
        raise InputError("no masks to score: pass at least one GT or predicted object")
    if pairs == "diagonal" and num_gt != num_pred:
        raise InputError(f"diagonal pairs need as many predictions ({num_pred}) as GT ({num_gt})")
    first = as_video_masks((gt_objects[0] if num_gt else pred_objects[0]), "masks")
    num_frames, height, width = first.shape
    geometry = Geometry.of(height, width, bound_th)
    keep = None if void is None else ~as_video_masks(void, "void")
    gts = [_checked(gt_objects[g], first.shape, "GT") for g in range(num_gt)]
    preds = [_checked(pred_objects[p], first.shape, "prediction") for p in range(num_pred)]
    counts = PairCounts(num_pred, num_gt, num_frames)
    wanted = [(k, k) for k in range(num_gt)] if pairs == "diagonal" else None
    for start in range(0, num_frames, geometry.chunk):
        window = slice(start, start + geometry.chunk)
        cut = None if keep is None else keep[window]
        gt_tracks = [track(m[window], geometry, cut) for m in gts]
        pred_tracks = {p: track(m[window], geometry, cut) for p, m in enumerate(preds)}
        counts.add(start, gt_tracks, pred_tracks, geometry, wanted)
    j, f = counts.scores()
    if pairs == "diagonal":
        index = np.arange(num_gt)
        return j[index, index], f[index, index]
    return j, f


def _checked(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    video = as_video_masks(mask, name)
    if video.shape != shape:
        raise InputError(f"{name} masks have shape {video.shape}, expected {shape}")
    return video


def region_similarity(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None
) -> np.ndarray | float:
    """J per frame (``db_eval_iou``): (T, H, W) -> (T,) float64; (H, W) -> float."""
    gts, preds = [as_video_masks(gt, "gt")], [as_video_masks(pred, "pred")]
    j, _ = pairwise_scores(gts, preds, void, pairs="diagonal")
    return float(j[0, 0]) if np.ndim(gt) == 2 else j[0]


def boundary_f_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> np.ndarray | float:
    """F per frame (``db_eval_boundary``): (T, H, W) -> (T,) float64; (H, W) -> float."""
    _, f = pairwise_scores(
        [as_video_masks(gt, "gt")], [as_video_masks(pred, "pred")], void, bound_th, pairs="diagonal"
    )
    return float(f[0, 0]) if np.ndim(gt) == 2 else f[0]


def db_statistics(per_frame: np.ndarray | Sequence[float]) -> tuple[float, float, float]:
    """Mean, recall and decay of per-frame scores, as davis2017 ``utils.db_statistics``.

    M = nanmean; R = nanmean(score > 0.5); D = nanmean(first bin) - nanmean(last bin) with the
    frames cut into 4 bins at ``round(linspace(1, T, 5)) - 1`` (bins share their edge frames).
    The official code casts the bin edges to uint8, which wraps for sequences longer than
    256 frames; here they are plain integers (identical for every DAVIS sequence).

    Args:
        per_frame: (T,) scores, T >= 1.

    Returns:
        ``(mean, recall, decay)`` as Python floats.
    """
    values = np.asarray(per_frame, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise InputError(f"db_statistics needs a non-empty 1-D array, got shape {values.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64)
        bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)
