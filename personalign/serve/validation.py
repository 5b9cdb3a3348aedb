"""One validation layer for what a request names or stores, the same for every store (SQLite, PostgreSQL).

The routes call these checks before any store or base-model call, so a value a store would refuse (a NUL
byte on PostgreSQL, an id longer than its column, a lone surrogate neither driver can encode) is a 400 that
names the field, never a 500, and never after the base model was already called.

Rules:
- user ids (path ``{user}``, the chat request's user): 1 to 256 characters (the column's size);
- item ids (``items.N.id``, path ``{item_id}``): 1 to 128 characters;
- ids hold no control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F), no ``/`` (an id with
  ``/`` could be added but never addressed in a path, so never deleted by id) and are not ``.`` or ``..``
  (clients normalize those path segments away);
- texts (``items.N.text``, message contents) hold no NUL (PostgreSQL's text type cannot store it);
- no string holds a lone surrogate (``"\\ud800"`` is valid JSON but not Unicode any store can keep).
"""

from __future__ import annotations

import unicodedata
from typing import Any

MAX_USER_ID = 256  # HistoryItem.user_id, AnswerRecord.user_id: String(256)
MAX_ITEM_ID = 128  # HistoryItem.item_id: String(128)


class InvalidField(ValueError):
    """A request value refused by name: answered 400 ``invalid_request`` with ``param`` set to the field."""

    def __init__(self, param: str, problem: str):
        super().__init__(f"{param}: {problem}")
        self.param = param


def _encodable(value: str, param: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidField(param, "is not valid Unicode (it holds a lone surrogate)") from None


def identifier(value: Any, param: str, max_chars: int) -> str:
    """An id: a non-empty string of at most ``max_chars`` characters, without control characters or ``/``."""
    if not isinstance(value, str):
        raise InvalidField(param, f"must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidField(param, "must not be empty")
    if len(value) > max_chars:
        raise InvalidField(param, f"is {len(value)} characters long; the limit is {max_chars}")
    _encodable(value, param)
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidField(param, "must not contain control characters (U+0000-U+001F, U+007F-U+009F)")
    if "/" in value:
        raise InvalidField(param, "must not contain '/' (it could not be addressed, or deleted, in a URL path)")
    if value in (".", ".."):
        raise InvalidField(param, "must not be '.' or '..' (URL paths normalize them away)")
    return value


def user_id(value: Any, param: str = "user") -> str:
    """A user id (path ``{user}`` or the chat request's user field)."""
    return identifier(value, param, MAX_USER_ID)


def item_id(value: Any, param: str = "item_id") -> str:
    """A history item's id."""
    return identifier(value, param, MAX_ITEM_ID)


def text(value: Any, param: str) -> str:
    """A text to store or send: a string without NUL or lone surrogates (length limits are the route's)."""
    if not isinstance(value, str):
        raise InvalidField(param, f"must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidField(param, "must not contain NUL (U+0000)")
    _encodable(value, param)
    return value


def message_contents(messages: list[dict[str, Any]], param: str = "messages") -> None:
    """Every string in the chat messages (contents, text parts, names): no NUL, no lone surrogate."""
    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            text(value, where)
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{where}.{key}")
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{where}.{index}")

    for index, message in enumerate(messages):
        walk(message, f"{param}.{index}")


def storable(value: str) -> str:
    """A model's output made storable on every store: NUL and lone surrogates become U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value
