"""Speed of evaluation against the official code: end to end (files in, report out) and the
metric core (masks in memory), for the DAVIS semi-supervised and unsupervised protocols, the
MeViS per-expression protocol and panoptic quality, on the real samples in ../shared/data.

Data (built in a temporary folder from ../shared/data, read by both sides):

* DAVIS: blackswan (480x854) as a DAVIS-2017 root (palette GT, ``ImageSets/2017/val.txt``),
  ``--copies`` sequences (symlinks); semi-supervised: OSVOS results (48 scored frames per
  sequence); unsupervised: RVOS results (up to 20 proposals) on the first ``--unsup-frames``
  frames (the official loader holds 2 x proposals x frames x H x W float64 arrays: 3.3 GB each
  for 50 frames, so the default keeps this run small on a shared machine).
* MeViS: the same clips as MeViS layout (``mask_dict.json`` RLEs, ``meta_expressions.json``),
  two expressions per video, 0/255 grayscale prediction PNGs (OSVOS, and the union of RVOS
  proposals).
* PQ: the panopticapi sample (2 COCO images) with the golden prediction of ../shared/data, as
  it is and repeated ``--pq-copies`` times (symlinked PNGs under new image ids and names).

The official side: with ``--davis-eval PATH`` (a checkout of davisvideochallenge/
davis2017-evaluation; it needs OpenCV and scikit-image installed) its ``DAVISEvaluation`` runs
on the same folders, and with ``--panopticapi PATH`` (a checkout of cocodataset/panopticapi)
its ``pq_compute_single_core``. Otherwise, and always for MeViS (its ``eval_mevis.py`` is a
script), the faithful re-implementations of ``benchmarks/official_eval.py`` run (PIL reading
into float arrays, per-label comparison, per-frame metrics with ``cv2.dilate`` when OpenCV is
installed: ``pip install -e .[bench]``). Every row checks that the per-frame J and F (and PQ)
of both sides are identical floats (against the shipped multi-process ``pq_compute``, which
sums its statistics chunk by chunk, PQ agrees to 1e-12). The rows "official in N processes"
run the re-implementations the way the official scripts run by default: MeViS's expressions
and panopticapi's image chunks over a fork pool of one process per CPU (the ``--panopticapi``
checkout is not used for that row).

Times: best of ``--repeats``, wall clock (what a user waits for) and CPU seconds of this
process and of its worker processes (all threads; getrusage, so in steps of the kernel's
tick). ``--workers`` is pixelground's
``workers=``: DAVIS sequences and MeViS videos are scored in that many forked processes (at
most one per CPU), PQ images decoded and counted by that many threads. The official side runs
in one process, as davis2017-evaluation does; MeViS's ``eval_mevis.py`` and panopticapi's
``pq_compute`` start a process per worker themselves, which on this machine would also use
both cores. On a shared, loaded machine the ratios measured within one run are the
trustworthy figures.

    python benchmarks/eval_speed.py [--repeats 3] [--copies 2] [--pq-copies 10] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import official_eval as official
from PIL import Image

from pixelground.core.masks import encode_rle
from pixelground.eval.datasets.coco_panoptic import load_coco_panoptic
from pixelground.eval.datasets.davis import read_davis_sequence, write_davis_frame
from pixelground.eval.metrics import (
    PQStat,
    evaluate_panoptic,
    evaluate_vos,
    expression_scores,
    semi_supervised_scores,
    unsupervised_scores,
)

CPUS = os.cpu_count() or 1
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished child processes."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(function: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(best wall seconds, best CPU seconds, result) over ``repeats`` runs after a warm-up."""
    result = function()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = function()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return min(walls), min(cpus), result


