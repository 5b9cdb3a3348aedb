"""``personalign eval``: run methods over LaMP-format splits."""

from __future__ import annotations

import argparse
import sys

from personalign.cli.common import SPLIT_HELP, add_model_options, csv_list
from personalign.config import key_values, load_settings, read_yaml
from personalign.errors import ConfigError
from personalign.eval.settings import EvalSettings
from personalign.methods import base_name, method_options


def _for_task(options: dict, task_name: str) -> dict:
    """Method options with ``{task}`` in string values replaced, so one eval config serves every task."""
    return {method: {key: value.replace("{task}", task_name) if isinstance(value, str) else value
                     for key, value in values.items()} for method, values in options.items()}


def checked_options(settings: EvalSettings, where: str) -> EvalSettings:
    """``settings`` once every method's options are checked by that method's model (before anything runs)."""
    for name, options in settings.method_options.items():
        method_options(name, options, where, f"method_options.{name}")
    return settings


def read_eval_config(path: str) -> EvalSettings:
    """An eval ``--config`` file alone (``inherit:`` allowed), typed and checked."""
    return checked_options(load_settings(EvalSettings, path), path)


def refuse_two_seeds(path: str) -> None:
    """One file may not give ``seed`` and ``method_config.seed`` two values (the run has one seed; ``--seed`` wins
    over the file as any flag does)."""
    values = read_yaml(path)
    inner = values.get("method_config")
    if "seed" in values and isinstance(inner, dict) and "seed" in inner and inner["seed"] != values["seed"]:
        raise ConfigError(f"{path}: seed: {values['seed']!r} but method_config.seed: {inner['seed']!r}; "
                          "a run has one seed: give it once")


def eval_settings(args: argparse.Namespace) -> EvalSettings:
    """The run's settings: command-line flags over the ``--config`` file over the defaults (one rule,
    :func:`personalign.config.precedence`); a bad value is one line naming its flag, or its file and key."""
    methods = csv_list(args.methods or "zero-shot,rag")
    reflection = {name: {"reflection": args.reflection} for name in methods if base_name(name) == "rpo"}
    if args.reflection and not reflection:
        raise ConfigError(f"--reflection: no rpo method in --methods {','.join(methods)}; it sets RPO's reflection model")
    cli = {"retriever": args.retriever, "llm": args.llm, "llm_options": key_values(args.llm_options, "--llm-options"),
           "limit": args.limit, "seed": args.seed, "concurrency": args.concurrency, "workers": args.workers,
           "profile_controls": csv_list(args.profile_control) if args.profile_control is not None else None,
           "method_config": {"k": args.k}, "method_options": reflection if args.reflection else None}
    if args.config:
        refuse_two_seeds(args.config)
    settings = load_settings(EvalSettings, args.config, cli, flags={"profile_controls": "--profile-control"})
    return checked_options(settings, args.config or "command line")


def cmd_eval(args: argparse.Namespace) -> int:
    from personalign.eval.report import (
        MIN_QUESTIONS_FOR_TESTS,
        cross_task_table,
        questions,
        too_few,
        too_few_note,
        values_table,
    )
    from personalign.eval.runner import EvalConfig, run_eval
    from personalign.tasks import get_task

    settings = eval_settings(args)
    methods = csv_list(args.methods or "zero-shot,rag")
    results_by_task, tasks, skipped = {}, {}, {}
    for task_name in csv_list(args.task):
        config = EvalConfig(**{**dict(settings), "method_options": _for_task(settings.method_options, task_name)},
                            data=args.data, task=task_name, methods=methods, split=args.split, part=args.part,
                            out=args.out, cache_dir=args.cache_dir)
        results_by_task[task_name] = run_eval(config, on_skip=lambda task, names, reason: skipped.update(
            {name: [*skipped.get(name, []), task] for name in names}))
        tasks[task_name] = get_task(task_name)
        if questions(results_by_task[task_name]) < MIN_QUESTIONS_FOR_TESTS:
            print(f"{task_name}: predictions, metrics.json, results.md and manifest.json in {config.run_dir}")
            continue
        print((config.run_dir / "results.md").read_text())
        print(f"predictions, metrics.json and manifest.json in {config.run_dir}\n")
    if skipped:  # one line for every task, not one per task and control
        on_tasks = ", ".join(dict.fromkeys(t for ts in skipped.values() for t in ts))
        print(f"personalign: skipped {', '.join(skipped)} on {on_tasks}: "
              f"they learn from a train split, and {args.data} has none for the {args.split} split", file=sys.stderr)
    small = {t: r for t, r in results_by_task.items() if too_few(r)}
    if small:
        print(f"\n{too_few_note(small)}\n")
        print(values_table(small, tasks))
    if len(results_by_task) > 1 and len(small) < len(results_by_task):
        print(cross_task_table(results_by_task, tasks, ("s/ex",)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate methods on a LaMP-format split")
    ev.add_argument("--data", required=True, help="folder with LaMP_N/<split>/<part>_questions.json")
    ev.add_argument("--task", required=True, help="task name(s), comma separated, e.g. LaMP_3 or LaMP_2,LaMP_3")
    ev.add_argument("--split", default="user", choices=["user", "time"], help=SPLIT_HELP)
    ev.add_argument("--part", default="dev", choices=["train", "dev", "test", "fit", "val"],
                    help="dev (default), test, train; val and fit: a fixed 20%% / 80%% split of the train users")
    ev.add_argument("--methods", help="comma-separated method names (default zero-shot,rag; see `personalign list`)")
    ev.add_argument("--limit", type=int, help="evaluate a seeded sample of this many questions")
    ev.add_argument("--out", default="runs", help="where predictions, metrics and manifests go")
    ev.add_argument("--config", help="YAML with `method_config:` (k, item_max_words, ...), `method_options:` (by method "
                                     "name) and any of " + ", ".join(k for k in EvalSettings.model_fields
                                                                     if not k.startswith("method_"))
                                     + "; command-line flags win over it")
    ev.add_argument("--concurrency", type=int, help="requests in flight for HTTP backends (default 8)")
    ev.add_argument("--workers", type=int, help="processes for in-process backends, e.g. llamacpp (default 1)")
    ev.add_argument("--profile-control", help="own (default), other-user (another user's history, seeded), "
                                              "none (empty history); comma-separated to run several")
    add_model_options(ev)
    ev.set_defaults(func=cmd_eval)
