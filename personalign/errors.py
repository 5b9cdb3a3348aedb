"""Errors that the CLI reports as one clear line instead of a traceback."""

from collections.abc import Iterator
from contextlib import contextmanager


class PersonalignError(Exception):
    """Base class for user-facing errors."""


class DataError(PersonalignError):
    """Bad input data. The message names the file, the record and the field."""

    def __init__(self, path: str, record: str | int | None, field: str | None, problem: str):
        where = str(path)
        if record is not None:
            where += f": record {record}"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {problem}")
        self.path, self.record, self.field, self.problem = path, record, field, problem


class ConfigError(PersonalignError):
    """A bad option, config value or unknown plug-in name."""


class BackendError(PersonalignError):
    """An LLM backend failed (network, model file, server error after retries).

    ``status``: the HTTP status an endpoint last answered (None: no answer, or not HTTP); ``retry_after``:
    the seconds it asked to wait; ``timed_out``: it gave no reply in time. The service answers from these.
    """

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None,
                 timed_out: bool = False):
        super().__init__(message)
        self.status, self.retry_after, self.timed_out = status, retry_after, timed_out


@contextmanager
def naming(path: object) -> Iterator[None]:
    """Give an OSError raised in the block ``path`` as its file name when it has none: a write that fails
    on a full disk (ENOSPC) or past a size limit names no file by itself."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
