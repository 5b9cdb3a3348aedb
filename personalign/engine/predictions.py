"""Prediction logs, the raw completion log of eval runs and RPO trajectory generation: append-only JSONL
with a run key, an exclusive lock, and repair on open.

Each method's log ``predictions/<method>.jsonl`` sits beside ``<method>.key.json``, the run key it
was made under (data hash, model content identity, typed method config, seed, limit, control).
Resuming under another key is refused with one line naming what changed, so rows are never mixed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from personalign.data.lamp_io import atomic_writer
from personalign.errors import ConfigError, naming

SYNC_EVERY_S = 0.5  # fsync at most this often: a power loss costs at most this much (LLM calls stay cached)


SHOWN = 80  # characters of a changed value shown in a refusal, around the first difference
_MODEL_FILE = re.compile(r"[^\s\"@:]+@([0-9a-f]{12})\b")  # model_file_id: <file name>@<content hash>


def _shown(text: str, start: int) -> str:
    """``text``, or a window of it from just before ``start`` when it is long."""
    if len(text) <= SHOWN:
        return text
    begin = max(0, min(start - 10, len(text) - SHOWN))
    return ("..." if begin else "") + text[begin:begin + SHOWN] + ("..." if begin + SHOWN < len(text) else "")


def _change(path: str, old: Any, new: Any) -> list[str]:
    """``path: old -> new`` for each leaf that differs (nested mappings are followed key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for k in sorted(old.keys() | new.keys(), key=str) if old.get(k) != new.get(k)
                for line in _change(f"{path}.{k}" if path else str(k), old.get(k), new.get(k))]
    a, b = (json.dumps(v, sort_keys=True, default=str) for v in (old, new))
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return [f"{path + ': ' if path else ''}{_shown(a, first)} -> {_shown(b, first)}"]


def _same_model_content(value: Any) -> str:
    """Model identities with file names left out: the same bytes under another name are the same model."""
    return _MODEL_FILE.sub(r"@\1", json.dumps(value, sort_keys=True, default=str))


def key_changes(earlier: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``field (what differs: old -> new)`` for every top-level key field that differs."""
    changed = [k for k in sorted(earlier.keys() | now.keys()) if earlier.get(k) != now.get(k)]
    changed = [k for k in changed
               if k != "models" or _same_model_content(earlier.get(k)) != _same_model_content(now.get(k))]
    return [f"{k} ({'; '.join(_change('', earlier.get(k), now.get(k)))})" for k in changed]


def row_problem(row: Any) -> str | None:
    """What is damaged in a prediction-log row (None when it is sound)."""
    if not isinstance(row, dict) or "id" not in row:
        return "not a JSON object with an id"
    wanted = {"id": (str, int), "raw": (str,), "filter": (str,), "trace": (dict, type(None)),
              "gold": (str, type(None)), "seconds": (int, float)}
    for field, kinds in wanted.items():
        if field in row and (not isinstance(row[field], kinds) or isinstance(row[field], bool)):
            return f"field '{field}' has the wrong type ({type(row[field]).__name__})"
    return None


def is_empty(row: dict[str, Any]) -> bool:
    """A row whose completion is empty: a failed or overloaded server, to be asked again."""
    return not row.get("raw", "").strip()


def keep(rows: dict[str, dict[str, Any]], row: dict[str, Any]) -> bool:
    """Put ``row`` in ``rows`` unless its id already has one; a non-empty completion replaces an empty one."""
    example_id = str(row["id"])
    if example_id in rows and not (is_empty(rows[example_id]) and not is_empty(row)):
        return False
    rows[example_id] = row
    return True


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
    seen are ignored, except that a non-empty completion replaces an empty one (asked again). With ``key``, the log is tied to a run key; with ``lock`` (the default), a
    second process writing the same log is refused.
    """

    def __init__(self, path: str | Path, key: dict[str, Any] | None = None, lock: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire() if lock else None
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

    def _acquire(self) -> FileLock:
        """An exclusive lock on ``<log>.lock`` (filelock), or a one-line refusal if another writer holds it."""
        lock = FileLock(self.path.with_suffix(".lock"), timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(f"{self.path} is being written by another process; wait for it, or use another --out") from None
        return lock

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
                problem = row_problem(row)
            except (ValueError, UnicodeDecodeError):
                problem = "not JSON"
            if problem:
                self.skipped += 1
                print(f"personalign: {self.path}: line {number} is damaged ({problem}); skipped (it will be recomputed)",
                      file=sys.stderr)
                continue
            keep(self.rows, row)

    def __contains__(self, example_id: str) -> bool:
        return example_id in self.rows

    def empty(self, example_id: str) -> bool:
        """Does the log hold an empty completion for this example (to be asked again)?"""
        return example_id in self.rows and is_empty(self.rows[example_id])

    def append(self, row: dict[str, Any]) -> None:
        """Write one prediction row; it reaches the disk within ``SYNC_EVERY_S`` (and at close).

        A row for an example already logged is ignored, unless it replaces an empty completion.
        """
        if not keep(self.rows, row):
            return
        with naming(self.path):
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._file.flush()  # in the OS: survives a crash of this process
        if time.monotonic() - self._synced >= SYNC_EVERY_S:
            self.sync()

    def sync(self) -> None:
        """Force written rows to the disk (survives a power loss)."""
        with naming(self.path):
            os.fsync(self._file.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
        with naming(self.path):
            self._file.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "PredictionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log_checked(path: str | Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], list[str]]:
    """A log's run key, rows and damaged lines (``line N: what``), read-only (takes no lock).

    A damaged line whose example has a sound row elsewhere in the log (recomputed) is not reported.
    """
    path = Path(path)
    key = read_key(path.with_suffix(".key.json"))
    rows: dict[str, dict[str, Any]] = {}
    damaged: list[tuple[str | None, str]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = json.loads(line)
                problem = row_problem(row)
            except (ValueError, UnicodeDecodeError):
                row, problem = None, "not JSON"
            if problem:
                example_id = str(row["id"]) if isinstance(row, dict) and isinstance(row.get("id"), (str, int)) else None
                damaged.append((example_id, f"line {number}: {problem}"))
                continue
            keep(rows, row)
    return key, rows, [what for example_id, what in damaged if example_id is None or example_id not in rows]


def read_log(path: str | Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """A log's run key and sound rows, read-only (for rescoring and reports; takes no lock)."""
    key, rows, _ = read_log_checked(path)
    return key, rows
