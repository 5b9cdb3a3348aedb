"""Prediction logs: append-only JSONL with a run key, an exclusive lock, and repair on open.

Each method's log ``predictions/<method>.jsonl`` sits beside ``<method>.key.json``, the run key it
was made under (data hash, model content identity, typed method config, seed, limit, control).
Resuming under another key is refused with one line naming what changed, so rows are never mixed.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from personalign.data.lamp_io import atomic_writer
from personalign.errors import ConfigError

SYNC_EVERY_S = 0.5  # fsync at most this often: a power loss costs at most this much (LLM calls stay cached)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def key_changes(earlier: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``field (old -> new)`` for every top-level key field that differs."""
    return [f"{k} ({_short(earlier.get(k))} -> {_short(now.get(k))})"
            for k in sorted(earlier.keys() | now.keys()) if earlier.get(k) != now.get(k)]


def read_key(path: Path) -> dict[str, Any] | None:
    """The run key stored at ``path`` (None when absent); a damaged file is a one-line error."""
    if not path.exists():
        return None
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is damaged ({type(exc).__name__}); delete it and {path.with_suffix('').with_suffix('.jsonl')} "
                          "to start that method over") from None
    if not isinstance(key, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object); delete it and its .jsonl log to start over")
    return key


class PredictionLog:
    """One JSON object per line, each with an ``id``; fsynced after every write.

    On open, a torn last line (the process died mid-write) is cut off; a damaged line elsewhere is
    skipped with a warning (never deleted, so nothing computed is lost); rows whose id was already
    seen are ignored. With ``key``, the log is tied to a run key; with ``lock`` (the default), a
    second process writing the same log is refused.
    """

    def __init__(self, path: str | Path, key: dict[str, Any] | None = None, lock: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._acquire() if lock else None
        self.rows: dict[str, dict[str, Any]] = {}
        self.skipped = 0
        if key is not None:
            self._check_key(json.loads(json.dumps(key, default=str)))
        self._repair_and_load()
        self._file = self.path.open("a", encoding="utf-8")
        self._synced = time.monotonic()

    @property
    def key_path(self) -> Path:
        return self.path.with_suffix(".key.json")

    def _acquire(self):
        handle = self.path.with_suffix(".lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(f"{self.path} is being written by another process; wait for it, or use another --out") from None
        return handle

    def _check_key(self, key: dict[str, Any]) -> None:
        earlier = read_key(self.key_path)
        if earlier is None:
            if self.path.exists() and self.path.stat().st_size:
                raise ConfigError(f"{self.path} has rows but no {self.key_path.name} (made by an older version or "
                                  "damaged); move it away or delete it to start over")
            with atomic_writer(self.key_path) as handle:
                json.dump(key, handle, indent=2, sort_keys=True)
            return
        changes = key_changes(earlier, key)
        if changes:
            raise ConfigError(f"{self.path}: made with a different {'; '.join(changes)}; rows are never mixed: use "
                              f"another --out or a method label (name@label), or delete {self.path.name} and "
                              f"{self.key_path.name} to start over")

    def _repair_and_load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.splitlines(keepends=True)
        for number, line in enumerate(lines, start=1):
            last = number == len(lines)
            if last and not line.endswith(b"\n"):
                with self.path.open("r+b") as handle:  # torn by a crash mid-write: cut it off
                    handle.truncate(len(data) - len(line))
                break
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "id" not in row:
                    raise ValueError("not an object with an id")
            except (ValueError, UnicodeDecodeError):
                self.skipped += 1
                print(f"personalign: {self.path}: line {number} is damaged; skipped (it will be recomputed)",
                      file=sys.stderr)
                continue
            self.rows.setdefault(str(row["id"]), row)

    def __contains__(self, example_id: str) -> bool:
        return example_id in self.rows

    def append(self, row: dict[str, Any]) -> None:
        """Write one prediction row; it reaches the disk within ``SYNC_EVERY_S`` (and at close)."""
        example_id = str(row["id"])
        if example_id in self.rows:
            return
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()  # in the OS: survives a crash of this process
        if time.monotonic() - self._synced >= SYNC_EVERY_S:
            self.sync()
        self.rows[example_id] = row

    def sync(self) -> None:
        """Force written rows to the disk (survives a power loss)."""
        os.fsync(self._file.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
        self._file.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def __enter__(self) -> "PredictionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(path: str | Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """A log's run key and rows, read-only (for rescoring and reports; takes no lock)."""
    path = Path(path)
    key = read_key(path.with_suffix(".key.json"))
    rows: dict[str, dict[str, Any]] = {}
    with path.open("rb") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(row, dict) and "id" in row:
                rows.setdefault(str(row["id"]), row)
    return key, rows
