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

from personalign.backends import get_llm
from personalign.backends.base import LLM
from personalign.methods.base import Method
from personalign.rpo.prompts import reflection_messages, user_summary
from personalign.tasks.filters import finish, parse_reflection
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, GenParams, Messages, Request, Trace


def reflection_spec(reflection: str) -> str:
    """Turn a path or name into a backend spec: folders use transformers, ``.gguf`` files llama.cpp."""
    if reflection == "bundled":
        return "llamacpp"
    if ":" in reflection and not Path(reflection).exists():
        return reflection
    return f"llamacpp:{reflection}" if reflection.endswith(".gguf") else f"transformers:{reflection}"


def load_demos(path: str | Path, count: int) -> Messages:
    """Few-shot chat turns from the first ``count`` accepted trajectories."""
    turns: Messages = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("accepted") and len(turns) < 2 * count:
                turns += [row["messages"][-1], {"role": "assistant", "content": row["target"]}]
    return turns


class RPO(Method):
    """Generate with the base model, then rewrite with the reflection model; fall back to A_base."""

    def __init__(self, *args, reflection: str = "bundled", reflection_llm: LLM | None = None,
                 reflection_options: dict | None = None, demos: str | None = None, num_demos: int = 2,
                 reflection_max_tokens: int = 160, **kwargs):
        super().__init__(*args, **kwargs)
        cache = self.cache_dir / "llm.sqlite" if self.cache_dir else None
        self.reflection_llm = reflection_llm or get_llm(reflection_spec(reflection), cache_path=cache,
                                                        **(reflection_options or {}))
        self.demos = load_demos(demos, num_demos) if demos else []
        self.reflection_max_tokens = reflection_max_tokens

    final_stage = "reflect"  # the reflection's <personalized> segment is the answer

    def backends(self):
        return {"base": self.llm, "reflection": self.reflection_llm}

    @property
    def output_filter(self) -> str:
        return "rpo"

    def plan(self, example, profile):
        trace = Trace()
        base_raw = yield from self.ask(example.input, trace, stage="base")
        base = finish(self.task, base_raw)
        items = self.retrieve(example, profile, trace, base_answer=base)
        messages = self.demos + reflection_messages(self.task, example.input, base, items, self.config.item_max_words,
                                                    user_summary(self.task, profile))
        params = GenParams(max_tokens=self.reflection_max_tokens, temperature=0.0, seed=self.config.seed)
        raw = yield from self.request(Request(messages, params, stage="reflect", llm="reflection"), trace)
        trace.extra["base_answer"] = base
        return Answer(raw, trace, self.output_filter)


def reflected_answer(task: TaskSpec, reflection: str, base_answer: str) -> tuple[str, str, bool]:
    """``(final answer, thinking, fell back)``: the parsed ``<personalized>`` answer, or A_base if malformed."""
    parsed = parse_reflection(reflection)
    if parsed is None:
        return base_answer, "", True
    return finish(task, parsed[1]), parsed[0], False


PLUGIN = RPO
