"""Score-time filters: turn a method's raw completion into the prediction that metrics see.

A method records raw LLM text and names its filter (``Answer.output_filter``); parsing runs here,
after generation, as lm-evaluation-harness's ``filter_list`` does. So ``personalign rescore``
re-parses a run with zero LLM calls.

Two scoring modes:

- ``lenient`` (default): the structural extraction of the filter, then the task parser
  (``parse_label`` / ``parse_rating`` / ``parse_text``), which reads the answer as a reader would:
  "Tag: comedy" -> "comedy", "1. 5 is the score for ..." -> "5", "1. 1\n2. 2" -> unparsable.
- ``official``: the same structural extraction, then ``strip()`` only, as LaMP's
  ``eval/evaluation.py`` does: "Tag: comedy" is wrong there, and so is "4 stars".

Filters: ``plain`` (the whole completion), ``cot`` (the text after the last "Answer:"),
``rpo`` (the ``<personalized>`` segment, falling back to the base answer when malformed), and
``exact`` (non-LLM references: the answer as it is, stripped, in both modes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from personalign.errors import ConfigError
from personalign.tasks.parsing import final_answer_segment, parse_output
from personalign.tasks.spec import TaskSpec

MODES = ("lenient", "official")
FILTERS = ("plain", "cot", "rpo", "exact")
_TAGS = re.compile(r"<think>(.*?)</think>\s*<personalized>(.*?)</personalized>", re.DOTALL | re.IGNORECASE)


def parse_reflection(text: str) -> tuple[str, str] | None:
    """``(thinking, answer)`` from a well-formed reflection output, else None (the caller falls back)."""
    match = _TAGS.search(text)
    if not match or not match.group(2).strip():
        return None
    return match.group(1).strip(), match.group(2).strip()


@dataclass(frozen=True)
class Filtered:
    """The prediction a metric sees, whether the filter fell back, and any thinking it stripped."""

    prediction: str
    fallback: bool = False
    thinking: str = ""


def finish(task: TaskSpec, segment: str, mode: str = "lenient", source: str | None = None) -> str:
    """The last step of every filter: the task parser (lenient) or ``strip()`` (official).

    ``source`` is the prompt text the model saw (see ``prompt_text``): quotations copied from it are echoes.
    """
    if mode == "official":
        return segment.strip()
    if mode != "lenient":
        raise ConfigError(f"unknown scoring mode '{mode}'; choose from: {', '.join(MODES)}")
    return parse_output(task, segment, source)  # the stripped text when unparsable ("" for a lone lead-in)


def prompt_text(trace: dict[str, Any] | None) -> str | None:
    """Every message the model saw in a trace dict, joined (None when the trace holds no prompts)."""
    prompts = trace.get("prompts") if isinstance(trace, dict) else None
    if not isinstance(prompts, list):
        return None
    texts = [str(m.get("content", "")) for messages in prompts if isinstance(messages, list)
             for m in messages if isinstance(m, dict)]
    return "\n".join(texts) if texts else None


def stage_output(trace: dict[str, Any], stage: str) -> str | None:
    """The raw output of the first call of ``stage`` in a trace dict, or None."""
    for name, raw in zip(trace.get("stages") or [], trace.get("raw_outputs") or []):
        if name == stage:
            return raw
    return None


def apply_filter(task: TaskSpec, name: str, raw: str, trace: dict[str, Any] | None = None,
                 mode: str = "lenient") -> Filtered:
    """Run filter ``name`` on a raw completion (``trace`` supplies the base answer for ``rpo``)."""
    source = prompt_text(trace) if mode == "lenient" and name != "exact" else None
    if name == "plain":
        return Filtered(finish(task, raw, mode, source))
    if name == "exact":
        return Filtered(raw.strip())
    if name == "cot":
        return Filtered(finish(task, final_answer_segment(raw), mode, source))
    if name == "rpo":
        parsed = parse_reflection(raw)
        if parsed is None:
            base = stage_output(trace or {}, "base") or ""
            return Filtered(finish(task, base, mode, source), fallback=True)
        return Filtered(finish(task, parsed[1], mode, source), thinking=parsed[0])
    raise ConfigError(f"unknown output filter '{name}'; choose from: {', '.join(FILTERS)}")
