"""Run a pipeline over a dataset and score it: resumable, streamed to disk.

``evaluate(task, dataset, pipeline, out_dir)``:

1. loads the dataset's samples (``FORMAT:PATH``, see :mod:`pixelground.eval.run`);
2. runs the pipeline on every sample whose id is not yet in ``out_dir/predictions.jsonl``,
   appending one line ``{"id", "result": <GroundedResult JSON v1>}`` per sample and flushing
   it, so an interrupted run loses at most the sample in flight and a re-run continues where it
   stopped. A sample whose input is bad (a PixelgroundError) gets ``{"id", "error"}`` instead,
   is scored as an empty prediction, and is tried again by the next run;
3. scores the predictions with the task's official metric (the ``score_samples`` of its row
   in :mod:`pixelground.eval.tasks`) and writes ``report.json`` (metrics without per-sample
   lists) and ``per_sample.csv`` (one row per sample, for error analysis).

``out_dir/run.json`` records what the predictions answer (task, dataset, split, preset,
options); resuming into a folder written with other settings is refused, so predictions of
two runs are never mixed.

Which pipeline method answers each task: refer/grefer ``segment(image, expression)``, gcg
``caption(image, grounded=True)``, caption ``caption(image)``, png ``ground(image, caption with
the ground-truth phrases marked <p>...</p>)``; rvos (alias vos: referring video segmentation)
``segment_video(frames, expression)`` per expression, see :mod:`pixelground.eval.video_loop`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError, UnknownNameError
from pixelground.eval.run import check_protocol, check_task, load_dataset, score_loaded
from pixelground.eval.run_folder import CSV_FILE as CSV_FILE
from pixelground.eval.run_folder import MANIFEST_FILE as MANIFEST_FILE
from pixelground.eval.run_folder import PREDICTIONS_FILE as PREDICTIONS_FILE
from pixelground.eval.run_folder import REPORT_FILE as REPORT_FILE
from pixelground.eval.run_folder import StepCallback as StepCallback
from pixelground.eval.run_folder import (
    check_limit,
    predict_resumable,
    read_progress,
    run_head,
    write_manifest,
    write_report,
)
from pixelground.eval.tasks import TASK_TABLE, VIDEO_ALIASES, eval_tasks
from pixelground.eval.tasks import marked_caption as marked_caption
from pixelground.eval.video_loop import evaluate_video

log = logging.getLogger(__name__)

#: The tasks ``pixelground eval`` runs (the table: :mod:`pixelground.eval.tasks`).
EVAL_TASKS = eval_tasks()
#: Names ``pixelground eval`` accepts for referring video segmentation.
VIDEO_TASKS = VIDEO_ALIASES
#: Prediction options of the image tasks (passed to the pipeline method).
IMAGE_OPTIONS = {name: task.options for name, task in TASK_TABLE.items() if task.options}


def check_eval_task(task: str) -> None:
    """InputError unless ``pixelground eval`` can run ``task`` (the others are score-only)."""
    if task in EVAL_TASKS or task in VIDEO_TASKS:
        return
    runs = ", ".join(
        f"{t} (alias {VIDEO_TASKS[1]})" if t == VIDEO_TASKS[0] else t for t in EVAL_TASKS
    )
    if task in TASK_TABLE:
        raise InputError(
            f"`pixelground eval` cannot run {task}, only {runs}: write {task} predictions "
            f"with the matching command and score them with `pixelground score {task}`"
        )
    raise UnknownNameError(f"unknown eval task {task!r}; use one of {runs}")


def predict(task: str, pipeline: Any, sample: Any, options: Mapping[str, Any] | None = None) -> Any:
    """One GroundedResult for one image sample (the method per task: module docstring).

    Args:
        task: an image task of :data:`EVAL_TASKS`.
        pipeline: the Pipeline.
        sample: a dataset sample (``image_path``, ``text``, ...).
        options: refer/grefer ``threshold`` (detection score), passed when set.
    """
    check_eval_task(task)
    answer = TASK_TABLE[task].predict
    if answer is None:
        raise InputError(f"{task} is answered over videos: use evaluate() or evaluate_video()")
    return answer(pipeline, sample, options or {})


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
    check_eval_task(task)
    if task in VIDEO_TASKS:
        return evaluate_video(
            dataset, pipeline, out_dir, limit, split, protocol, options, on_step, on_samples,
            bound_th=score_opts.get("bound_th"),
        )  # fmt: skip
    check_task(task)
    protocol = check_protocol(task, protocol)
    settings = image_options(task, options)
    fmt, samples = load_dataset(dataset, task, split, image_dir)
    samples = check_limit(samples, limit)
    write_manifest(Path(out_dir), task, dataset, fmt, split, pipeline, settings)
    if on_samples is not None:
        on_samples(len(samples))
    counts = run_predictions(task, pipeline, samples, out_dir, on_step, settings)
    errors, scores = _score_run(task, samples, Path(out_dir), protocol, score_opts)
    result = run_head(task, dataset, fmt, pipeline, len(samples), errors, counts)
    result["protocol"] = protocol or scores.get("variant") or "official"
    result.update({**({"options": settings} if settings else {}), **scores})
    write_report(Path(out_dir), result)
    return result


def _score_run(
    task: str, samples: Sequence[Any], out: Path, protocol: str | None, opts: Mapping[str, Any]
) -> tuple[int, dict[str, Any]]:
    """(failed samples, scores) of the predictions streamed to ``out`` for ``samples``."""
    done, errors = read_progress(out / PREDICTIONS_FILE)
    wanted = {str(s.id) for s in samples}
    predictions = {k: v for k, v in done.items() if k in wanted}
    scores = score_loaded(task, samples, predictions, protocol, allow_missing=True, **opts)
    return len([e for e in errors if e in wanted]), scores


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
