"""Trajectory data for RPO: base answers, teacher rewriting trajectories, filters and statistics.

For every training question, the steps of the ``rpo`` method (``personalign.rpo.plan``): the black-box
base model answers the plain task prompt (A_base), retrieval uses q ⊕ A_base, and the reflection prompt
is built exactly as at evaluation. A teacher sees q, A_base, the top-1 history item and the gold answer
and writes ``<think>…</think><personalized>…</personalized>``. Consistency and brevity filters
decide what is kept. Stored as JSONL (one trajectory a line) plus ``stats.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personalign.backends.base import LLM
from personalign.config import MethodConfig
from personalign.engine import Engine, run_plan
from personalign.engine.predictions import PredictionLog
from personalign.engine.progress import RequestProgress
from personalign.retrievers.base import Retriever
from personalign.rpo.config import TrajectoryConfig
from personalign.rpo.filters import is_brief, is_consistent
from personalign.rpo.plan import ReflectionPrompt, reflection_input, reflection_prompt_plan
from personalign.rpo.prompts import format_reflection, parse_reflection, teacher_messages, user_summary
from personalign.rpo.template_teacher import (kept_input_words, prior_thinking, template_thinking,
                                               without_unseen_handles)
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, Example, GenParams, Request, Trace


@dataclass
class Trajectory:
    """One SFT example: the reflection prompt (no gold) and its target, with provenance."""

    id: str
    messages: list[dict[str, str]]
    target: str
    gold: str
    base_answer: str
    item_ids: list[str]
    teacher: str                      # "llm", "template" or "" when rejected
    accepted: bool
    reject_reason: str = ""
    teacher_outputs: list[str] = field(default_factory=list)


def make_trajectory(task: TaskSpec, example: Example, gold: str, answer: str, items: list[dict], teacher: LLM | None,
                    config: TrajectoryConfig, method: MethodConfig | None = None) -> Trajectory:
    """One trajectory for a given A_base and ranked ``items``, the prompt showing the first ``config.k`` with the
    method's ``item_max_words``, with a teacher answering directly (``generate_trajectories`` runs the base
    model and the retriever too, for many)."""
    shown = items[: config.k]
    prompt = ReflectionPrompt(answer, shown, reflection_input(task, example, example.profile, answer, shown,
                                                              (method or MethodConfig()).item_max_words), items)
    answer_ = run_plan(trajectory_plan(task, example, gold, prompt, teacher is not None, config),
                       {"teacher": teacher} if teacher else {})
    return answer_.trace.extra["trajectory"]


def trajectory_plan(task: TaskSpec, example: Example, gold: str, prompt: ReflectionPrompt, ask_teacher: bool,
                    config: TrajectoryConfig):
    """Ask the teacher (several tries), filter, and fall back to the template teacher when allowed.

    ``prompt`` is what the ``rpo`` method's steps built (``reflection_prompt_plan``): its reflection prompt is
    the SFT prompt; the teacher sees A_base and the top-1 item.

    A plan for the request engine: each try is one request to the ``teacher`` backend, and the plan
    returns an ``Answer`` whose trace holds the ``Trajectory`` (``trace.extra["trajectory"]``).
    ``ask_teacher=False`` skips the LLM teacher (reason "not tried").
    """
    answer, top = prompt.base_answer, prompt.ranked[0] if prompt.ranked else None
    target = sft_answer(task, example, gold, prompt, config)
    outputs, reason = [], "not tried"
    for attempt in range(config.teacher_samples if ask_teacher else 0):
        params = GenParams(max_tokens=config.teacher_max_tokens, temperature=config.teacher_temperature,
                           top_p=0.95, seed=config.seed + attempt)
        (completion,) = yield [Request(teacher_messages(task, example.input, answer, top, gold), params, "teacher",
                                       "teacher")]
        text = completion.text
        outputs.append(text)
        parsed = parse_reflection(text)
        if parsed is None:
            reason = "malformed"
        elif not is_consistent(task, parsed[1], gold, config.rouge_threshold):
            reason = "inconsistent"
        elif not is_brief(parsed[0], config.max_think_words):
            reason = "too long"
        else:
            return _as_answer(_accepted(example, gold, target, prompt, parsed[0], "llm", outputs))
    if config.template_fallback:
        query = task.query_text(example.input)
        thinking = prior_thinking(task, example.profile, top, target, query) if config.template_style == "prior" \
            else template_thinking(task, answer, top, target, query)
        row = _accepted(example, gold, target, prompt, thinking, "template", outputs)
        row.reject_reason = reason  # why the LLM teacher failed, kept for the statistics
        return _as_answer(row)
    return _as_answer(Trajectory(example.id, [], "", gold, answer, [], "", False, reason, outputs))


def _as_answer(row: Trajectory) -> Answer:
    trace = Trace(extra={"trajectory": row})
    return Answer(row.target, trace)


def sft_answer(task: TaskSpec, example: Example, gold: str, prompt: ReflectionPrompt, config: TrajectoryConfig) -> str:
    """The answer the SFT target ends with: the gold, minus (text tasks) handles, hashtags and URLs that the
    reflection prompt does not show (neither the input, A_base nor the user's items in it): those the model
    cannot infer, while a hashtag the user's shown history uses is their habit, and stays.

    With ``text_target: kept_input``, text tasks end with the input's words that the gold uses instead
    (the gold itself when it uses none): deciding which words to keep, not writing new ones.
    """
    if task.kind != "generation":
        return gold
    kept = kept_input_words(task.query_text(example.input), gold) if config.text_target == "kept_input" else ""
    if kept:
        return kept
    if not config.strip_unseen_handles:
        return gold
    return without_unseen_handles(gold, " ".join(str(message["content"]) for message in prompt.messages))


def _accepted(example: Example, gold: str, target: str, prompt: ReflectionPrompt, thinking: str, teacher: str,
              outputs: list[str]) -> Trajectory:
    """An accepted row: the method's reflection prompt and ``thinking`` + ``target`` (``sft_answer``)."""
    return Trajectory(example.id, prompt.messages, format_reflection(thinking, target), gold, prompt.base_answer,
                      [str(item.get("id", "")) for item in prompt.items], teacher, True, "", outputs)


def generate_trajectories(task: TaskSpec, examples: list[Example], golds: dict[str, str], base_llm: LLM,
                          teacher: LLM | None, retriever: Retriever, config: TrajectoryConfig, out_dir: Path,
                          method: MethodConfig | None = None, k_to: int = 6) -> dict[str, Any]:
    """Write ``trajectories.jsonl`` (resumable), ``rl_prompts.jsonl`` and ``stats.json``; return the stats.

    Each example runs the ``rpo`` method's steps (``reflection_prompt_plan``) with ``config.k`` items in the SFT
    prompt, and the ``method`` settings the ``rpo`` method is evaluated with (``item_max_words``, the sampling
    of A_base: so A_base and its cache entries are those of an evaluation); the RL prompts keep the top
    ``k_to`` items for the curriculum (``rl.k_to``).
    """
    method = method or MethodConfig()
    base_params = method.params(task.max_new_tokens)
    out_dir.mkdir(parents=True, exist_ok=True)
    backends = {"base": base_llm, **({"teacher": teacher} if teacher else {})}
    engine = Engine(backends)
    with PredictionLog(out_dir / "trajectories.jsonl") as log, PredictionLog(out_dir / "rl_prompts.jsonl") as prompts:
        todo = [(position, e) for position, e in enumerate(examples) if e.id not in log]
        progress = RequestProgress(len(examples), f"{task.name} trajectories", done_before=len(examples) - len(todo))

        def plan(position: int, example: Example):
            prompt = yield from reflection_prompt_plan(task, example, example.profile, retriever, config.k,
                                                       method.item_max_words, base_params, Trace(), pool=k_to)
            prompts.append({"id": example.id, "task_input": example.input, "base_answer": prompt.base_answer,
                            "items": prompt.ranked[:k_to], "gold": golds[example.id],
                            "summary": user_summary(task, example.profile)})
            asked = teacher is not None and (config.llm_teacher_examples is None or position < config.llm_teacher_examples)
            return (yield from trajectory_plan(task, example, golds[example.id], prompt, asked, config))

        with progress:
            for _, answer, _ in engine.run((plan(position, example) for position, example in todo), progress):
                log.append(asdict(answer.trace.extra["trajectory"]))
        rows = [log.rows[e.id] for e in examples if e.id in log]
    stats = trajectory_stats(rows)
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def trajectory_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Acceptance rates by teacher, rejection reasons and thinking length."""
    accepted = [r for r in rows if r["accepted"]]
    thinking = [len(parse_reflection(r["target"])[0].split()) for r in accepted if parse_reflection(r["target"])]
    reasons: dict[str, int] = {}
    for r in rows:
        if r["teacher"] != "llm":
            reasons[r["reject_reason"]] = reasons.get(r["reject_reason"], 0) + 1
    n = max(len(rows), 1)
    tried = len(rows) - reasons.get("not tried", 0)
    return {
        "examples": len(rows),
        "accepted": len(accepted),
        "accepted_llm_teacher": sum(r["teacher"] == "llm" for r in rows),
        "accepted_template_teacher": sum(r["teacher"] == "template" for r in rows),
        "llm_teacher_tried": tried,
        "llm_teacher_acceptance_rate": sum(r["teacher"] == "llm" for r in rows) / max(tried, 1),
        "llm_teacher_failures_by_reason": reasons,
        "mean_thinking_words": sum(thinking) / max(len(thinking), 1),
        "base_answer_equals_gold_rate": sum(r["base_answer"].strip() == r["gold"].strip() for r in rows) / n,
    }
