"""The one interface every method implements: an example and a profile in, an answer with its trace out."""

from __future__ import annotations

import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Generator
from pathlib import Path
from typing import Any, ClassVar, Sequence, TypeVar

from personalign.backends import model_spec
from personalign.backends.base import LLM
from personalign.config import MethodConfig, Settings
from personalign.engine import run_plan
from personalign.errors import ConfigError
from personalign.retrievers.base import Retriever, build_query
from personalign.tasks.filters import Filtered, apply_filter
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, Completion, Example, GenParams, ProfileItem, Request, Trace

# A method's plan: a generator that yields batches of LLM requests, receives their completions in
# the same order, and returns the Answer. Methods never call an LLM themselves; the engine does.
Plan = Generator[list[Request], list[Completion], Answer]

COT_INSTRUCTION = (
    "\nFirst think step by step in at most three short sentences about what this user would answer. "
    "Then write the final answer on a new line that starts with 'Answer:'."
)


class NoOptions(Settings):
    """The options of a method that takes none."""


OptionsT = TypeVar("OptionsT", bound=Settings)


def trained_prompt(role: str, model: str, config: MethodConfig, options: OptionsT,
                   settings: Sequence[str]) -> tuple[MethodConfig, OptionsT]:
    """``config`` and ``options`` with the prompt ``settings`` a trained ``model`` (RPO's reflection model, POPI's
    summarizer; ``role`` names it in messages) was trained with.

    A model trained by ``personalign train`` (``<run>/<task>/<stage>/model``, a GGUF exported beside it, or a
    backend spec naming either) has its training config in the stage's ``manifest.json``. A setting is
    ``method_config.NAME`` (recorded under the training's ``method_config``) or ``method_options.NAME`` (an option
    of the method, recorded at the top of the training config). One left at its default takes the trained value
    (said on stderr); one set to another value is refused, so the evaluation prompt is the training prompt.
    Models without such a manifest (API models, ``bundled``, older runs) keep what is given.
    """
    kind, _, path = model_spec(model).partition(":")  # a path, or a spec naming one (llamacpp:/x.gguf)
    manifest = Path(path).expanduser().parent / "manifest.json"
    if kind not in ("llamacpp", "transformers") or not path or not manifest.is_file():
        return config, options
    try:
        trained = json.loads(manifest.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return config, options
    holders: dict[str, Settings] = {"method_config": config, "method_options": options}
    updates: dict[str, dict[str, Any]] = {"method_config": {}, "method_options": {}}
    for setting in settings:
        section, _, name = setting.partition(".")
        recorded = trained.get("method_config") if section == "method_config" and isinstance(trained, dict) else trained
        if not isinstance(recorded, dict) or name not in recorded or recorded[name] == getattr(holders[section], name):
            continue
        value = recorded[name]
        if name in holders[section].model_fields_set:
            raise ConfigError(f"{role} {model} was trained with {setting}: {value} ({manifest}), but this run sets "
                              f"{getattr(holders[section], name)}: leave it out or set {value}, so the evaluation "
                              "prompt is the training prompt")
        print(f"personalign: {setting} {value}, as {role} {model} was trained ({manifest})", file=sys.stderr)
        updates[section][name] = value
    return (config.model_copy(update=updates["method_config"]) if updates["method_config"] else config,
            options.model_copy(update=updates["method_options"]) if updates["method_options"] else options)


class Method(ABC):
    """Base class: holds the task, LLM, retriever and config, and offers prompt and request helpers.

    Subclasses implement ``plan``: a generator that yields the LLM requests of each stage. The
    engine (``personalign.engine``) runs many plans at once and batches their requests;
    ``answer`` runs one plan on its own.
    """

    needs_llm: bool = True
    needs_train: bool = False  # references fitted on the train split (population majority)
    ceiling: bool = False  # knows the true answers (synthetic data's oracle): shown apart, never the best reference
    cot: bool = False
    # Per-user data a method can take ready-made in ``Example.derived[derived_key]`` (PAG's and POPI's
    # summaries, RPM's user model). Such a method also has ``derived_items`` (how many of the newest
    # history items it reads) and ``derive(profile, previous, trace)``, a plan that returns the data as
    # text (``previous``: the last version, for an incremental update); the service builds it ahead.
    derived_key: str | None = None
    # The stage of the request whose completion is the answer (the service streams it and gives it the
    # client's output options); None: no single final request (the answer is chosen among several).
    final_stage: str | None = "answer"
    # The method's own options (``method_options`` in a config), a Settings model checked before construction.
    Options: ClassVar[type[Settings]] = NoOptions

    def __init__(
        self,
        task: TaskSpec,
        llm: LLM | None = None,
        retriever: Retriever | None = None,
        config: MethodConfig | None = None,
        cache_dir: str | Path | None = None,
        options: Settings | None = None,
    ):
        if self.needs_llm and llm is None:
            raise ConfigError(f"method {type(self).__name__} needs an LLM backend")
        self.task, self.llm, self.retriever = task, llm, retriever
        self.config = config or MethodConfig()
        self.options = options if isinstance(options, self.Options) else self.Options()
        self.cache_dir = Path(cache_dir) if cache_dir else None

    @classmethod
    def applies_to(cls, task: TaskSpec) -> bool:
        """Whether this method makes sense for ``task`` (references are kind-specific)."""
        return True

    @property
    def output_filter(self) -> str:
        """The score-time filter for this method's raw answers (``personalign.tasks.filters``)."""
        return "cot" if self.cot else "plain"

    @abstractmethod
    def plan(self, example: Example, profile: Sequence[ProfileItem]) -> Plan:
        """Answer ``example`` for the user whose history is ``profile``, yielding LLM requests."""

    def answer(self, example: Example, profile: Sequence[ProfileItem]) -> Answer:
        """Run this method's plan for one example, one request batch after another."""
        return run_plan(self.plan(example, profile), self.backends())

    def final(self, answer: Answer, mode: str = "lenient") -> Filtered:
        """The prediction a metric sees for ``answer`` (the score-time filter, run now)."""
        return apply_filter(self.task, answer.output_filter, answer.raw, answer.trace.to_dict(), mode)

    def answer_text(self, example: Example, profile: Sequence[ProfileItem]) -> str:
        """The parsed answer for one example (``answer`` then ``final``)."""
        return self.final(self.answer(example, profile)).prediction

    def backends(self) -> dict[str, Any]:
        """The LLMs a plan's requests name (``Request.llm``)."""
        return {"base": self.llm} if self.llm is not None else {}

    def identity(self) -> dict[str, Any]:
        """What decides this method's results beyond its config: the identities of its models."""
        return {name: llm.identity() for name, llm in self.backends().items()}

    def fit(self, examples: Sequence[Example], golds: dict[str, str]) -> None:
        """Learn from the train split (only methods with ``needs_train``)."""

    def use_data(self, data_dir: str | Path) -> None:
        """Read what an evaluated data folder holds beside its splits (only ``oracle``: the synthetic rules)."""

    def params(self, max_tokens: int | None = None, cot: bool | None = None) -> GenParams:
        return self.config.params(self.task.max_new_tokens, self.cot if cot is None else cot, max_tokens)

    def ask(self, prompt: str, trace: Trace, max_tokens: int | None = None, stage: str = "answer",
            cot: bool | None = None) -> Generator[list[Request], list[Completion], str]:
        """Request one user prompt (``raw = yield from self.ask(...)``); record the call in ``trace``."""
        cot = self.cot if cot is None else cot
        messages = [{"role": "user", "content": prompt + (COT_INSTRUCTION if cot else "")}]
        return (yield from self.request(Request(messages, self.params(max_tokens, cot), stage), trace))

    def request(self, request: Request, trace: Trace) -> Generator[list[Request], list[Completion], str]:
        """Yield one request, record its completion in ``trace`` and return the raw text."""
        (completion,) = yield [request]
        trace.record_call(request.messages, completion, request.stage)
        return completion.text

    def retrieve(self, example: Example, profile: Sequence[ProfileItem], trace: Trace, k: int | None = None,
                 base_answer: str | None = None) -> list[ProfileItem]:
        """Top-k profile items for the example's query (LaMP query, optionally ⊕ a base answer)."""
        if self.retriever is None:
            raise ConfigError(f"method {type(self).__name__} needs a retriever")
        items = self.retriever.top_k(build_query(self.task, example.input, base_answer), profile, self.task,
                                     self.config.k if k is None else k)
        trace.retrieved_ids.extend(str(item.get("id", "")) for item in items)
        return items

    def with_items(self, example: Example, items: Sequence[ProfileItem]) -> str:
        """The task input with rendered profile items in front of it."""
        rendered = [self.task.render_item(item, self.config.item_max_words) for item in items]
        return self.task.with_context(example.input, rendered)
