"""A small persistent key-value store on SQLite, shared by the LLM, embedding and summary caches."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from personalign.errors import ConfigError


def stable_hash(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value with sorted keys (a stable cache key)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def item_key(item: dict[str, Any]) -> str:
    """A history item's content hash (fields starting with "_" are bookkeeping and left out)."""
    return stable_hash({k: v for k, v in sorted(item.items()) if not k.startswith("_")})[:16]


def profile_key(profile: Any) -> str:
    """The key of a set of history items, whatever their order: per-user artefacts are stored under it."""
    return stable_hash(sorted(item_key(item) for item in profile))[:24]


class SqliteStore:
    """Thread-safe ``key -> bytes`` table in a SQLite file (WAL mode, one commit per write)."""

    def __init__(self, path: str | Path, table: str = "kv"):
        if not table.isidentifier():
            raise ValueError(f"bad table name {table!r}")
        self.path, self.table = Path(path), table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60)
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; ~40x faster writes
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
                self._db.commit()
                self._db.execute(f"SELECT key FROM {table} LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is damaged ({exc}); it is a cache: delete it (and its -wal/-shm files) "
                              "and run again, only speed is lost") from None

    def get_bytes(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(f"SELECT value FROM {self.table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_bytes(self, key: str, value: bytes) -> None:
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO {self.table} (key, value) VALUES (?, ?)", (key, value))
            self._db.commit()

    def get_json(self, key: str) -> Any | None:
        raw = self.get_bytes(key)
        return None if raw is None else json.loads(raw.decode())

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, ensure_ascii=False).encode())

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
