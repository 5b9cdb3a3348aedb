"""A small persistent key-value store on SQLite, shared by the LLM, embedding and summary caches."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import platformdirs

from personalign.errors import ConfigError

CACHE_DIR_ENV = "PERSONALIGN_CACHE_DIR"


def default_cache_dir() -> str:
    """Where the LLM, embedding and trained-scorer caches go when ``--cache-dir`` is not given:
    ``$PERSONALIGN_CACHE_DIR``, else the user's cache folder (``platformdirs``; ~/.cache/personalign on Linux)."""
    root = os.environ.get(CACHE_DIR_ENV)
    return str(Path(root).expanduser()) if root else platformdirs.user_cache_dir("personalign")


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
        self._said_damaged = False
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
            try:
                self._db.execute(f"INSERT OR REPLACE INTO {self.table} (key, value) VALUES (?, ?)", (key, value))
                self._db.commit()
            except sqlite3.OperationalError as exc:  # SQLITE_FULL or SQLITE_IOERR: a full disk, named
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (10, 13):
                    raise
                raise OSError(errno.ENOSPC, f"cannot write the cache ({exc})", str(self.path)) from None

    def get_json(self, key: str) -> Any | None:
        """The JSON value under ``key``; a damaged value (not UTF-8 JSON) is said once and read as absent,
        so the caller recomputes it and overwrites it."""
        raw = self.get_bytes(key)
        if raw is None:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.damaged()
            return None

    def damaged(self) -> None:
        """Say once per store that a damaged entry was found (it is recomputed and overwritten)."""
        if not self._said_damaged:
            self._said_damaged = True
            print(f"personalign: warning: {self.path}: a damaged entry in table {self.table} was ignored and is "
                  "recomputed; if this repeats, delete the file (it is a cache: only speed is lost)", file=sys.stderr)

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, ensure_ascii=False).encode())

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
