"""Run a pipeline over a dataset and score it: resumable, streamed to disk.

``evaluate(task, dataset, pipeline, out_dir)``:

1. loads the dataset's samples (``FORMAT:PATH``, see :mod:`pixelground.eval.run`);
2. runs the pipeline on every sample whose id is not yet in ``out_dir/predictions.jsonl``,
   appending one line ``{"id", "result": <GroundedResult JSON v1>}`` per sample and flushing
   it, so an interrupted run loses at most the sample in flight and a re-run continues where it
   stopped. A sample whose input is bad (a PixelgroundError) gets ``{"id", "error"}`` instead,
   is scored as an empty prediction, and is tried again by the next run;
3. scores the predictions with the task's official metric and writes ``report.json`` (metrics
   without per-sample lists) and ``per_sample.csv`` (one row per sample, for error analysis).

``out_dir/run.json`` records what the predictions answer (task, dataset, split, preset,
options); resuming into a folder written with other settings is refused, so predictions of
two runs are never mixed.

Which pipeline method answers each task: refer/grefer ``segment(image, expression)``, gcg
``caption(image, grounded=True)``, caption ``caption(image)``, png ``ground(image, caption with
the ground-truth phrases marked <p>...</p>)``; rvos (alias vos: referring video segmentation)
``segment_video(frames, expression)`` per expression, see :mod:`pixelground.eval.video_loop`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import (
    CheckpointMissingError,
    DependencyMissingError,
    InputError,
    PixelgroundError,
)
from pixelground.eval.predictions import parse_record

log = logging.getLogger(__name__)

EVAL_TASKS = ("refer", "grefer", "gcg", "caption", "png", "rvos")
#: Names ``pixelground eval`` accepts for referring video segmentation.
VIDEO_TASKS = ("rvos", "vos")
#: Prediction options of the image tasks (passed to the pipeline method).
IMAGE_OPTIONS = {"refer": ("threshold", "compose"), "grefer": ("threshold", "compose")}
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.json"
CSV_FILE = "per_sample.csv"
MANIFEST_FILE = "run.json"

StepCallback = Callable[[str, int, int], None]


def marked_caption(narrative: Any) -> str:
    """The narrative's caption with each ground-truth phrase wrapped in ``<p>...</p>``."""
    caption = narrative.caption
    spans = sorted({p.span for p in narrative.phrases if p.span is not None})
    pieces, cursor = [], 0
    for start, end in spans:
        if start < cursor:  # overlapping spans: keep the first
            continue
        pieces += [caption[cursor:start], "<p>", caption[start:end], "</p>"]
        cursor = end
    pieces.append(caption[cursor:])
    return "".join(pieces)


def check_eval_task(task: str) -> None:
    """InputError unless ``pixelground eval`` can run ``task`` (the others are score-only)."""
    if task not in EVAL_TASKS and task not in VIDEO_TASKS:
        raise InputError(
            f"`pixelground eval` runs {', '.join(EVAL_TASKS)}; for {task}, write predictions "
            f"with the matching command and score them with `pixelground score {task}`"
        )


def predict(task: str, pipeline: Any, sample: Any, options: Mapping[str, Any] | None = None) -> Any:
    """One GroundedResult for one image sample (the method per task: module docstring).

    Args:
        task: an image task of :data:`EVAL_TASKS`.
        pipeline: the Pipeline.
        sample: a dataset sample (``image_path``, ``text``, ...).
        options: refer/grefer ``threshold`` (detection score), passed when set.
    """
    check_eval_task(task)
    image = str(sample.image_path)
    if task in ("refer", "grefer"):
        return pipeline.segment(image, sample.text, **(options or {}))
    if task == "gcg":
        return pipeline.caption(image, grounded=True)
    if task == "caption":
        return pipeline.caption(image)
    return pipeline.ground(image, marked_caption(sample))


def read_progress(
    path: Path, parse: Callable[[dict[str, Any]], Any] = parse_record
) -> tuple[dict[str, Any], dict[str, str]]:
    """Predictions and errors already streamed to ``path`` (a torn last line is ignored).

    Args:
        path: the predictions JSONL.
        parse: turns a ``{"id", "result"}`` record into what is returned for it (default a
            :class:`~pixelground.eval.predictions.Prediction`).

    Returns:
        (id -> parsed prediction, id -> error message of samples that failed and are not done).
    """
    done: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if not path.is_file():
        return done, errors
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning(
                "%s:%d is incomplete (interrupted write); that sample will be redone", path, n
            )
            continue
        rid = str(record.get("id"))
        if "result" in record:
            done[rid] = parse(record)
            errors.pop(rid, None)
        elif "error" in record:
            errors[rid] = str(record["error"])
    return done, errors


