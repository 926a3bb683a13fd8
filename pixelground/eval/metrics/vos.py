"""Video object segmentation metrics, computed exactly as davis2017-evaluation does.

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
* **J&F** = (J + F) / 2 of the means.
* Statistics (``db_statistics``): M = mean over frames, R (recall) = fraction of frames
  scoring > 0.5, D (decay) = mean of the first quartile of frames minus mean of the last.

How it is computed (same numbers, bit for bit, without a per-frame dilation): the official code
dilates both boundary maps with ``disk(r)`` (``cv2.dilate``) for every frame and counts the
boundary pixels of one mask under the dilated boundary of the other. Here all frames of a mask
are bit-packed (64 pixels per word) and the ``seg2bmap`` boundary is computed on the packed
words; the boundary pixels become sorted integer keys, and "is there a boundary pixel of the
other mask in the disk x^2 + y^2 <= r^2" (``skimage.morphology.disk``'s definition) is asked
row offset by row offset: for offset dy the disk is the segment |dx| <= isqrt(r^2 - dy^2), one
``np.searchsorted`` of the still unmatched pixels. J uses popcounts of the packed masks. The
counts are integers equal to the official ones, so J and F are identical floats, several times
faster than the official per-frame code with OpenCV, end to end faster still (the official
loader's float copies are avoided; see ``benchmarks/eval_speed.py``).

Where things are: the counting core (and :func:`pairwise_scores`, :func:`region_similarity`,
:func:`boundary_f_measure`, :func:`db_statistics`) in :mod:`pixelground.eval.metrics.jf`; the
protocols on arrays in :mod:`pixelground.eval.metrics.vos_protocols`; over folders of PNGs,
streamed chunk by chunk from a thread pool of decoders, in
:mod:`pixelground.eval.metrics.vos_folders`. This module re-exports the core and holds
:func:`evaluate_vos`, the folder-level entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError
from pixelground.eval.metrics.jf import BOUND_TH as BOUND_TH
from pixelground.eval.metrics.jf import MAX_PROPOSALS as MAX_PROPOSALS
from pixelground.eval.metrics.jf import as_video_masks as as_video_masks
from pixelground.eval.metrics.jf import bound_radius as bound_radius
from pixelground.eval.metrics.jf import boundary_f_measure as boundary_f_measure
from pixelground.eval.metrics.jf import boundary_map as boundary_map
from pixelground.eval.metrics.jf import db_statistics as db_statistics
from pixelground.eval.metrics.jf import pairwise_scores as pairwise_scores
from pixelground.eval.metrics.jf import region_similarity as region_similarity
from pixelground.eval.metrics.vos_folders import DavisOptions, run_davis, run_mevis


def evaluate_vos(
    gt: str | Path,
    pred: str | Path,
    protocol: str = "semi",
    *,
    sequences: Sequence[str] | None = None,
    bound_th: float = BOUND_TH,
    exclude_void: bool = False,
    max_proposals: int = MAX_PROPOSALS,
    per_frame: bool = True,
    workers: int | None = None,
) -> dict[str, Any]:
    """Score a folder of predictions with a VOS protocol; returns a JSON-ready dict.

    Protocols:
        ``"semi"``: DAVIS semi-supervised (frames 1..-2, object k vs GT object k, M/R/D).
        ``"unsupervised"``: DAVIS unsupervised (all frames, up to ``max_proposals`` proposal
            ids, Hungarian matching on J&F, M/R/D).
        ``"mevis"``: MeViS / Ref-YouTube-VOS, one score per expression over all frames.

    Args:
        gt: DAVIS: a DAVIS root (``Annotations/480p`` or ``Annotations_unsupervised/480p``), a
            folder of sequence folders, or one sequence folder of PNGs. MeViS: a folder with
            ``meta_expressions.json`` and ``mask_dict.json`` (MeViS) or ``Annotations/``
            (Ref-YouTube-VOS layout, expressions name ``obj_id``).
        pred: DAVIS: folder of sequence folders of PNGs (values = object ids), or one sequence
            folder. MeViS: ``pred/<video>/<expression id>/<frame>.png``.
        protocol: ``"semi"``, ``"unsupervised"`` or ``"mevis"``.
        sequences: Only these sequences / videos.
        bound_th: Boundary tolerance of F.
        exclude_void: DAVIS only. The official davis2017 loader zeroes GT value 255 before it
            computes the void mask, so its published numbers count void pixels as background;
            False (default) reproduces that, True excludes them from J and F.
        max_proposals: Proposal limit of the unsupervised protocol.
        per_frame: Include per-frame J and F lists in the result.
        workers: PNG decoding threads (default up to 4); frames are scored chunk by chunk as
            they are decoded, so memory does not grow with the length of a sequence.

    Returns:
        ``{"protocol", "J", "F", "JF", ...}`` where J, F are means over objects (expressions for
        MeViS) and JF = (J + F) / 2, plus per-object (per-expression) entries; see
        :mod:`pixelground.eval.metrics.vos_protocols`.
    """
    if protocol == "mevis":
        return run_mevis(
            gt, pred, sequences=sequences, bound_th=bound_th, per_frame=per_frame, workers=workers
        )
    task = {"semi": "semi", "semi-supervised": "semi", "unsupervised": "unsupervised"}.get(protocol)
    if task is None:
        raise InputError(f"unknown VOS protocol {protocol!r}: use semi, unsupervised or mevis")
    options = DavisOptions(task, bound_th, exclude_void, max_proposals, workers)
    return run_davis(gt, pred, options, sequences, per_frame)
