"""The one YAML reader behind every ``--config``: ``inherit:`` chains, deep merge, one-line errors."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from personalign.errors import ConfigError


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def read_yaml(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping; ``inherit: other.yaml`` (relative to this file) is read first and deep-merged under it."""
    resolved = Path(path).resolve()
    if resolved in seen:
        raise ConfigError(f"{path}: config inherits itself")
    try:
        values = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:160]})") from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping")
    parent = values.pop("inherit", None)
    return _deep_merge(read_yaml(resolved.parent / parent, (*seen, resolved)), values) if parent else values


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None  # type: ignore[misc]
        kwargs[name] = _build(type(default), value or {}, f"{where}.{name}") if is_dataclass(default) else value
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a dataclass's own check (__post_init__), named by where it was read
        raise ConfigError(f"{where}: {exc}") from None


def load_dataclass(cls: type, path: str | Path | None, overrides: dict[str, Any] | None = None) -> Any:
    """A ``cls`` config from a YAML file (missing keys keep their defaults), then top-level overrides."""
    values = read_yaml(path) if path else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(cls, values, str(path or "config"))
