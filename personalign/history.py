"""Read a user's history for ``personalign personalize``: a JSON list, a LaMP question, or JSON lines."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import ijson

from personalign.data.json_depth import DepthCheckedReader, NestingError
from personalign.data.lamp_io import check_profile, one_line
from personalign.errors import DataError
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem


def _values(data: bytes, limit: int = 2) -> list[Any]:
    """Up to ``limit`` top-level JSON values of ``data``, parsed with bounded nesting (raises ijson/ValueError)."""
    values = []
    for value in ijson.items(DepthCheckedReader(io.BytesIO(data)), "", use_float=True, multiple_values=True):
        values.append(value)
        if len(values) == limit:
            break
    return values


def _json_lines(raw: bytes, path: Path) -> tuple[list[Any], list[str]]:
    """One history item per non-blank line; a bad line is named by its number."""
    items, records = [], []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = _values(line)
        except NestingError as exc:
            raise DataError(str(path), f"line {number}", None, str(exc)) from None
        except (ijson.JSONError, ValueError) as exc:
            raise DataError(str(path), f"line {number}", None, f"invalid JSON: {one_line(exc, 120)}") from None
        if len(values) != 1 or not isinstance(values[0], dict):
            raise DataError(str(path), f"line {number}", None, "expected one JSON object (a history item) per line")
        items.append(values[0])
        records.append(f"line {number}")
    return items, records


def read_history(path: str | Path, task: TaskSpec | None = None) -> list[ProfileItem]:
    """Profile items from a JSON list of items, an object with a ``profile`` list, or JSON lines
    (one item per line); checked with ``task``'s field rules when given."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(path), None, None, f"cannot read history: {exc}") from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if not raw.strip():
        raise DataError(str(path), None, None, "file is empty (expected a JSON list of history items, or JSON lines)")
    records = None
    try:
        values = _values(raw)
    except NestingError as exc:
        raise DataError(str(path), None, None, str(exc)) from None
    except (ijson.JSONError, ValueError):
        values = []
    item = len(values) == 1 and isinstance(values[0], dict) and "profile" not in values[0]
    if len(values) == 1 and not item:  # one JSON document
        data = values[0].get("profile") if isinstance(values[0], dict) else values[0]
        if not isinstance(data, list):
            raise DataError(str(path), None, "profile" if isinstance(values[0], dict) else None,
                            "expected a list of history items, an object with a 'profile' list, or JSON lines")
    else:  # several values, one bare item, or not one valid document: JSON lines
        data, records = _json_lines(raw, path)
    return check_profile(data, path, task, records)
