"""Read a user's history for ``personalign personalize``: a JSON list, a LaMP question, or JSONL."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import ijson

from personalign.data.lamp_io import MAX_DEPTH, check_profile, depth_limited
from personalign.errors import DataError
from personalign.types import ProfileItem


def _parse(data: bytes) -> Any:
    """One JSON value, parsed with bounded nesting (raises ValueError-like ijson errors)."""
    return next(ijson.items(depth_limited(ijson.parse(io.BytesIO(data), use_float=True)), ""))


def read_history(path: str | Path) -> list[ProfileItem]:
    """Profile items from a JSON list of items, an object with a ``profile`` list, or JSON lines."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(path), None, None, f"cannot read history: {exc}") from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if not raw.strip():
        raise DataError(str(path), None, None, "file is empty (expected a JSON list of history items)")
    try:
        data = _parse(raw)
    except StopIteration:
        raise DataError(str(path), None, None, "file is empty (expected a JSON list of history items)") from None
    except (ijson.JSONError, ValueError) as exc:
        if "nested deeper" in str(exc):
            raise DataError(str(path), None, None, f"JSON nested deeper than {MAX_DEPTH} levels") from None
        data = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data.append(_parse(line))
            except (ijson.JSONError, ValueError, StopIteration) as line_exc:
                problem = " ".join(str(line_exc).split())[:120] or "invalid JSON"
                raise DataError(str(path), f"line {number}", None, f"invalid JSON: {problem}") from None
    if isinstance(data, dict):
        data = data.get("profile")
    if not isinstance(data, list):
        raise DataError(str(path), None, "profile", "expected a list of history items")
    return check_profile(data, path, None)