def run_predictions(
    task: str,
    pipeline: Any,
    samples: Sequence[Any],
    out_dir: str | Path,
    on_step: StepCallback | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Predict every sample not yet in ``out_dir/predictions.jsonl``; returns counts."""
    check_eval_task(task)
    return predict_resumable(
        samples, out_dir, lambda sample: predict(task, pipeline, sample, options).to_dict(), on_step
    )


def predict_resumable(
    samples: Sequence[Any],
    out_dir: str | Path,
    predict_one: Callable[[Any], dict[str, Any]],
    on_step: StepCallback | None = None,
    parse: Callable[[dict[str, Any]], Any] = parse_record,
) -> dict[str, int]:
    """Append one record per sample not yet done to ``out_dir/predictions.jsonl``.

    Args:
        samples: objects with an ``id``.
        out_dir: the run folder (created).
        predict_one: the sample's result as a JSON-ready dict; a PixelgroundError is recorded
            as that sample's error and the run goes on, except a missing checkpoint or
            dependency, which stops the run (every sample would fail the same way).
        on_step: called with (sample id, samples seen, total) after each sample.
        parse: how :func:`read_progress` reads a done record back (validation).

    Returns:
        Counts of ``predicted``, ``skipped`` (done before) and ``errors``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREDICTIONS_FILE
    done, _ = read_progress(path, parse=parse)
    counts = {"predicted": 0, "skipped": 0, "errors": 0}
    _end_with_newline(path)
    with path.open("a") as handle:
        for index, sample in enumerate(samples):
            sid = str(sample.id)
            if sid in done:
                counts["skipped"] += 1
            else:
                try:
                    record = {"id": sid, "result": predict_one(sample)}
                    counts["predicted"] += 1
                except (CheckpointMissingError, DependencyMissingError):
                    raise
                except PixelgroundError as error:
                    record = {"id": sid, "error": str(error)}
                    counts["errors"] += 1
                    log.warning("sample %s failed: %s", sid, error)
                handle.write(json.dumps(record) + "\n")
                handle.flush()
            if on_step is not None:
                on_step(sid, index + 1, len(samples))
    return counts


def _end_with_newline(path: Path) -> None:
    """Terminate a line torn by an interruption, so the next record starts on its own line."""
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb+") as handle:
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def evaluate(
    task: str,
    dataset: str | Path,
    pipeline: Any,
    out_dir: str | Path,
    limit: int | None = None,
    split: str | None = None,
    image_dir: str | Path | None = None,
    protocol: str | None = None,
    on_step: StepCallback | None = None,
    on_samples: Callable[[int], None] | None = None,
    options: Mapping[str, Any] | None = None,
    **score_opts: Any,
) -> dict[str, Any]:
    """Predict and score a dataset; writes predictions.jsonl, report.json, per_sample.csv.

    Args:
        task: one of :data:`EVAL_TASKS` (or "vos", the same as "rvos").
        dataset: ``FORMAT:PATH`` (format inferred when omitted).
        pipeline: a ``pixelground.load(...)`` Pipeline (or any object with its methods).
        out_dir: output folder (created).
        limit: only the first N samples.
        split, image_dir: dataset options.
        protocol: refer variant ("lisa"/"glamm"/"sa2va"); rvos "mevis".
        on_step: called after each sample with (id, done, total).
        on_samples: called once with the number of samples to run.
        options: prediction options: refer/grefer ``threshold``; rvos ``key_frames``,
            ``redetect_every``, ``threshold``, ``strategy`` (None values are left out).
        **score_opts: e.g. ``phrase_encoder``, ``captions`` (gcg); ``bound_th`` (rvos).

    Returns:
        The full result (with per-sample records); report.json holds it without them.
    """
    from pixelground.eval.run import _check_protocol, check_task, load_dataset, score_loaded

    check_eval_task(task)
    if task in VIDEO_TASKS:
        from pixelground.eval.video_loop import evaluate_video

        return evaluate_video(
            dataset, pipeline, out_dir, limit, split, protocol, options, on_step, on_samples,
            bound_th=score_opts.get("bound_th"),
        )  # fmt: skip
    check_task(task)
    protocol = _check_protocol(task, protocol)
    settings = image_options(task, options)
    fmt, samples = load_dataset(dataset, task, split, image_dir)
    samples = check_limit(samples, limit)
    write_manifest(Path(out_dir), task, dataset, fmt, split, pipeline, settings)
    if on_samples is not None:
        on_samples(len(samples))
    counts = run_predictions(task, pipeline, samples, out_dir, on_step, settings)
    done, errors = read_progress(Path(out_dir) / PREDICTIONS_FILE)
    wanted = {str(s.id) for s in samples}
    predictions = {k: v for k, v in done.items() if k in wanted}
    result = score_loaded(task, samples, predictions, protocol, allow_missing=True, **score_opts)
    result = {
        "task": task,
        "protocol": protocol or result.get("variant") or "official",
        "dataset": str(dataset),
        "format": fmt,
        "samples": len(samples),
        "errors": len([e for e in errors if e in wanted]),
        "this_run": counts,
        "model": _model_of(pipeline),
        **({"options": settings} if settings else {}),
        **result,
    }
    write_report(Path(out_dir), result)
    return result


def write_report(out: Path, result: dict[str, Any]) -> None:
    """``out/report.json`` (the result without bulk lists) and ``out/per_sample.csv``."""
    from pixelground.eval.report import summary, to_json, write_per_sample_csv

    (out / REPORT_FILE).write_text(to_json(summary(result)) + "\n")
    write_per_sample_csv(result.get("per_sample", []), out / CSV_FILE)


def image_options(task: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The given (non-None) prediction options of an image task; InputError for others."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    allowed = IMAGE_OPTIONS.get(task, ())
    wrong = [k for k in given if k not in allowed]
    if wrong:
        names = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{names} does not apply to {task}" + (
            f" (it takes {', '.join('--' + k for k in allowed)})" if allowed else ""
        ))  # fmt: skip
    return given


