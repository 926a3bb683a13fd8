"""The dataset on disk: a manifest, committed shards of records, and stats.

Layout of ``DATASET/``::

    manifest.json            settings, preset parts, stages and their backends, versions
    shards/shard-<run>-<n>.jsonl   one JSON record per line (masks as COCO RLE)
    stats.json               counts, objects per image, phrases kept/dropped, time per stage

A shard is written under a temporary name in ``shards/`` and renamed when complete (an atomic
commit), so killing a run at any moment loses nothing committed and leaves no torn shard;
temporaries of a killed run are removed when the next run opens the dataset. A record's
``status`` is ``done`` or ``failed`` (with ``error``). When an image has several records (a
failed one redone with ``--retry-failed``), readers take its ``done`` record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError
from pixelground.core.files import atomic_open

FORMAT = "pixelground.engine"
VERSION = 1
#: What an interrupted shard commit leaves behind (core.files.atomic_path's temporary name).
PARTIAL_SHARDS = ".shard-*.partial.jsonl"
#: Manifest keys that must match for a run to add to an existing dataset.
SETTING_KEYS = ("format", "version", "preset", "parts", "settings", "stages")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, then rename)."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=1)


class Dataset:
    """A dataset folder written by the engine.

    Args:
        root: the folder (created on :meth:`open_for_writing`).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.shards = self.root / "shards"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        """The manifest; InputError when the folder is not an engine dataset."""
        if not self.manifest_path.is_file():
            raise InputError(
                f"{self.root} is not a pixelground dataset (no manifest.json); write one with "
                "`pixelground annotate SOURCE --out DIR`"
            )
        data = json.loads(self.manifest_path.read_text())
        if data.get("format") != FORMAT:
            raise InputError(f"{self.manifest_path} is not a pixelground.engine manifest")
        return data

    def open_for_writing(self, manifest: dict[str, Any]) -> None:
        """Check the folder is writable and its settings match; write the manifest if new.

        Raises:
            InputError: the folder cannot be written, is not a dataset, or holds a dataset
                made with other settings.
        """
        self._check_writable()
        if self.manifest_path.exists():
            old = self.manifest()
            differ = [k for k in SETTING_KEYS if old.get(k) != manifest.get(k)]
            if differ:
                raise InputError(
                    f"{self.root} holds a dataset made with other settings ({', '.join(differ)} "
                    f"differ); annotate into a new folder, or rerun with the same preset, "
                    f"levels and options to resume it"
                )
        else:
            if any(p for p in self.root.iterdir() if not p.name.startswith(".")):
                raise InputError(
                    f"{self.root} is not empty and holds no dataset; choose an empty or new folder"
                )
            write_json(self.manifest_path, manifest)
        self.shards.mkdir(exist_ok=True)
        for stale in self.shards.glob(PARTIAL_SHARDS):
            stale.unlink(missing_ok=True)

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{uuid.uuid4().hex[:8]}"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise InputError(
                f"cannot write to the output folder {self.root}: {error.strerror or error}; "
                "choose a folder you can write to"
            ) from error

    def commit(self, records: Iterable[dict[str, Any]], run_id: str, number: int) -> Path | None:
        """Write ``records`` as one shard, atomically; None when there are none."""
        lines = [json.dumps(r, separators=(",", ":")) + "\n" for r in records]
        if not lines:
            return None
        target = self.shards / f"shard-{run_id}-{number:05d}.jsonl"
        with atomic_open(target, fsync=True) as handle:
            handle.writelines(lines)
        return target

    def shard_paths(self) -> list[Path]:
        """Committed shards, in commit-name order."""
        return sorted(self.shards.glob("shard-*.jsonl")) if self.shards.is_dir() else []

    def raw_records(self) -> Iterator[dict[str, Any]]:
        """Every committed record, duplicates (retried failures) included."""
        for path in self.shard_paths():
            with path.open() as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)

    def status(self) -> dict[str, str]:
        """image id -> "done" or "failed" (done wins over an earlier failure)."""
        out: dict[str, str] = {}
        for record in self.raw_records():
            if out.get(record["id"]) != "done":
                out[record["id"]] = record["status"]
        return out

    def records(self, status: str | None = "done") -> Iterator[dict[str, Any]]:
        """One record per image (its done record if any), optionally only one status."""
        final = self.status()
        seen: set[str] = set()
        for record in self.raw_records():
            rid = record["id"]
            if rid in seen or record["status"] != final[rid]:
                continue
            seen.add(rid)
            if status is None or record["status"] == status:
                yield record
