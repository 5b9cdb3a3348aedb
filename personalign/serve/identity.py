"""Who a chat request is for: the ways clients name the end user, and the rule when they name several.

A request names its user with any of (docs/serve.md, "Naming the user"):

1. the header ``X-Personalign-User`` (for clients and routers that cannot set body fields),
2. the header ``x-sm-user-id`` (Supermemory's router),
3. the body field ``safety_identifier`` (the openai SDK's replacement for ``user``),
4. the body field ``user`` (the classic OpenAI field).

They are spellings of one identity, not layers that override each other: every one a request sets
must name the same user, or the request is refused with a 400 that names the fields that disagree
(a silent pick could personalize with the wrong user's history). An empty value counts as not set.
``prompt_cache_key`` is a cache-routing hint, not an identity: it never selects a user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError

HEADERS = ("x-personalign-user", "x-sm-user-id")
BODY_FIELDS = ("safety_identifier", "user")


def _refuse(where: tuple[str, str], message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": where, "msg": message}])


def _header(headers: Mapping[str, str], where: tuple[str, str]) -> str | None:
    """A header's value as UTF-8 text (HTTP hands headers over as Latin-1), so "zoë" is one user in both places."""
    value = headers.get(where[1])
    try:
        return None if value is None else value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise _refuse(where, "the user header is not UTF-8") from None


def request_user(body: Any, headers: Mapping[str, str]) -> str | None:
    """The one user the request names (None: none, the base answer), or a 400 naming the fields that disagree."""
    named: dict[tuple[str, str], str] = {}
    for where in [("header", name) for name in HEADERS] + [("body", name) for name in BODY_FIELDS]:
        value = _header(headers, where) if where[0] == "header" else getattr(body, where[1], None)
        if value is not None and not isinstance(value, str):
            raise _refuse(where, "the user must be a string")
        if value:
            named[where] = value
    if len(set(named.values())) > 1:
        fields = ", ".join(f"{kind} {name}" if kind == "header" else name for kind, name in named)
        raise _refuse(next(iter(named)), f"the request names different users in {fields}; "
                                         "name one user (these are spellings of the same identity)")
    return next(iter(named.values()), None)
