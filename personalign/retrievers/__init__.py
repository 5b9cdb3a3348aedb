"""Profile retrievers. A retriever ranks a user's profile items for a query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personalign import registry
from personalign.errors import ConfigError
from personalign.retrievers.ranking import rank_by_scores
from personalign.retrievers.base import Retriever


def get_retriever(spec: str, seed: int = 0, cache_dir: str | Path | None = None, **options: Any) -> Retriever:
    """Build a retriever from ``name`` or ``name:arg`` (``bm25``, ``dense:/path/to/model``)."""
    name, _, arg = spec.partition(":")
    plugin = registry.load("retrievers", name)
    try:
        return plugin(arg or None, seed=seed, cache_dir=cache_dir, **options)
    except TypeError as exc:
        raise ConfigError(f"retriever '{name}': bad option ({exc})") from exc


__all__ = ["Retriever", "get_retriever", "rank_by_scores"]
