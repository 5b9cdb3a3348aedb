"""Errors that the CLI reports as one clear line instead of a traceback."""


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
    """An LLM backend failed (network, model file, server error after retries)."""
