"""Personalization methods. Each file here is one method, named after the file (``cot_rag.py`` -> ``cot-rag``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from personalign import registry
from personalign.backends.base import LLM
from personalign.errors import ConfigError
from personalign.methods.base import Method, MethodConfig
from personalign.retrievers.base import Retriever
from personalign.tasks.spec import TaskSpec


REFERENCES = ("population-majority", "user-majority", "user-mean", "user-median", "echo", "lead", "nearest-output",
              "user-prior", "tfidf-linear", "tfidf-user")


def expand_methods(names: list[str], task: TaskSpec) -> list[str]:
    """Method names with the ``references`` group expanded; references that do not fit the task left out."""
    out: list[str] = []
    for name in names:
        for one in (REFERENCES if name == "references" else (name,)):
            if registry.load("methods", base_name(one)).applies_to(task) and one not in out:
                out.append(one)
            elif name == one and not registry.load("methods", base_name(one)).applies_to(task):
                print(f"personalign: {one} does not apply to {task.name} ({task.kind}); skipped", file=sys.stderr)
    return out


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
    try:
        return cls(task=task, llm=llm, retriever=retriever, config=config or MethodConfig(), cache_dir=cache_dir, **options)
    except TypeError as exc:
        match = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
        if match is None:
            raise
        raise ConfigError(f"method {name}: unknown option '{match.group(1)}'") from None
