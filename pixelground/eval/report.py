"""Presenting scores: a rich table of the headline metrics, JSON without bulk, per-sample CSV."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pixelground.eval.tasks import TASK_TABLE

#: Keys holding bulk per-item data, left out of tables and of the summary JSON.
BULK_KEYS = frozenset(
    {"per_sample", "per_object", "per_proposal", "per_frame", "per_expression", "per_sequence",
     "per_image", "per_class", "objects", "sequences", "expressions"}
)  # fmt: skip
#: Keys that hold counts (never shown as percentages).
COUNT_KEYS = frozenset({"n", "tp", "fp", "fn", "tn"})
COUNT_PREFIXES = ("count", "num_", "missing", "unscored", "samples_without", "no_target_count")
#: Parameters echoed in results, shown as given (not as percentages).
RAW_KEYS = frozenset({"bound_th", "iou_threshold", "sim_threshold", "threshold"})
#: Dicts of per-group score dicts (e.g. ``{"motion": {"JF": ...}}``), shown two levels deep.
GROUP_KEYS = frozenset({"by_type", "near_misses", "selection"})


def _is_count(key: str) -> bool:
    low = key.lower()
    return low in COUNT_KEYS or low.startswith(COUNT_PREFIXES)


#: The metrics each task's table shows first, as the papers report them (from the task table).
HEADLINES = {name: task.headline for name, task in TASK_TABLE.items()}


def format_value(key: str, value: Any) -> str:
    """A cell: fractions as percentages with 2 decimals, counts as integers, text as is; an
    undefined value (None, e.g. N-acc without a no-target sample) as "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (
        isinstance(value, float) and _is_count(key) and value.is_integer()
    ):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if key in RAW_KEYS:
            return f"{value:g}"
        return (
            f"{100 * value:.2f}" if -1.0 <= value <= 1.0 and not _is_count(key) else f"{value:.4g}"
        )
    return str(value)


def summary_rows(result: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(metric, formatted value) rows: top-level scalars, then nested dicts one level deep
    (two for the per-group dicts of :data:`GROUP_KEYS`, e.g. ``by_type.motion.JF``)."""
    rows: list[tuple[str, str]] = []
    for key, value in result.items():
        if key in BULK_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if prefix:  # only one level of nesting
                continue
            if key in GROUP_KEYS:
                for group, scores in value.items():
                    if isinstance(scores, dict):
                        rows.extend(summary_rows(scores, prefix=f"{name}.{group}."))
                continue
            rows.extend(summary_rows(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            continue
        else:
            rows.append((name, format_value(key, value)))
    return rows


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The result without its bulk per-item lists (what report.json keeps at the top)."""
    return {k: v for k, v in result.items() if k not in BULK_KEYS}


def render_table(result: dict[str, Any], title: str | None = None) -> Any:
    """A rich Table of :func:`summary_rows` (fractions shown x100)."""
    from rich.table import Table

    table = Table(title=title or f"{result.get('task', 'scores')} ({result.get('protocol', '')})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    headline = HEADLINES.get(str(result.get("task")), ())
    rows = [r for r in summary_rows(result) if r[0] not in ("task", "protocol")]
    first = sorted((r for r in rows if r[0] in headline), key=lambda r: headline.index(r[0]))
    for name, value in first:
        table.add_row(f"[bold]{name}[/bold]", f"[bold]{value}[/bold]")
    if first:
        table.add_section()
    for name, value in rows:
        if name not in headline:
            table.add_row(name, value)
    return table


def print_table(result: dict[str, Any], console: Any = None, title: str | None = None) -> None:
    """Print the table to ``console`` (a rich Console; default stdout)."""
    from rich.console import Console

    (console or Console()).print(render_table(result, title))


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            for k, v in value.items():
                out[f"{key}.{k}"] = v
        elif isinstance(value, (list, tuple)):
            out[key] = json.dumps(value)
        else:
            out[key] = value
    return out


def write_per_sample_csv(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write per-sample records as CSV (union of their keys as columns); returns the row count."""
    rows = [_flat(r) for r in records]
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["id"])
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return len(rows)


def to_json(result: dict[str, Any], indent: int | None = 2) -> str:
    """JSON text with NaN/inf written as null (strict JSON)."""
    return json.dumps(_finite(result), indent=indent, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _finite(value.item())
    return value
