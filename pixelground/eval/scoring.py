"""Scoring loaded ground-truth samples against read predictions, one function per task.

Each ``score_*`` takes the samples a dataset loader returned (or :class:`RecordSample` built
from a ground-truth file in the prediction formats) and the predictions keyed by sample id
(:func:`pixelground.eval.predictions.read_predictions`), pairs them, and calls the metric.
A ground-truth sample without a prediction is an error unless ``allow_missing`` is set, in
which case it is scored as "no mask" and counted in ``"missing_predictions"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.eval.metrics.caption import caption_scores
from pixelground.eval.metrics.gcg import GCGImage, evaluate_gcg
from pixelground.eval.metrics.grefer import GReferAccumulator
from pixelground.eval.metrics.phrase_similarity import PhraseSimilarity
from pixelground.eval.metrics.png import PNGAccumulator
from pixelground.eval.metrics.refer import ReferAccumulator
from pixelground.eval.metrics.selection import (
    covered_objects,
    covers,
    selection_outcome,
    selection_rates,
)
from pixelground.eval.predictions import Prediction


@dataclass
class RecordSample:
    """A ground-truth sample read from a file in the prediction formats (id, masks, text)."""

    id: str
    record: Prediction
    height: int
    width: int

    @property
    def text(self) -> str:
        return self.record.text or ""

    @property
    def image_path(self) -> Path | None:
        return Path(self.record.image) if self.record.image else None

    @property
    def no_target(self) -> bool:
        return not self.record.rles

    def gt_mask(self) -> np.ndarray:
        """(H, W) bool union of the record's masks."""
        return self.record.masks(self.height, self.width).any(axis=0)


def records_as_samples(records: Mapping[str, Prediction]) -> list[RecordSample]:
    """Ground-truth samples from records; each needs at least one mask (for its size)."""
    out = []
    for rid, record in records.items():
        if not record.rles:
            raise InputError(
                f"ground-truth record {rid} has no mask, so its image size is unknown; write "
                "ground truth as pixelground results (image width/height) or RLE masks"
            )
        h, w = (int(v) for v in record.rles[0]["size"])
        out.append(RecordSample(rid, record, h, w))
    return out


def _size(sample: Any) -> tuple[int, int]:
    return int(sample.height), int(sample.width)


class _Matcher:
    """Finds a sample's prediction by id, else by (image file name, text)."""

    def __init__(self, predictions: Mapping[str, Prediction]):
        self.by_id = dict(predictions)
        self.by_image_text: dict[tuple[str, str], Prediction] = {}
        for prediction in predictions.values():
            if prediction.image and prediction.text is not None:
                key = (Path(prediction.image).name, prediction.text.strip())
                self.by_image_text.setdefault(key, prediction)
        self.used: set[str] = set()

    def get(self, sample: Any) -> Prediction | None:
        found = self.by_id.get(str(sample.id))
        if found is None and getattr(sample, "image_path", None) is not None:
            key = (Path(sample.image_path).name, str(getattr(sample, "text", "")).strip())
            found = self.by_image_text.get(key)
        if found is not None:
            self.used.add(found.id)
        return found

    def unmatched(self) -> int:
        return len(set(self.by_id) - self.used)


def _check_missing(task: str, missing: list[str], allow_missing: bool) -> None:
    if missing and not allow_missing:
        raise _missing_error(task, missing)


def _missing_error(task: str, missing: list[str]) -> InputError:
    return InputError(
        f"{len(missing)} {task} samples have no prediction (e.g. {missing[0]!r}); predictions "
        "must use the dataset's sample ids, or pass --allow-missing to score them as empty"
    )