def check_limit(samples: Sequence[Any], limit: int | None) -> list[Any]:
    """The first ``limit`` samples (all when None); InputError for a limit below 1."""
    if limit is None:
        return list(samples)
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    return list(samples[:limit])


def write_manifest(
    out: Path,
    task: str,
    dataset: str | Path,
    fmt: str,
    split: str | None,
    pipeline: Any,
    options: Mapping[str, Any],
) -> None:
    """Write ``out/run.json``; InputError when it exists and records other settings.

    The manifest holds the task, the dataset (format, resolved path, split), the pipeline's
    preset and the prediction options: what the predictions in ``out`` answer. ``--limit`` is
    not part of it (a longer run continues a shorter one).
    """
    from pixelground.eval.run import DEFAULT_SPLITS, parse_dataset_spec

    path = parse_dataset_spec(dataset)[1]
    split = split or DEFAULT_SPLITS.get(fmt)
    if fmt == "synth":  # the split folder, however it was named (root, task or split folder)
        from pixelground.eval.datasets.synth import find_split

        path = find_split(path, task, split)
        split = path.name
    manifest = {
        "task": task,
        "format": fmt,
        "dataset": str(path.resolve()),
        "split": split,
        "model": _model_of(pipeline),
        "options": dict(options),
    }
    manifest = json.loads(json.dumps(manifest, default=str))
    target = out / MANIFEST_FILE
    previous = _read_json(target)
    if isinstance(previous, dict):
        changed = _differences(previous, manifest)
        if changed:
            what = "; ".join(f"{k} was {old!r}, now {new!r}" for k, old, new in changed)
            raise InputError(
                f"{out} holds predictions of another run ({what}); resume with the same "
                "settings, or pass another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(manifest, indent=2) + "\n")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) of the settings that differ (one level into dicts)."""
    out = []
    for key, value in new.items():
        if key not in old or old[key] == value:
            continue
        if isinstance(value, dict) and isinstance(old[key], dict):
            keys = sorted(set(value) | set(old[key]))
            out += [
                (f"{key}.{k}", old[key].get(k), value.get(k))
                for k in keys
                if old[key].get(k) != value.get(k)
            ]
        else:
            out.append((key, old[key], value))
    return out


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _model_of(pipeline: Any) -> dict[str, Any]:
    """The preset's name and its parts (backend:checkpoint), so runs of other models differ."""
    preset = getattr(pipeline, "preset", None)
    if preset is None:
        return {"preset": type(pipeline).__name__}
    parts = {role: f"{p.backend}:{p.checkpoint}" for role, p in sorted(preset.parts.items())}
    return {"preset": preset.name, "parts": parts}