def _link_frames(source: Path, target: Path, count: int | None = None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.png"))[:count]:
        (target / path.name).symlink_to(path.resolve())


def build_davis(data: Path, root: Path, copies: int, unsup_frames: int) -> dict[str, Path]:
    """A DAVIS-2017 root with ``copies`` blackswan sequences and the result folders."""
    gt16 = data / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan"
    palette = root / "palette_gt"
    for path in sorted(gt16.glob("*.png")):
        write_davis_frame(palette / path.name, (np.asarray(Image.open(path)) != 0).astype(np.uint8))
    preds = data / "davis2017eval_predictions"
    names = [f"blackswan{k}" for k in range(copies)]
    for name in names:
        _link_frames(palette, root / "davis" / "Annotations" / "480p" / name)
        unsup_gt = root / "davis" / "Annotations_unsupervised" / "480p" / name
        _link_frames(palette, unsup_gt, unsup_frames)
        jpegs = data / "davis2016_blackswan" / "JPEGImages" / "480p" / "blackswan"
        (root / "davis" / "JPEGImages" / "480p").mkdir(parents=True, exist_ok=True)
        (root / "davis" / "JPEGImages" / "480p" / name).symlink_to(jpegs.resolve())
        _link_frames(preds / "semi-supervised" / "osvos" / "blackswan", root / "semi" / name)
        rvos = preds / "unsupervised" / "rvos" / "blackswan"
        _link_frames(rvos, root / "unsup" / name, unsup_frames)
    sets = root / "davis" / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("\n".join(names) + "\n")
    return {"root": root / "davis", "semi": root / "semi", "unsup": root / "unsup"}


def build_mevis(data: Path, root: Path, copies: int) -> dict[str, Path]:
    """MeViS layout: per video the GT of blackswan as anno 0, two expressions on it."""
    gt = read_davis_sequence(data / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan")
    preds = data / "davis2017eval_predictions"
    osvos = read_davis_sequence(preds / "semi-supervised" / "osvos" / "blackswan", void_label=None)
    rvos = read_davis_sequence(preds / "unsupervised" / "rvos" / "blackswan", void_label=None)
    answers = {"0": osvos.labels != 0, "1": rvos.labels != 0}
    mask_dict = {"0": [encode_rle(m)[0] for m in gt.labels != 0]}
    videos = {}
    for k in range(copies):
        name = f"blackswan{k}"
        expressions = {e: {"exp": f"answer {e}", "anno_id": [0]} for e in answers}
        videos[name] = {"frames": gt.frame_ids, "expressions": expressions}
        for exp, masks in answers.items():
            folder = root / "mevis_pred" / name / exp
            folder.mkdir(parents=True)
            for frame, mask in zip(gt.frame_ids, masks, strict=True):
                Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(folder / f"{frame}.png")
    gt_root = root / "mevis"
    gt_root.mkdir()
    (gt_root / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (gt_root / "mask_dict.json").write_text(json.dumps(mask_dict))
    return {"gt": gt_root, "pred": root / "mevis_pred", "gt_masks": gt.labels != 0, **answers}


def _official_davis(checkout: Path | None) -> Callable[[Path, Path, str, list[str]], dict]:
    """The official DAVIS evaluation: the checkout's DAVISEvaluation, or the re-implementation."""
    if checkout is None:
        return official.evaluate_davis
    sys.path.insert(0, str(checkout))
    from davis2017.evaluation import DAVISEvaluation  # noqa: PLC0415 (a checkout given at run time)

    def run(root: Path, results: Path, task: str, sequences: list[str]) -> dict:
        return DAVISEvaluation(str(root), task, "val", sequences).evaluate(str(results))

    return run


def _same_davis(ours: dict, theirs: dict) -> bool:
    """Identical per-frame J and F lists (re-implementation) or per-object means (checkout)."""
    entries = sorted(ours["per_object"].values(), key=lambda e: e["J_per_frame"])
    if "frames" in theirs:
        frames = sorted(theirs["frames"].values())
        return frames == [(e["J_per_frame"], e["F_per_frame"]) for e in entries]
    return sorted(theirs["J"]["M"]) == sorted(e["J"] for e in entries) and sorted(
        theirs["F"]["M"]
    ) == sorted(e["F"] for e in entries)


def davis_rows(paths: dict[str, Path], args: argparse.Namespace) -> list[tuple]:
    """End-to-end and core rows of the semi-supervised and unsupervised protocols."""
    run_official = _official_davis(args.davis_eval)
    names = (paths["root"] / "ImageSets" / "2017" / "val.txt").read_text().split()
    rows = []
    for protocol, task, results in (
        ("semi", "semi-supervised", paths["semi"]),
        ("unsupervised", "unsupervised", paths["unsup"]),
    ):
        ours = measure(
            lambda p=protocol, r=results: evaluate_vos(paths["root"], r, p, workers=args.workers),
            args.repeats,
        )
        theirs = measure(
            lambda t=task, r=results: run_official(paths["root"], r, t, names), args.repeats
        )
        frames = sum(len(e["frames"]) for e in ours[2]["per_object"].values())
        rows.append(
            (f"{protocol} end to end", frames, ours, theirs, _same_davis(ours[2], theirs[2]))
        )
        rows.append(_davis_core(paths, protocol, task, results, names[0], args.repeats))
    return rows


def _davis_core(
    paths: dict[str, Path], protocol: str, task: str, results: Path, name: str, repeats: int
) -> tuple:
    folder = "Annotations" if protocol == "semi" else "Annotations_unsupervised"
    gt, ids = official.read_gt_masks(paths["root"] / folder / "480p" / name)
    if protocol == "semi":
        gt, ids = gt[:, 1:-1], ids[1:-1]
    res = official.read_result_masks(results / name, ids)
    if protocol == "semi":
        ours = measure(lambda: semi_supervised_scores(gt, res), repeats)
        theirs = measure(lambda: official.evaluate_semisupervised(gt, res), repeats)
        same = all(np.array_equal(a, b) for a, b in zip(ours[2], theirs[2], strict=True))
    else:
        ours = measure(lambda: unsupervised_scores(gt, res), repeats)
        theirs = measure(lambda: official.evaluate_unsupervised(gt, res), repeats)
        same = np.array_equal(ours[2].j, theirs[2][0]) and np.array_equal(ours[2].f, theirs[2][1])
    label = f"{protocol} core ({len(res)} proposals x {gt.shape[0]} objects)"
    return (label, gt.shape[1], ours, theirs, bool(same))


def mevis_rows(paths: dict, args: argparse.Namespace) -> list[tuple]:
    ours = measure(
        lambda: evaluate_vos(paths["gt"], paths["pred"], "mevis", workers=args.workers),
        args.repeats,
    )
    per = ours[2]["per_expression"]
    frames = sum(len(e["frames"]) for e in per.values())
    rows = []
    for label, run in (
        ("mevis end to end", lambda: official.evaluate_mevis(paths["gt"], paths["pred"])),
        (
            f"mevis end to end, official in {CPUS} processes",
            lambda: official.evaluate_mevis_pool(paths["gt"], paths["pred"], CPUS),
        ),
    ):
        theirs = measure(run, args.repeats)
        same = all(
            per[key]["J_per_frame"] == value[2] and per[key]["F_per_frame"] == value[3]
            for key, value in theirs[2].items()
        )
        rows.append((label, frames, ours, theirs, same))
    gt, pred = paths["gt_masks"], paths["0"]
    core_ours = measure(lambda: expression_scores(gt, pred), args.repeats)
    gt8, pred8 = gt.astype(np.uint8), pred.astype(np.uint8) * 255
    core_theirs = measure(
        lambda: (official.db_eval_iou(gt8, pred8), official.db_eval_boundary(gt8, pred8)),
        args.repeats,
    )
    same = all(np.array_equal(a, b) for a, b in zip(core_ours[2], core_theirs[2], strict=True))
    rows.append(("mevis core (one expression)", len(gt), core_ours, core_theirs, same))
    return rows


def _official_pq(checkout: Path | None) -> Callable[[Path, Path, Path, Path], dict]:
    """panopticapi's ``pq_compute_single_core`` from a checkout, or the re-implementation."""
    if checkout is None:
        return official.pq_compute
    sys.path.insert(0, str(checkout))
    from panopticapi.evaluation import pq_compute_single_core  # noqa: PLC0415

    def run(gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path) -> dict:
        gt, pred = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
        categories = {el["id"]: el for el in gt["categories"]}
        by_id = {el["image_id"]: el for el in pred["annotations"]}
        pairs = [(ann, by_id[ann["image_id"]]) for ann in gt["annotations"]]
        stat = pq_compute_single_core(0, pairs, str(gt_dir), str(pred_dir), categories)
        return stat.pq_average(categories, None)[0]

    return run


def build_pq(files: tuple[Path, Path, Path, Path], root: Path, copies: int) -> tuple[Path, ...]:
    """The GT and prediction JSON + PNG folders repeated ``copies`` times (new ids, symlinks)."""
    out: list[Path] = []
    for json_path, folder, name in ((*files[:2], "gt"), (*files[2:], "pred")):
        data = json.loads(json_path.read_text())
        (root / name).mkdir()
        annotations, images = [], []
        for k, ann in ((k, a) for k in range(copies) for a in data["annotations"]):
            copy = {
                **ann,
                "image_id": f"{k}_{ann['image_id']}",
                "file_name": f"{k}_{ann['file_name']}",
            }
            (root / name / copy["file_name"]).symlink_to((folder / ann["file_name"]).resolve())
            annotations.append(copy)
        for k, image in ((k, i) for k in range(copies) for i in data.get("images", [])):
            images.append({**image, "id": f"{k}_{image['id']}"})
        data["annotations"] = annotations
        if "images" in data:
            data["images"] = images
        (root / f"{name}.json").write_text(json.dumps(data))
        out += [root / f"{name}.json", root / name]
    return tuple(out)


def pq_rows(data: Path, root: Path, args: argparse.Namespace) -> list[tuple]:
    sample, golden = data / "panopticapi_sample", data / "golden" / "pq_pred"
    files = (
        sample / "panoptic_examples.json",
        sample / "panoptic_examples",
        golden / "panoptic_pred.json",
        golden / "panoptic_pred",
    )
    repeated = build_pq(files, root, args.pq_copies)
    rows = []
    for label, inputs, count, run in (
        ("PQ end to end", files, 2, _official_pq(args.panopticapi)),
        ("PQ end to end, repeated", repeated, 2 * args.pq_copies, _official_pq(args.panopticapi)),
        (
            f"PQ end to end, repeated, official in {CPUS} processes",
            repeated,
            2 * args.pq_copies,
            lambda *i: official.pq_compute_multi_core(*i, CPUS),
        ),
    ):
        ours = measure(lambda i=inputs: evaluate_panoptic(*i, workers=args.workers), args.repeats)
        theirs = measure(lambda i=inputs, r=run: r(*i), args.repeats)
        difference = abs(ours[2]["All"]["pq"] - theirs[2]["pq"])
        same = difference <= 1e-12 if "processes" in label else difference == 0
        rows.append((label, count, ours, theirs, same))
    gt = load_coco_panoptic(files[0], files[1])
    pred = load_coco_panoptic(files[2], files[3], categories=list(gt.categories.values()))
    images = [
        (gt.read_ids(i), gt.annotations[i], pred.read_ids(i), pred.annotation(i))
        for i in gt.annotations
    ]

    def core_ours() -> PQStat:
        stat = PQStat()
        for gt_ids, gt_ann, pred_ids, pred_ann in images:
            args_ = (gt_ids, gt_ann["segments_info"], pred_ids, pred_ann["segments_info"])
            stat.add_image(*args_, gt.categories)
        return stat

    def core_theirs() -> dict:
        stat: dict = official.defaultdict(lambda: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})
        for gt_ids, gt_ann, pred_ids, pred_ann in images:
            official.pq_image(gt_ids, gt_ann, pred_ids, pred_ann, gt.categories, stat)
        return stat

    a, b = measure(core_ours, args.repeats), measure(core_theirs, args.repeats)
    same = all(a[2][c].iou == b[2][c]["iou"] and a[2][c].tp == b[2][c]["tp"] for c in b[2])
    rows.append(("PQ core (pair counts, matching)", 2, a, b, same))
    return rows


def print_table(rows: list[tuple], args: argparse.Namespace) -> None:
    davis = f"checkout {args.davis_eval}" if args.davis_eval else "re-implementation"
    print(
        f"official side: davis {davis}, dilation {official.DILATION}; panopticapi "
        f"{'checkout' if args.panopticapi else 're-implementation'}; MeViS re-implementation; "
        f"pixelground workers: {args.workers}"
    )
    print(
        "| measurement | frames/images | pixelground wall s | official wall s | ratio (wall) "
        "| pixelground CPU s | official CPU s | ratio (CPU) | per-frame numbers identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, count, ours, theirs, same in rows:
        print(
            f"| {name} | {count} | {ours[0]:.3f} | {theirs[0]:.3f} | {theirs[0] / ours[0]:.1f}x "
            f"| {ours[1]:.3f} | {theirs[1]:.3f} | {theirs[1] / ours[1]:.1f}x | {same} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2, help="DAVIS / MeViS sequences")
    parser.add_argument("--unsup-frames", type=int, default=12, help="frames (unsupervised)")
    parser.add_argument("--pq-copies", type=int, default=10, help="repeats of the PQ sample")
    parser.add_argument("--workers", type=int, default=4, help="pixelground workers=")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--davis-eval", type=Path, help="a davis2017-evaluation checkout")
    parser.add_argument("--panopticapi", type=Path, help="a panopticapi checkout")
    parser.add_argument("--only", choices=("davis", "mevis", "pq"), help="one group of rows")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pixelground-eval-speed-"))
    try:
        rows = []
        if args.only in (None, "davis"):
            rows += davis_rows(build_davis(args.data, tmp, args.copies, args.unsup_frames), args)
        if args.only in (None, "mevis"):
            rows += mevis_rows(build_mevis(args.data, tmp, args.copies), args)
        if args.only in (None, "pq"):
            rows += pq_rows(args.data, tmp, args)
        print_table(rows, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