def score_refer(
    samples: Sequence[Any],
    predictions: Mapping[str, Prediction],
    variant: str = "lisa",
    allow_missing: bool = False,
) -> dict[str, Any]:
    """gIoU/cIoU (refer.py) of referring predictions; the union of a prediction's masks counts.

    When some samples are no-target expressions (the synthetic benchmark's ``no_target``), the
    result also holds ReLA's no-target scores computed on the same predictions (grefer.py):
    ``N-acc``, ``T-acc``, ``no_target_count``, ``confusion`` and ``grefer`` (its gIoU, cIoU and
    Pr@), plus ``targets``: gIoU/cIoU of ``variant`` over the expressions with targets only.
    Samples with an ``expression_type`` add ``by_type`` (count, mean IoU, cIoU per type);
    samples with ``near_misses`` (the synthetic benchmark) add ``near_misses``: per attribute,
    how many objects differing from the expression in that attribute alone the prediction
    covers (see :func:`near_miss_rates`); samples with ``object_rles`` (every object's mask)
    add ``selection``: which objects the predictions of target expressions cover (the share
    of each outcome of ``metrics.selection``, over all and per type; each per-sample row
    gets its ``selection`` outcome).
    """
    matcher = _Matcher(predictions)
    acc = ReferAccumulator(variant=variant)  # type: ignore[arg-type]
    with_no_target = any(bool(getattr(s, "no_target", False)) for s in samples)
    targets = ReferAccumulator(variant=variant, keep_per_sample=False)  # type: ignore[arg-type]
    rela = GReferAccumulator()
    missing: list[str] = []
    near: list[tuple[str, bool]] = []
    selected: dict[str, str] = {}
    for sample in samples:
        prediction = matcher.get(sample)
        if prediction is None:
            missing.append(str(sample.id))
            pred = None
        else:
            pred = prediction.union(*_size(sample))
        gt = sample.gt_mask()
        acc.update(pred, gt, sample_id=str(sample.id))
        near.extend(covered_near_misses(pred, getattr(sample, "near_misses", [])))
        object_rles = getattr(sample, "object_rles", None)
        if object_rles and getattr(sample, "targets", None) and not sample.no_target:
            covered = covered_objects(pred, object_rles)
            selected[str(sample.id)] = selection_outcome(covered, sample.targets)
        if with_no_target:
            gt_nt = bool(sample.no_target)
            pred_nt = prediction.no_target if prediction is not None else None
            rela.update(pred, gt, gt_nt, pred_nt, sample_id=str(sample.id))
            if not gt_nt:
                targets.update(pred, gt)
    _check_missing("refer", missing, allow_missing)
    out = acc.result()
    if with_no_target:
        target_scores = targets.result() if targets.count else None
        out.update(_no_target_scores(rela.result(), target_scores, out["per_sample"]))
    out.update(unscored_predictions=matcher.unmatched(), samples_without_prediction=len(missing))
    add_types(out, samples, {"gIoU": "IoU"}, {"cIoU": ("I", "U")})
    if near:
        out["near_misses"] = near_miss_rates(near)
    if selected:
        out["selection"] = _selection(out["per_sample"], samples, selected)
    return out


