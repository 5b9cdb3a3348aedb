"""Find methods, tasks, retrievers and backends by folder and file name.

A plug-in called ``cot-rag`` in kind ``methods`` lives in ``personalign/methods/cot_rag.py``
and exposes the class it provides as the module attribute ``PLUGIN``. A module of a plug-in folder
without a top-level ``PLUGIN =`` (``base.py``, ``ranking.py``) is a helper, not a plug-in.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

from personalign.errors import ConfigError

KINDS = ("methods", "retrievers", "backends")


def _module_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def available(kind: str) -> list[str]:
    """Names of every plug-in of a kind, as users type them (``cot-rag``)."""
    return list(_plugins(kind))


@functools.cache
def _plugins(kind: str) -> tuple[str, ...]:
    """The plug-in names of a kind, found once per process (``load`` asks on every call)."""
    package = importlib.import_module(f"personalign.{kind}")
    names = [m.name for m in pkgutil.iter_modules(package.__path__)
             if not m.name.startswith("_") and _defines_plugin(Path(m.module_finder.path) / f"{m.name}.py")]
    return tuple(sorted(n.replace("_", "-") for n in names))


def _defines_plugin(source: Path) -> bool:
    """Whether a module assigns ``PLUGIN`` at top level (read as text: listing imports nothing heavy)."""
    try:
        return re.search(r"^PLUGIN\s*[:=]", source.read_text(encoding="utf-8"), re.MULTILINE) is not None
    except OSError:
        return False


def load(kind: str, name: str) -> Any:
    """Return the ``PLUGIN`` object of ``personalign/<kind>/<name>.py``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown plug-in kind '{kind}'")
    if name.replace("-", "_") not in [n.replace("-", "_") for n in _plugins(kind)]:
        raise ConfigError(f"unknown {kind[:-1]} '{name}'; choose from: {', '.join(available(kind))}")
    module = importlib.import_module(f"personalign.{kind}.{_module_name(name)}")
    return module.PLUGIN
