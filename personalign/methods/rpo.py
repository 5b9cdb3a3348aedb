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
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from personalign.backends import get_llm, model_spec
from personalign.backends.base import LLM
from personalign.config import Settings
from personalign.errors import ConfigError
from personalign.extras import require_backend
from personalign.methods.base import Method, MethodConfig
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


# The method settings that shape the reflection prompt: a trained model is evaluated with the values it was trained with.
PROMPT_SETTINGS = ("item_max_words",)


def trained_prompt(reflection: str, config: MethodConfig) -> MethodConfig:
    """``config`` with the prompt settings a trained reflection model was trained with.

    A model trained by ``personalign train rpo`` (``<run>/<task>/<stage>/model``, or a GGUF exported beside
    it) has the training's ``method_config`` in the stage's ``manifest.json``. A setting left at its default
    takes the trained value (said on stderr); one set to another value is refused, so the evaluation prompt is
    the training prompt. Models without such a manifest (older runs, ``bundled``) keep ``config``.
    """
    kind, _, path = model_spec(reflection).partition(":")  # a path, or a spec naming one (llamacpp:/x.gguf)
    manifest = Path(path).expanduser().parent / "manifest.json"
    if kind not in ("llamacpp", "transformers") or not path or not manifest.is_file():
        return config
    try:
        trained = json.loads(manifest.read_text(encoding="utf-8"))["config"]["method_config"]
    except (OSError, ValueError, KeyError, TypeError):
        return config
    update = {name: trained[name] for name in PROMPT_SETTINGS if name in trained and trained[name] != getattr(config, name)}
    for name, value in update.items():
        if name in config.model_fields_set:
            raise ConfigError(f"reflection {reflection} was trained with method_config.{name}: {value} ({manifest}), "
                              f"but this run sets {getattr(config, name)}: leave it out or set {value}, so the "
                              "evaluation prompt is the training prompt")
        print(f"personalign: rpo: method_config.{name} {value}, as {reflection} was trained ({manifest})",
              file=sys.stderr)
    return config.model_copy(update=update) if update else config


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
            self.config = trained_prompt(o.reflection, self.config)
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
