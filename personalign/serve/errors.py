"""Every error the service answers, in the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``.

Unknown URLs (404), wrong methods (405), bodies that are not UTF-8 JSON and unexpected failures (500)
included: never FastAPI's ``{"detail": ...}``. A failing base model is answered as docs/serve.md
("Retries and base-model errors") says: 429 or 503 with ``Retry-After`` when the base asked to wait,
504 when it timed out, 400 when it refused the request as invalid, 502 otherwise.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from personalign.serve.logs import redact_path

LOG = logging.getLogger("personalign.serve")
# the service's retry policy for an HTTP base model: one retry at most, and only after a short wait; a longer
# Retry-After goes to the client, whose own retries then wait for it (docs/serve.md, "Retries")
BASE_RETRY_OPTIONS = {"max_retries": 1, "max_retry_wait": 5.0}
DEFAULT_RETRY_AFTER_S = 1  # what 429 and 503 answers ask a client to wait when the base named no time
REFUSED_AS_INVALID = (400, 413, 422)  # base statuses that mean "this request is wrong": retrying cannot help


def error(status: int, message: str, code: str | None, kind: str = "invalid_request_error", param: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    """One error answer in the OpenAI shape."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status,
                        headers=headers)


class UpstreamError(Exception):
    """The base model failed or timed out. ``status``: the base's last HTTP status (None: no answer);
    ``retry_after``: the seconds it asked to wait; ``timed_out``: no reply in time."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None,
                 timed_out: bool = False):
        super().__init__(message)
        self.status, self.retry_after, self.timed_out = status, retry_after, timed_out

    @classmethod
    def of(cls, exc: Exception) -> UpstreamError:
        """The service's error for a backend's BackendError (its status, Retry-After and timeout carried over)."""
        return cls(str(exc), getattr(exc, "status", None), getattr(exc, "retry_after", None),
                   getattr(exc, "timed_out", False))


def upstream_error(exc: UpstreamError) -> JSONResponse:
    """The answer to a request whose base-model call failed (after the service's one retry, if any)."""
    wait = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after is not None else None
    if exc.status == 429:
        return error(429, f"the base model is rate-limited: {exc}", "rate_limit_exceeded", "requests",
                     headers=wait or {"Retry-After": str(DEFAULT_RETRY_AFTER_S)})
    if exc.status == 503:
        return error(503, f"the base model is unavailable: {exc}", "upstream_unavailable", "api_error",
                     headers=wait or {"Retry-After": str(DEFAULT_RETRY_AFTER_S)})
    if exc.timed_out:
        return error(504, f"the base model timed out: {exc}", "upstream_timeout", "api_error")
    if exc.status in REFUSED_AS_INVALID:
        return error(400, f"the base model refused the request: {exc}", "upstream_rejected")
    return error(502, f"the base model failed: {exc}", "upstream_error", "api_error", headers=wait)


def install(app: FastAPI) -> None:
    """Answer routing errors, unreadable bodies and unexpected failures in the OpenAI shape."""

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and exc.detail == "Not Found":  # no such route
            return error(404, f"Invalid URL ({where}): this service does not serve it", "unknown_url",
                         headers=headers)
        if exc.status_code == 405:
            allowed = headers.get("Allow") or headers.get("allow") or ""
            return error(405, f"Method not allowed ({where}); allowed: {allowed}", "method_not_allowed",
                         headers=headers)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # not UTF-8, say
            return error(400, "the request body could not be read as UTF-8 JSON", "invalid_json")
        kind = "invalid_request_error" if exc.status_code < 500 else "api_error"
        return error(exc.status_code, str(exc.detail), None, kind, headers=headers)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        LOG.error("internal error on %s %s: %s", request.method, redact_path(request.url.path), type(exc).__name__)
        return error(500, "internal error: the service could not answer this request", "internal_error", "api_error")
