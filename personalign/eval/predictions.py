"""An append-only JSONL log of predictions that survives interrupts without losing or duplicating rows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class PredictionLog:
    """One JSON object per line, each with an ``id``; fsynced after every write.

    On open, a torn last line (the process died mid-write) is cut off, and rows whose id was
    already seen are ignored, so a resumed run neither loses nor duplicates predictions.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        self._repair_and_load()
        self._file = self.path.open("a", encoding="utf-8")

    def _repair_and_load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            self.rows.setdefault(str(row["id"]), row)
            good_end += len(line)
        if good_end != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)

    def __contains__(self, example_id: str) -> bool:
        return example_id in self.rows

    def append(self, row: dict[str, Any]) -> None:
        """Write one prediction row durably."""
        example_id = str(row["id"])
        if example_id in self.rows:
            return
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows[example_id] = row

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "PredictionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
