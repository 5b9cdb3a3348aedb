"""Read a user's history for ``personalign personalize``: a JSON list, a LaMP question, or JSONL."""

from __future__ import annotations

import json
from pathlib import Path

from personalign.data.lamp_io import check_profile
from personalign.errors import DataError
from personalign.types import ProfileItem


def read_history(path: str | Path) -> list[ProfileItem]:
    """Profile items from a JSON list of items, an object with a ``profile`` list, or JSON lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(path), None, None, f"cannot read history: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(str(path), f"line {number}", None, f"invalid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = data.get("profile")
    if not isinstance(data, list):
        raise DataError(str(path), None, "profile", "expected a list of history items")
    return check_profile(data, path, None)
