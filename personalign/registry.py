"""Find methods, tasks, retrievers and backends by folder and file name.

A plug-in called ``cot-rag`` in kind ``methods`` lives in ``personalign/methods/cot_rag.py``
and exposes the class it provides as the module attribute ``PLUGIN``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from personalign.errors import ConfigError

KINDS = ("methods", "retrievers", "backends")


def _module_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def available(kind: str) -> list[str]:
    """Names of every plug-in of a kind, as users type them (``cot-rag``)."""
    package = importlib.import_module(f"personalign.{kind}")
    names = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    return sorted(n.replace("_", "-") for n in names if n != "base")


def load(kind: str, name: str) -> Any:
    """Return the ``PLUGIN`` object of ``personalign/<kind>/<name>.py``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown plug-in kind '{kind}'")
    if _module_name(name) == "base" or name.replace("-", "_") not in [n.replace("-", "_") for n in available(kind)]:
        raise ConfigError(f"unknown {kind[:-1]} '{name}'; choose from: {', '.join(available(kind))}")
    module = importlib.import_module(f"personalign.{kind}.{_module_name(name)}")
    return module.PLUGIN
