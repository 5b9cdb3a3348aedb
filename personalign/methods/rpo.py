"""RPO inference: base answer (black box) -> retrieval with q ⊕ A_base -> reflection model rewrites.

Options (``method_options`` in an eval config, or ``--reflection`` on the CLI):
``reflection`` — the reflection model: a trained folder (transformers), a ``.gguf`` file
(llama.cpp), a backend spec such as ``llamacpp:/x.gguf``, or ``bundled`` (untrained SmolLM2);
``demos`` — a ``trajectories.jsonl`` whose first ``num_demos`` accepted trajectories are shown as
few-shot examples (the "RAG w/ ICL" ablation); ``reflection_options`` (backend options, e.g.
``{quant: q8_0, n_threads: 1}``); ``reflection_max_tokens``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from personalign.backends import get_llm, model_spec
from personalign.backends.base import LLM
from personalign.config import Settings
from personalign.extras import require_backend
from personalign.methods.base import Method, trained_prompt
from personalign.rpo.plan import reflection_prompt_plan
from personalign.tasks.filters import finish, parse_reflection
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, GenParams, Messages, Request, Trace


def load_demos(path: str | Path, count: int) -> Messages:
    """Few-shot chat turns from the first ``count`` accepted trajectories."""
    turns: Messages = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("accepted") and len(turns) < 2 * count:
                turns += [row["messages"][-1], {"role": "assistant", "content": row["target"]}]
    return turns


# The settings that shape the reflection prompt: a trained model is evaluated with the values it was trained with.
PROMPT_SETTINGS = ("method_config.item_max_words",)


class RPOOptions(Settings):
    """RPO's own options (``method_options`` of an eval or service config; ``--reflection`` on the CLI)."""

    reflection: str = "bundled"               # trained folder, .gguf, backend spec, or "bundled"
    reflection_llm: LLM | None = None         # a ready backend instead (Python callers and tests)
    reflection_options: dict[str, Any] = {}   # backend options of the reflection model
    demos: str | None = None                  # a trajectories.jsonl: its first num_demos accepted ones as few-shot
    num_demos: int = Field(2, ge=0)
    reflection_max_tokens: int = Field(160, ge=1)


class RPO(Method):
    """Generate with the base model, then rewrite with the reflection model; fall back to A_base."""

    Options = RPOOptions

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        o = self.options
        if o.reflection_llm is None:
            self.config, self.options = trained_prompt("reflection", o.reflection, self.config, o, PROMPT_SETTINGS)
            require_backend(model_spec(o.reflection), "RPO's reflection model")
        cache = self.cache_dir / "llm.sqlite" if self.cache_dir else None
        self.reflection_llm = o.reflection_llm or get_llm(model_spec(o.reflection), cache_path=cache,
                                                          **o.reflection_options)
        self.demos = load_demos(o.demos, o.num_demos) if o.demos else []
        self.reflection_max_tokens = o.reflection_max_tokens

    final_stage = "reflect"  # the reflection's <personalized> segment is the answer

    def backends(self):
        return {"base": self.llm, "reflection": self.reflection_llm}

    @property
    def output_filter(self) -> str:
        return "rpo"

    def plan(self, example, profile):
        trace = Trace()
        prompt = yield from reflection_prompt_plan(self.task, example, profile, self.retriever, self.config.k,
                                                   self.config.item_max_words, self.params(), trace)
        params = GenParams(max_tokens=self.reflection_max_tokens, temperature=0.0, seed=self.config.seed)
        request = Request(self.demos + prompt.messages, params, stage="reflect", llm="reflection")
        raw = yield from self.request(request, trace)
        trace.extra["base_answer"] = prompt.base_answer
        return Answer(raw, trace, self.output_filter)


def reflected_answer(task: TaskSpec, reflection: str, base_answer: str) -> tuple[str, str, bool]:
    """``(final answer, thinking, fell back)``: the parsed ``<personalized>`` answer, or A_base if malformed."""
    parsed = parse_reflection(reflection)
    if parsed is None:
        return base_answer, "", True
    return finish(task, parsed[1]), parsed[0], False


PLUGIN = RPO
