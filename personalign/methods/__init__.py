"""Personalization methods. Each file here is one method, named after the file (``cot_rag.py`` -> ``cot-rag``)."""

from __future__ import annotations

from pathlib import Path

from personalign import registry
from personalign.backends.base import LLM
from personalign.methods.base import Method, MethodConfig
from personalign.retrievers.base import Retriever
from personalign.tasks.spec import TaskSpec


def base_name(name: str) -> str:
    """The registered method name of a possibly labelled name (``rpo@sft`` -> ``rpo``)."""
    return name.split("@", 1)[0]


def build_method(
    name: str,
    task: TaskSpec,
    llm: LLM | None = None,
    retriever: Retriever | None = None,
    config: MethodConfig | None = None,
    cache_dir: str | Path | None = None,
    **options: object,
) -> Method:
    """Instantiate the method registered under ``name`` (``options`` go to its constructor).

    ``name`` may carry a label after ``@`` (``rpo@sft``) so one method can appear in a results table
    several times with different options; the label only names the row.
    """
    cls = registry.load("methods", base_name(name))
    return cls(task=task, llm=llm, retriever=retriever, config=config or MethodConfig(), cache_dir=cache_dir, **options)
