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

Which pipeline method answers each task: refer/grefer ``segment(image, expression)``, gcg
``caption(image, grounded=True)``, caption ``caption(image)``, png ``ground(image, caption with
the ground-truth phrases marked <p>...</p>)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError, PixelgroundError
from pixelground.eval.predictions import Prediction, parse_record

log = logging.getLogger(__name__)

EVAL_TASKS = ("refer", "grefer", "gcg", "caption", "png")
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.json"
CSV_FILE = "per_sample.csv"

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
    if task not in EVAL_TASKS:
        raise InputError(
            f"`pixelground eval` runs {', '.join(EVAL_TASKS)}; for {task}, write predictions "
            f"with the matching command and score them with `pixelground score {task}`"
        )


def predict(task: str, pipeline: Any, sample: Any) -> Any:
    """One GroundedResult for one sample (see the module docstring for the method per task)."""
    check_eval_task(task)
    image = str(sample.image_path)
    if task in ("refer", "grefer"):
        return pipeline.segment(image, sample.text)
    if task == "gcg":
        return pipeline.caption(image, grounded=True)
    if task == "caption":
        return pipeline.caption(image)
    return pipeline.ground(image, marked_caption(sample))


def read_progress(path: Path) -> tuple[dict[str, Prediction], dict[str, str]]:
    """Predictions and errors already streamed to ``path`` (a torn last line is ignored)."""
    done: dict[str, Prediction] = {}
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
            done[rid] = parse_record(record)
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
) -> dict[str, int]:
    """Predict every sample not yet in ``out_dir/predictions.jsonl``; returns counts."""
    check_eval_task(task)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREDICTIONS_FILE
    done, _ = read_progress(path)
    counts = {"predicted": 0, "skipped": 0, "errors": 0}
    _end_with_newline(path)
    with path.open("a") as handle:
        for index, sample in enumerate(samples):
            sid = str(sample.id)
            if sid in done:
                counts["skipped"] += 1
            else:
                try:
                    record = {"id": sid, "result": predict(task, pipeline, sample).to_dict()}
                    counts["predicted"] += 1
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
    **score_opts: Any,
) -> dict[str, Any]:
    """Predict and score a dataset; writes predictions.jsonl, report.json, per_sample.csv.

    Args:
        task: one of :data:`EVAL_TASKS`.
        dataset: ``FORMAT:PATH`` (format inferred when omitted).
        pipeline: a ``pixelground.load(...)`` Pipeline (or any object with its methods).
        out_dir: output folder (created).
        limit: only the first N samples.
        split, image_dir: dataset options.
        protocol: refer variant ("lisa"/"glamm"/"sa2va").
        on_step: called after each sample with (id, done, total).
        on_samples: called once with the number of samples to run.
        **score_opts: e.g. ``phrase_encoder``, ``captions`` (gcg).

    Returns:
        The full result (with per-sample records); report.json holds it without them.
    """
    from pixelground.eval.report import summary, to_json, write_per_sample_csv
    from pixelground.eval.run import _check_protocol, check_task, load_dataset, score_loaded

    check_task(task)
    check_eval_task(task)
    protocol = _check_protocol(task, protocol)
    fmt, samples = load_dataset(dataset, task, split, image_dir)
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be at least 1, got {limit}")
        samples = samples[:limit]
    if on_samples is not None:
        on_samples(len(samples))
    counts = run_predictions(task, pipeline, samples, out_dir, on_step)
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
        **result,
    }
    out = Path(out_dir)
    (out / REPORT_FILE).write_text(to_json(summary(result)) + "\n")
    write_per_sample_csv(result.get("per_sample", []), out / CSV_FILE)
    return result


def _model_of(pipeline: Any) -> dict[str, Any]:
    preset = getattr(getattr(pipeline, "preset", None), "name", None)
    return {"preset": preset or type(pipeline).__name__}
