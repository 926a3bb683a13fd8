"""Report helpers: cell formatting, headline order, strict JSON, per-sample CSV."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console

from pixelground.eval.report import (
    format_value,
    render_table,
    summary,
    summary_rows,
    to_json,
    write_per_sample_csv,
)


def test_format_value():
    assert format_value("gIoU", 0.81234) == "81.23"
    assert format_value("count", 12) == "12"
    assert format_value("n", 9.0) == "9"
    assert format_value("bound_th", 0.008) == "0.008"
    assert format_value("CIDEr", 1.25) == "1.25"
    assert format_value("J", float("nan")) == "nan"
    assert format_value("x", None) == "n/a" and format_value("ok", True) == "yes"


def test_summary_rows_and_table_order():
    result = {
        "task": "grefer", "protocol": "rela", "count": 3, "cIoU": 0.5, "gIoU": 0.25,
        "N-acc": 1.0, "confusion": {"TP": 1, "FN": 0}, "per_sample": [{"id": "a"}],
    }  # fmt: skip
    rows = dict(summary_rows(result))
    assert rows["confusion.TP"] == "1" and "per_sample" not in rows and rows["N-acc"] == "100.00"
    console = Console(file=io.StringIO(), width=80)
    console.print(render_table(result))
    text = console.file.getvalue()
    assert text.index("gIoU") < text.index("cIoU") < text.index("N-acc") < text.index("count")
    assert "per_sample" not in summary(result)


def test_strict_json_and_csv(tmp_path):
    text = to_json({"J": float("nan"), "rows": [1.5, float("inf")]}, indent=None)
    assert json.loads(text) == {"J": None, "rows": [1.5, None]}
    path = tmp_path / "out" / "rows.csv"
    n = write_per_sample_csv([{"id": "a", "IoU": 0.5}, {"id": "b", "AR": {"All": 1}}], path)
    rows = list(csv.DictReader(path.open()))
    assert n == 2 and rows[1]["AR.All"] == "1" and rows[0]["IoU"] == "0.5"
