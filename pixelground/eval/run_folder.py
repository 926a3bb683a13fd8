"""The run folder of ``pixelground eval``: what is predicted streams to ``predictions.jsonl``
(resumable), what the predictions answer is recorded in ``run.json`` (a re-run with other
settings is refused), and the scores go to ``report.json`` and ``per_sample.csv``.

Shared by the image tasks (:mod:`pixelground.eval.loop`) and referring video segmentation
(:mod:`pixelground.eval.video_loop`).
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
from pixelground.eval.datasets.synth import find_split
from pixelground.eval.predictions import parse_record
from pixelground.eval.report import summary, to_json, write_per_sample_csv
from pixelground.eval.run import DEFAULT_SPLITS, parse_dataset_spec

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.json"
CSV_FILE = "per_sample.csv"
MANIFEST_FILE = "run.json"

StepCallback = Callable[[str, int, int], None]


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


def write_report(out: Path, result: dict[str, Any]) -> None:
    """``out/report.json`` (the result without bulk lists) and ``out/per_sample.csv``."""
    (out / REPORT_FILE).write_text(to_json(summary(result)) + "\n")
    write_per_sample_csv(result.get("per_sample", []), out / CSV_FILE)


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
    path = parse_dataset_spec(dataset)[1]
    split = split or DEFAULT_SPLITS.get(fmt)
    if fmt == "synth":  # the split folder, however it was named (root, task or split folder)
        path = find_split(path, task, split)
        split = path.name
    manifest = {
        "task": task,
        "format": fmt,
        "dataset": str(path.resolve()),
        "split": split,
        "model": model_of(pipeline),
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
    """(dotted key, old value, new value) of each setting that differs, down to the leaves.

    A preset recorded under ``model.preset`` that differs stands for its parts: the parts
    (which follow from it) are then left out, so the message names the one setting.
    """
    out = _leaf_differences(old, new, "")
    if any(key == "model.preset" for key, _, _ in out):
        out = [d for d in out if not d[0].startswith("model.parts.")]
    return out


def _leaf_differences(old: Any, new: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [(prefix, old, new)]
    keys = sorted(set(old) | set(new)) if prefix else list(new)  # top level: the new keys
    out = []
    for key in keys:
        if not prefix and key not in old:
            continue  # a setting older manifests did not record
        out += _leaf_differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
    return out


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def model_of(pipeline: Any) -> dict[str, Any]:
    """The preset's name and its parts (backend:checkpoint), so runs of other models differ."""
    preset = getattr(pipeline, "preset", None)
    if preset is None:
        return {"preset": type(pipeline).__name__}
    parts = {role: f"{p.backend}:{p.checkpoint}" for role, p in sorted(preset.parts.items())}
    return {"preset": preset.name, "parts": parts}


def run_head(
    task: str,
    dataset: str | Path,
    fmt: str,
    pipeline: Any,
    samples: int,
    errors: int,
    counts: Mapping[str, int],
) -> dict[str, Any]:
    """The fields every eval report starts with: what was run on what, and how it went."""
    return {
        "task": task, "dataset": str(dataset), "format": fmt, "samples": samples,
        "errors": errors, "this_run": dict(counts), "model": model_of(pipeline),
    }  # fmt: skip
