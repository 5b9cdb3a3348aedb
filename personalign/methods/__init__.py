"""Personalization methods. Each file here is one method, named after the file (``cot_rag.py`` -> ``cot-rag``)."""

from __future__ import annotations

from pathlib import Path

from personalign import registry
from personalign.backends.base import LLM
from personalign.methods.base import Method, MethodConfig
from personalign.retrievers.base import Retriever
from personalign.tasks.spec import TaskSpec


def build_method(
    name: str,
    task: TaskSpec,
    llm: LLM | None = None,
    retriever: Retriever | None = None,
    config: MethodConfig | None = None,
    cache_dir: str | Path | None = None,
    **options: object,
) -> Method:
    """Instantiate the method registered under ``name`` (``options`` go to its constructor)."""
    cls = registry.load("methods", name)
    return cls(task=task, llm=llm, retriever=retriever, config=config or MethodConfig(), cache_dir=cache_dir, **options)
