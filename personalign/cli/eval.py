"""``personalign eval``: run methods over LaMP-format splits."""

from __future__ import annotations

import argparse
import sys

from personalign.cli.common import (
    SPLIT_HELP,
    add_model_options,
    csv_list,
    llm_options,
    method_config,
)
from personalign.config import read_yaml
from personalign.errors import ConfigError
from personalign.methods import base_name

EVAL_FILE_KEYS = ("method", "method_options", "retriever", "llm", "llm_options", "limit", "seed", "concurrency",
                  "workers", "profile_control")

def _for_task(options: dict, task_name: str) -> dict:
    """Method options with ``{task}`` in string values replaced, so one eval config serves every task."""
    return {method: {key: value.replace("{task}", task_name) if isinstance(value, str) else value
                     for key, value in values.items()} for method, values in options.items()}

def read_eval_config(path: str | None) -> dict:
    """The YAML of ``--config`` (``inherit:`` allowed): only known top-level keys, each checked; a bad file is one line."""
    if not path:
        return {}
    try:
        loaded = read_yaml(path)
    except ConfigError as exc:
        raise ConfigError(f"--config {exc}") from None
    unknown = sorted(set(loaded) - set(EVAL_FILE_KEYS))
    if unknown:
        raise ConfigError(f"--config {path}: unknown key(s) {unknown}; known: {', '.join(EVAL_FILE_KEYS)}")
    options = loaded.get("method_options") or {}
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ConfigError(f"--config {path}: method_options must map method names to mappings of options")
    return loaded

def _pick(cli_value, file_config: dict, key: str, default):
    """Explicit command-line value, else the config file's, else the default."""
    return cli_value if cli_value is not None else file_config.get(key, default)

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

    file_config = read_eval_config(args.config)
    method_fields = dict(file_config.get("method") or {})
    seed = _pick(args.seed, file_config, "seed", method_fields.get("seed", 0))
    method_fields["seed"] = seed
    if args.k is not None:
        method_fields["k"] = args.k
    settings = method_config(method_fields, f"--config {args.config} method" if args.config else "--k")
    method_options = dict(file_config.get("method_options") or {})
    methods = csv_list(args.methods or "zero-shot,rag")
    if args.reflection:
        for name in methods:
            if base_name(name) == "rpo":
                method_options[name] = {**method_options.get(name, {}), "reflection": args.reflection}
    backend_options = {**(file_config.get("llm_options") or {}), **llm_options(args.llm_options)}
    controls = csv_list(args.profile_control) if args.profile_control else csv_list(str(file_config.get("profile_control", "own")))
    results_by_task, tasks, skipped = {}, {}, {}
    for task_name in csv_list(args.task):
        config = EvalConfig(
            data=args.data, task=task_name, methods=methods, split=args.split, part=args.part,
            retriever=_pick(args.retriever, file_config, "retriever", "bm25"), llm=_pick(args.llm, file_config, "llm", "llamacpp"),
            limit=_pick(args.limit, file_config, "limit", None), seed=seed, out=args.out, cache_dir=args.cache_dir,
            llm_options=backend_options, method=settings, method_options=_for_task(method_options, task_name),
            profile_controls=controls, concurrency=_pick(args.concurrency, file_config, "concurrency", 8),
            workers=_pick(args.workers, file_config, "workers", 1))
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
    ev.add_argument("--config", help="YAML with `method:` (MethodConfig fields), `method_options:` and any of "
                                     + ", ".join(EVAL_FILE_KEYS[2:]) + "; command-line flags win")
    ev.add_argument("--concurrency", type=int, help="requests in flight for HTTP backends (default 8)")
    ev.add_argument("--workers", type=int, help="processes for in-process backends, e.g. llamacpp (default 1)")
    ev.add_argument("--profile-control", help="own (default), other-user (another user's history, seeded), "
                                              "none (empty history); comma-separated to run several")
    add_model_options(ev)
    ev.set_defaults(func=cmd_eval)
