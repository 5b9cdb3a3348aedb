"""Personalization methods. Each file here is one method, named after the file (``cot_rag.py`` -> ``cot-rag``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from personalign import registry
from personalign.backends.base import LLM
from personalign.config import Settings, validated
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


def method_options(name: str, options: Mapping[str, object], where: str | None = None, at: str = "") -> Settings:
    """The options of method ``name`` (``rpo@sft`` allowed) checked by its ``Options`` model before anything is built:
    an unknown or mistyped option is one ConfigError line naming the method (or ``where``, the file, and ``at``,
    the options' key path in it) and the option."""
    cls = registry.load("methods", base_name(name))
    return validated(cls.Options, options, where or f"method {name}", at)


def build_method(
    name: str,
    task: TaskSpec,
    llm: LLM | None = None,
    retriever: Retriever | None = None,
    config: MethodConfig | None = None,
    cache_dir: str | Path | None = None,
    **options: object,
) -> Method:
    """Instantiate the method registered under ``name``; ``options`` are checked by its ``Options`` model first.

    ``name`` may carry a label after ``@`` (``rpo@sft``) so one method can appear in a results table
    several times with different options; the label only names the row.
    """
    cls = registry.load("methods", base_name(name))
    checked = method_options(name, options)
    return cls(task=task, llm=llm, retriever=retriever, config=config or MethodConfig(), cache_dir=cache_dir,
               options=checked)
