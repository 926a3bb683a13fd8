"""Video object segmentation metrics (DAVIS J, F, J&F and statistics), computed exactly as
davis2017-evaluation does; the definitions, the edge cases and how the counts are computed
without a per-frame dilation are in :mod:`pixelground.eval.metrics.jf`.

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
        workers: How many at once (default min(4, CPUs)): on Linux, sequences (DAVIS) or
            videos (MeViS) are scored in that many forked processes
            (:mod:`pixelground.eval.processes`); with one unit, or where forking is not safe,
            in this process with that many PNG decoding threads. Either way frames are scored
            chunk by chunk as they are decoded, so memory does not grow with the length of a
            sequence, and the numbers are the same.

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
