"""The one config system: typed pydantic models, YAML files with one level of ``inherit:``, one precedence rule.

Every ``--config`` file is read by :func:`read_yaml` and checked by a :class:`Settings` model. Values are
layered by :func:`precedence`: command line over file over the model's defaults. A bad key or value is one
:class:`~personalign.errors.ConfigError` line naming the file and the key path, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from personalign.errors import ConfigError
from personalign.types import GenParams

S = TypeVar("S", bound="Settings")
_INSIDE: ContextVar[bool] = ContextVar("personalign_settings_inside", default=False)


class Settings(BaseModel):
    """Base of every config model: unknown keys refused, types checked strictly, assignments validated.

    ``renamed`` maps an old key of this section to its new name: the old one is refused with the new name
    (a name with a dot is a path from the top of the file; ``{at}`` stands for this section's path).
    """

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True, arbitrary_types_allowed=True)
    renamed: ClassVar[dict[str, str]] = {}

    def __init__(self, **values: Any) -> None:
        """Direct construction (Python callers): a bad value is one ConfigError line, as from a file. Inside a
        validation (a nested section, :func:`validated`) the ValidationError goes up to be named by its path."""
        if _INSIDE.get():
            super().__init__(**values)
            return
        token = _INSIDE.set(True)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(error_line(type(self), exc, type(self).__name__)) from None
        finally:
            _INSIDE.reset(token)

    @model_validator(mode="before")
    @classmethod
    def _refuse_renamed(cls, values: Any) -> Any:
        if isinstance(values, Mapping):
            for old, new in cls.renamed.items():
                if old in values:
                    raise PydanticCustomError("renamed", "renamed; use {new}", {"old": old, "new": new})
        return values


class MethodConfig(Settings):
    """The settings every method shares (``method_config:`` in eval, serve and training configs; recorded in
    run manifests). ``k`` is the number of history items the retriever puts in a prompt: the one name for it.
    Training configs embed it, so a model is trained on the prompts it is evaluated with."""

    k: int = Field(4, ge=1)
    item_max_words: int = Field(40, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    cot_max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = 0
    summary_items: int = Field(10, ge=1)
    summary_max_tokens: int = Field(64, ge=1)
    lead_words: int = Field(10, ge=1)

    def params(self, task_max_tokens: int, cot: bool = False, max_tokens: int | None = None) -> GenParams:
        """The sampling of a method's request: ``max_tokens``, else the CoT budget or ``max_new_tokens``, else the
        task's; trajectory generation asks the base model with these too, as the ``rpo`` method does."""
        default = self.cot_max_new_tokens if cot else self.max_new_tokens or task_max_tokens
        return GenParams(max_tokens=max_tokens or default, temperature=self.temperature, top_p=self.top_p,
                         seed=self.seed)


def _read_one(path: Path, shown: str) -> dict[str, Any]:
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read config ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: not valid YAML ({' '.join(str(exc).split())[:160]})") from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"{shown}: a config must be a YAML mapping")
    return values


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping; ``inherit: parent.yaml`` (relative to this file) is read first and merged under it.

    One level only: a parent that itself inherits is refused, so a recipe says what it runs in two files at most.
    """
    values = _read_one(Path(path), str(path))
    parent = values.pop("inherit", None)
    if parent is None:
        return values
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: inherit: expected one file name, got {parent!r}")
    parent_path = Path(path).parent / parent
    if parent_path.resolve() == Path(path).resolve():
        raise ConfigError(f"{path}: config inherits itself")
    base = _read_one(parent_path, str(parent_path))
    if "inherit" in base:
        raise ConfigError(f"{path}: inherit: {parent} itself inherits {base['inherit']}; "
                          "one level of inheritance only (copy what it inherits into it)")
    return layered(base, values)


def layered(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Each layer over the ones before it; mappings merge key by key (a child file over its parent)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                value = layered(merged[key], value)
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def given(cli: Mapping[str, Any] | None) -> dict[str, Any]:
    """Command-line values that were given: a None (a flag left out) is dropped, at any depth."""
    return {key: given(value) if isinstance(value, Mapping) else value
            for key, value in (cli or {}).items() if value is not None}


def precedence(file: Mapping[str, Any] | None, cli: Mapping[str, Any] | None) -> dict[str, Any]:
    """The one precedence rule: command line over file over defaults (the defaults are the model's own,
    filled in when the result is validated). ``cli`` None values are flags not given."""
    return layered(file, given(cli))


def _section(model: Any, loc: tuple) -> type[BaseModel] | None:
    """The model class found at key path ``loc`` below ``model`` (None: not a model there)."""
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = field.annotation
        for arg in get_args(model) if get_origin(model) is not None else ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def error_line(model: type[BaseModel], exc: ValidationError, where: str, at: str = "") -> str:
    """The first error of ``exc`` as one line: ``where: key.path: problem`` (``at``: the path of ``model``'s
    section in its file, put in front of the key path)."""
    error = exc.errors()[0]
    inner = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
    loc = (*at.split("."), *inner) if at else inner
    if error["type"] == "renamed":  # a new name with a dot is a path from the top of the file
        old, new = error["ctx"]["old"], error["ctx"]["new"]
        prefix = ".".join(str(p) for p in loc) + "." if loc else ""
        new = new.format(at=prefix) if "{at}" in new else new if "." in new else prefix + new
        return f"{where}: {prefix}{old}: renamed; use {new}"
    path = ".".join(str(p) for p in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        section = _section(model, inner[:-1])
        known = (", ".join(section.model_fields) if section is not None else "") or "none"
        return f"{where}: {path}: unknown option; known: {known}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("missing", "value_error"):
        message += f", got {error['input']!r}"[:120]
    return f"{where}: {path}: {message}"


def _validate(model: type[S], values: dict[str, Any]) -> S:
    token = _INSIDE.set(True)
    try:
        return model.model_validate(values)
    finally:
        _INSIDE.reset(token)


def validated(model: type[S], values: Mapping[str, Any], where: str, at: str = "") -> S:
    """``model`` built from ``values``; any problem is one ConfigError line naming ``where`` and the key path
    (``at``: where ``values`` sit in their file, e.g. ``method_options.rpo``)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: {at + ': ' if at else ''}expected a mapping of options, got {values!r}")
    try:
        return _validate(model, dict(values))
    except ValidationError as exc:
        raise ConfigError(error_line(model, exc, where, at)) from None


def load_settings(model: type[S], path: str | Path | None, cli: Mapping[str, Any] | None = None,
                  flags: Mapping[str, str] | None = None) -> S:
    """A ``model`` from a YAML file (``inherit:`` allowed) under command-line values (None: not given), by
    :func:`precedence`. A bad value given on the command line is named by its flag (``--limit``, or
    ``flags[top-level key]``), one from the file by the file and key path."""
    cli = given(cli)
    values = precedence(read_yaml(path) if path else {}, cli)
    try:
        return _validate(model, values)
    except ValidationError as exc:
        loc = [str(p) for p in exc.errors()[0]["loc"]]
        branch: Any = cli
        while loc and isinstance(branch, Mapping) and loc[0] in branch:
            key = loc.pop(0)
            branch = branch[key]
        if branch is not cli and not isinstance(branch, Mapping):  # the bad value is a command-line one
            flag = (flags or {}).get(key, "--" + key.replace("_", "-"))
            line = error_line(model, exc, "command line").split(": ", 2)[-1]
            raise ConfigError(f"{flag}: {line}") from None
        raise ConfigError(error_line(model, exc, str(path or "command line"))) from None


def key_values(text: str | None, flag: str) -> dict[str, Any]:
    """Parse ``key=value,...`` from a command-line flag (values read as YAML scalars: 1 -> int, true -> bool)."""
    options: dict[str, Any] = {}
    for pair in (p.strip() for p in (text or "").split(",")):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad {flag} entry '{pair}': expected key=value")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"bad {flag} value in '{pair}'") from None
    return options