def _selection(
    rows: list[dict[str, Any]], samples: Sequence[Any], selected: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """``selection_rates`` of the outcomes; each per-sample row gets its ``selection``."""
    for row in rows:
        if str(row.get("id")) in selected:
            row["selection"] = selected[str(row["id"])]
    types = {str(s.id): getattr(s, "expression_type", None) for s in samples}
    return selection_rates([(types.get(key), outcome) for key, outcome in selected.items()])


def covered_near_misses(pred: np.ndarray | None, misses: Sequence[Any]) -> list[tuple[str, bool]]:
    """(attribute, covered) for each near miss (``synth.NearMiss``) of one expression: covered
    when more than half of the object's visible area lies in the predicted mask ``pred``
    (H, W) bool (None: no prediction, nothing covered)."""
    return [(miss.attribute, covers(pred, miss.mask_rle)) for miss in misses]


def near_miss_rates(found: Sequence[tuple[str, bool]]) -> dict[str, dict[str, Any]]:
    """Per attribute: ``count`` of near misses, how many were ``covered`` and the ``rate``.

    A model that ignores an attribute covers the objects differing in it alone (rate near 1,
    as an expression's own targets); one that uses it leaves them out (rate near 0).
    """
    out: dict[str, dict[str, Any]] = {}
    for attribute in sorted({a for a, _ in found}):
        flags = [covered for a, covered in found if a == attribute]
        out[attribute] = {
            "count": len(flags), "covered": sum(flags), "rate": sum(flags) / len(flags),
        }  # fmt: skip
    return out


def _no_target_scores(
    rela: dict[str, Any], targets: dict[str, Any] | None, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """ReLA's no-target figures for a refer result; marks each per-sample row's outcome."""
    outcomes = {r["id"]: r for r in rela["per_sample"]}
    for row in rows:
        extra = outcomes.get(row["id"], {})
        row.update(
            {k: extra[k] for k in ("gt_no_target", "pred_no_target", "outcome") if k in extra}
        )
    out = {
        "N-acc": rela["N-acc"],
        "T-acc": rela["T-acc"],
        "no_target_count": rela["no_target_count"],
        "confusion": rela["confusion"],
        "grefer": {k: rela[k] for k in ("gIoU", "cIoU", "Pr@0.7", "Pr@0.8", "Pr@0.9")},
    }
    if targets is not None:
        out["targets"] = {k: targets[k] for k in ("gIoU", "cIoU", "count")}
    return out


def add_types(
    result: dict[str, Any],
    samples: Sequence[Any],
    means: Mapping[str, str],
    ratios: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Add each sample's ``expression_type`` to its per-sample row and ``by_type`` scores.

    Per type: ``count``, the plain mean of each ``means`` row key (e.g. {"gIoU": "IoU"}) and
    ``sum(a) / sum(b)`` for each ``ratios`` pair (e.g. {"cIoU": ("I", "U")}; None when
    ``sum(b) == 0``, e.g. cIoU of no-target expressions all answered "nothing"). Nothing is
    added when no sample has a type.
    """
    types = {str(s.id): getattr(s, "expression_type", None) for s in samples}
    if not any(types.values()):
        return
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in result.get("per_sample", []):
        kind = types.get(str(row.get("id")))
        if kind:
            row["type"] = kind
            groups.setdefault(kind, []).append(row)
    by_type: dict[str, dict[str, Any]] = {}
    for kind in sorted(groups):
        rows = groups[kind]
        entry: dict[str, Any] = {"count": len(rows)}
        for name, key in means.items():
            entry[name] = float(np.mean([float(r[key]) for r in rows]))
        for name, (num, den) in (ratios or {}).items():
            total = sum(float(r[den]) for r in rows)
            entry[name] = sum(float(r[num]) for r in rows) / total if total else None
        by_type[kind] = entry
    result["by_type"] = by_type


def score_grefer(
    samples: Sequence[Any], predictions: Mapping[str, Prediction], allow_missing: bool = False
) -> dict[str, Any]:
    """ReLA gRefCOCO metrics (grefer.py); a prediction's no-target flag, else "empty"; plus
    ``near_misses`` as :func:`score_refer` gives them."""
    matcher = _Matcher(predictions)
    acc = GReferAccumulator()
    missing: list[str] = []
    near: list[tuple[str, bool]] = []
    for sample in samples:
        prediction = matcher.get(sample)
        if prediction is None:
            missing.append(str(sample.id))
            pred, pred_nt = None, None
        else:
            pred = prediction.union(*_size(sample))
            pred_nt = prediction.no_target
        gt_nt = bool(getattr(sample, "no_target", False))
        acc.update(pred, sample.gt_mask(), gt_nt, pred_nt, sample_id=str(sample.id))
        near.extend(covered_near_misses(pred, getattr(sample, "near_misses", [])))
    if missing and not allow_missing:
        raise _missing_error("grefer", missing)
    out = acc.result()
    out.update(unscored_predictions=matcher.unmatched(), samples_without_prediction=len(missing))
    add_types(out, samples, {"gIoU": "IoU"}, {"cIoU": ("I", "U")})
    if near:
        out["near_misses"] = near_miss_rates(near)
    return out


def gcg_images(
    samples: Sequence[Any], predictions: Mapping[str, Prediction], allow_missing: bool = False
) -> list[Any]:
    """GCGImage pairs (metrics/gcg.py) from GranD-f samples and GCG predictions."""
    images, missing = [], []
    for sample in samples:
        gt = sample.gt_masks()
        h, w = gt.shape[-2:]
        prediction = predictions.get(str(sample.id))
        if prediction is None:
            missing.append(str(sample.id))
        images.append(
            GCGImage(
                image_id=str(sample.id),
                gt_masks=gt,
                gt_phrases=list(sample.phrases),
                gt_caption=sample.caption,
                pred_masks=prediction.masks(h, w) if prediction else None,
                pred_phrases=[p or "" for p in prediction.phrases] if prediction else [],
                pred_caption=(prediction.text or "") if prediction else None,
            )
        )
    if missing and not allow_missing:
        raise _missing_error("gcg", missing)
    return images


def score_gcg(
    samples: Sequence[Any],
    predictions: Mapping[str, Prediction],
    encoder: Any = "auto",
    captions: bool = True,
    allow_missing: bool = False,
    similarity: PhraseSimilarity | None = None,
) -> dict[str, Any]:
    """GLaMM GCG metrics (AP50, mIoU, recall, caption metrics) of GCG predictions; the recall's
    phrase similarity from ``encoder``, or the given ``similarity`` (callable or table)."""
    images = gcg_images(samples, predictions, allow_missing)
    return evaluate_gcg(images, encoder=encoder, captions=captions, similarity=similarity)


def score_captions(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, Prediction],
    allow_missing: bool = False,
    metrics: Sequence[str] | None = None,
) -> dict[str, Any]:
    """BLEU/METEOR/ROUGE-L/CIDEr-D of predicted captions (each prediction's text)."""
    candidates = {k: p.text or "" for k, p in predictions.items() if k in references}
    missing = [k for k in references if k not in candidates]
    if missing and not allow_missing:
        raise _missing_error("caption", missing)
    extra = [k for k in predictions if k not in references]
    if metrics:
        out = caption_scores(references, candidates, metrics=metrics)
    else:
        out = caption_scores(references, candidates)
    out["unscored_predictions"] = len(extra)
    return out


def _assign_phrases(narrative: Any, prediction: Prediction) -> list[list[int]]:
    """For each GT phrase, the indices of the predicted masks that ground it.

    A predicted mask belongs to the GT phrase whose span overlaps its span most; without spans,
    to the first GT phrase with the same text (case-insensitive).
    """
    out: list[list[int]] = [[] for _ in narrative.phrases]
    for j, phrase in enumerate(prediction.phrases):
        span = prediction.spans[j] if j < len(prediction.spans) else None
        best, best_overlap = None, 0
        for i, gt in enumerate(narrative.phrases):
            if span is not None and gt.span is not None:
                overlap = min(span[1], gt.span[1]) - max(span[0], gt.span[0])
                if overlap > best_overlap:
                    best, best_overlap = i, overlap
            elif best is None and phrase and phrase.strip().lower() == gt.text.strip().lower():
                best = i
        if best is not None:
            out[best].append(j)
    return out


def score_png(
    narratives: Sequence[Any], predictions: Mapping[str, Prediction], allow_missing: bool = False
) -> dict[str, Any]:
    """PNG average recall: every grounded GT phrase against the union of its predicted masks."""
    acc = PNGAccumulator()
    missing = []
    for narrative in narratives:
        prediction = predictions.get(str(narrative.id))
        if prediction is None:
            missing.append(str(narrative.id))
            assigned: list[list[int]] = [[] for _ in narrative.phrases]
            masks = None
        else:
            assigned = _assign_phrases(narrative, prediction)
            h, w = narrative.segment_map().shape
            masks = prediction.masks(h, w)
        for i, phrase in enumerate(narrative.phrases):
            pred = masks[assigned[i]].any(axis=0) if masks is not None and assigned[i] else None
            acc.update(
                pred, narrative.gt_mask(i), phrase.plural, phrase.thing, f"{narrative.id}#{i}"
            )
    if missing and not allow_missing:
        raise _missing_error("png", missing)
    out = acc.result()
    out["samples_without_prediction"] = len(missing)
    return out
