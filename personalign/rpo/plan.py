"""RPO's steps up to the reflection prompt: base answer (black box) -> retrieve with q ⊕ A_base -> prompt.

The ``rpo`` method (``personalign.methods.rpo``) and trajectory generation (``personalign.rpo.trajectories``)
both run :func:`reflection_prompt_plan`, so the reflection model is trained on the very prompt it is
evaluated with (same base request, same query, same items, same rendering).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Sequence

from personalign.errors import ConfigError
from personalign.retrievers.base import Retriever, build_query
from personalign.rpo.prompts import reflection_messages, user_summary
from personalign.tasks.filters import finish
from personalign.tasks.spec import TaskSpec
from personalign.types import Completion, Example, GenParams, Messages, ProfileItem, Request, Trace


@dataclass
class ReflectionPrompt:
    """What the steps found: A_base, the items the prompt shows, the reflection prompt, and the ranked pool."""

    base_answer: str
    items: list[ProfileItem]      # the k items shown, best first
    messages: Messages
    ranked: list[ProfileItem]     # the top max(k, pool) items (``items`` is their prefix)


def base_request(task_input: str, params: GenParams) -> Request:
    """The black-box base model's request: the plain task prompt (its parsed answer is A_base)."""
    return Request([{"role": "user", "content": task_input}], params, "base")


def reflection_input(task: TaskSpec, example: Example, profile: Sequence[ProfileItem], base_answer: str,
                     items: Sequence[ProfileItem], item_max_words: int | None) -> Messages:
    """The reflection prompt for ``example`` given A_base and the items to show (with the user's statistics)."""
    return reflection_messages(task, example.input, base_answer, list(items), item_max_words,
                               user_summary(task, profile))


def reflection_prompt_plan(task: TaskSpec, example: Example, profile: Sequence[ProfileItem],
                           retriever: Retriever | None, k: int, item_max_words: int | None, base_params: GenParams,
                           trace: Trace, pool: int = 0) -> Generator[list[Request], list[Completion], ReflectionPrompt]:
    """Ask the base model (A_base), retrieve the top ``max(k, pool)`` history items for q ⊕ A_base and build the
    reflection prompt from the first ``k``; the call and the shown items are recorded in ``trace``.

    ``pool`` keeps more ranked items than the prompt shows (RL prompts take up to the curriculum's ``k_to``);
    a retriever's top-k is a prefix of its ranking, so the shown items do not depend on it.
    """
    if retriever is None:
        raise ConfigError("RPO needs a retriever")
    request = base_request(example.input, base_params)
    (completion,) = yield [request]
    trace.record_call(request.messages, completion, request.stage)
    base = finish(task, completion.text)
    ranked = retriever.top_k(build_query(task, example.input, base), profile, task, max(k, pool))
    shown = ranked[:k]
    trace.retrieved_ids.extend(str(item.get("id", "")) for item in shown)
    return ReflectionPrompt(base, shown, reflection_input(task, example, profile, base, shown, item_max_words), ranked)
