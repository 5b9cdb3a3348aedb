"""``personalign personalize``: answer one query for one user and print the trace."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from personalign import registry
from personalign.cli.common import add_model_options
from personalign.config import key_values, load_settings
from personalign.errors import ConfigError
from personalign.methods import base_name, method_options
from personalign.methods.base import MethodConfig

BRIEF_ITEM_WORDS = 14  # --brief shows each retrieved history item cut to this many words per field


def cmd_personalize(args: argparse.Namespace) -> int:
    from personalign.backends import get_llm
    from personalign.history import read_history
    from personalign.methods import build_method
    from personalign.retrievers import get_retriever
    from personalign.tasks import get_task, infer_task
    from personalign.tasks.filters import apply_filter
    from personalign.types import Example

    profile = read_history(args.history)
    task = get_task(args.task) if args.task else infer_task(profile, args.query)
    profile = read_history(args.history, task)  # checked with the task's field rules, bad items named by line
    cache = Path(args.cache_dir)
    method_cls = registry.load("methods", base_name(args.method))
    options = key_values(args.method_options, "--method-options")
    if args.reflection and base_name(args.method) != "rpo":
        raise ConfigError(f"--reflection: --method is {args.method}, not rpo; it sets RPO's reflection model")
    if args.reflection:
        options["reflection"] = args.reflection
    settings = load_settings(MethodConfig, None, {"k": args.k, "seed": args.seed})
    method_options(args.method, options, "--method-options")  # checked before any model loads
    llm = get_llm(args.llm or "llamacpp", cache_path=cache / "llm.sqlite", **key_values(args.llm_options, "--llm-options")) \
        if method_cls.needs_llm else None
    method = build_method(args.method, task, llm=llm, retriever=get_retriever(args.retriever or "bm25", seed=settings.seed,
                                                                           cache_dir=cache),
                          config=settings, cache_dir=cache, **options)
    example = Example(id="query", input=task.format_input(args.query), profile=profile)
    answer = method.answer(example, profile)
    final = apply_filter(task, answer.output_filter, answer.raw, answer.trace.to_dict())
    trace = answer.trace
    if args.json:
        print(json.dumps({"task": task.name, "answer": final.prediction, "fallback": final.fallback, "raw": answer.raw,
                          "trace": trace.to_dict()}, indent=2, ensure_ascii=False))
        return 0
    if args.brief:
        from personalign.tasks.filters import parse_reflection

        reflection = parse_reflection(answer.raw)
        if "base_answer" in trace.extra:
            print(f"A_base:    {trace.extra['base_answer']}")
        by_id = {str(item.get("id", "")): item for item in profile}
        for position, item_id in enumerate(trace.retrieved_ids):  # the history the answer was personalized with
            item = by_id.get(item_id)
            shown = " ".join(task.render_item(item, BRIEF_ITEM_WORDS).split()) if item else item_id
            print(f"{'retrieved:' if position == 0 else '':<11}{shown}")
        if reflection:
            print(f"thinking:  {reflection[0]}")
        print(f"answer:    {final.prediction}" + ("   (malformed reflection: fell back to A_base)" if final.fallback else ""))
        return 0
    print(f"task: {task.name}   method: {args.method}   history items: {len(profile)}")
    print(f"retrieved ids: {', '.join(trace.retrieved_ids) or '-'}")
    print(f"tokens: prompt {trace.prompt_tokens}, completion {trace.completion_tokens} ({trace.cached_calls} cached calls)")
    for key, value in trace.extra.items():
        print(readable(key, value))
    for stage, prompt, raw in zip(trace.stages, trace.prompts, trace.raw_outputs):
        print(f"--- {stage} prompt ---\n" + prompt[-1]["content"] + "\n--- raw output ---\n" + raw)
    print(f"\nanswer: {final.prediction}" + ("   (fell back to the base answer)" if final.fallback else ""))
    return 0


def readable(key: str, value: object) -> str:
    """One trace field for people: a list one item per line, a mapping as ``name=value`` pairs."""
    if isinstance(value, list) and value:
        return f"{key}:\n" + "\n".join(f"  - {str(item).removeprefix('- ')}" for item in value)
    if isinstance(value, dict):
        return f"{key}: " + ", ".join(f"{name}={round(v, 2) if isinstance(v, float) else v}" for name, v in value.items())
    return f"{key}: {value}"


def register(sub: argparse._SubParsersAction) -> None:
    pz = sub.add_parser("personalize", help="answer one query for one user and print the trace")
    pz.add_argument("query", help="the task input, or raw text that the task's template wraps")
    pz.add_argument("--history", required=True, help="JSON list of profile items (or a LaMP question, or JSONL)")
    pz.add_argument("--method", default="rag", help="the method that answers (`personalign list` shows them; "
                    "references need no LLM)")
    pz.add_argument("--task", help="task name; inferred from the history's fields when omitted")
    pz.add_argument("--json", action="store_true", help="print the answer and trace as JSON")
    pz.add_argument("--method-options", help="the method's own options as key=value,... (e.g. hydra: scorer=PATH; "
                    "rpm: max_items=8)")
    pz.add_argument("--brief", action="store_true",
                    help="print only the base answer, the retrieved history items, the thinking and the answer")
    add_model_options(pz)
    pz.set_defaults(func=cmd_personalize)
