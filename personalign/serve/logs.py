"""What the service's logs may hold: no user ids, item ids, texts, answers or prompts.

Exceptions are logged by ``error_summary``: type, HTTP status, timeout; never their message. An exception
nobody caught (uvicorn's "Exception in ASGI application") is logged with its stack of frames and its type,
and without its message or chained exceptions (``WithholdExceptionMessages``).

uvicorn's access log writes each request's path, and the history routes carry the user id (and the item
id) in theirs. ``RedactUserPaths`` rewrites those segments to ``*`` and drops the query string before any
handler formats the line, so ``DELETE /v1/users/alice/history/x1`` is logged as
``DELETE /v1/users/*/history/*``.
"""

from __future__ import annotations

import logging
import traceback

ACCESS_LOGGER = "uvicorn.access"
ROUTE_WORDS = {"history", "export", "answers"}  # the fixed segments after /v1/users/{user}


def error_summary(exc: BaseException) -> str:
    """What a log line may say about an exception: its type, and a base model's HTTP status or timeout. Never
    its message, which may quote a prompt, an item or a base model's reply."""
    status, timed_out = getattr(exc, "status", None), getattr(exc, "timed_out", False)
    return type(exc).__name__ + (f" (HTTP {status})" if status else "") + (" (timed out)" if timed_out else "")


def redact_path(path: str) -> str:
    """A request path without the ids it names (the segments after ``/users/``) and without its query."""
    path = path.split("?", 1)[0]
    head, marker, tail = path.partition("/users/")
    if not marker:
        return path
    # by position: the user id is always the first segment (a user named "history" is redacted too), then
    # the route word, then the item id
    parts = tail.split("/")
    return head + marker + "/".join(part if n == 1 and part in ROUTE_WORDS else "*" for n, part in enumerate(parts))


class RedactUserPaths(logging.Filter):
    """A filter for uvicorn's access logger: the path argument (``%s`` number 3) loses its ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = args[:2] + (redact_path(args[2]),) + args[3:]
        return True


class WithholdExceptionMessages(logging.Filter):
    """A record's traceback keeps its frames (file, line, code) and the exception's type; the message, which may
    quote a prompt or an item, is withheld."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            _, exc, tb = record.exc_info
            record.exc_text = ("Traceback (most recent call last):\n" + "".join(traceback.format_tb(tb)) +
                               f"{error_summary(exc)} (message withheld: it may quote stored text)")
            record.exc_info = None
        return True


LOGGERS = {ACCESS_LOGGER: RedactUserPaths, "uvicorn.error": WithholdExceptionMessages,
           "personalign.serve": WithholdExceptionMessages}


def install_log_filters() -> None:
    """Install ``RedactUserPaths`` on uvicorn's access logger and ``WithholdExceptionMessages`` on its error
    logger and the service's (once per process; uvicorn's logging set-up keeps a logger's filters)."""
    for name, kind in LOGGERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
