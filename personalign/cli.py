"""The ``personalign`` command line: eval, personalize, data, list."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import yaml

from personalign import registry
from personalign.errors import ConfigError, PersonalignError
from personalign.methods import base_name
from personalign.methods.base import MethodConfig
from personalign.rpo.export import OUT_TYPES


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm", default="llamacpp", help="backend spec: llamacpp[:GGUF], openai:MODEL, transformers:PATH")
    parser.add_argument("--llm-options", default="", help="backend options as key=value,... e.g. n_threads=1,n_ctx=4096")
    parser.add_argument("--retriever", default="bm25", help="bm25, dense[:MODEL_OR_PATH], random or recency")
    parser.add_argument("--k", type=int, default=4, help="history items per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=".cache/personalign", help="LLM, embedding and summary caches")
    parser.add_argument("--reflection", help="RPO reflection model: trained folder, .gguf, backend spec, or 'bundled'")


def _llm_options(text: str) -> dict:
    """Parse ``key=value,...`` (values read as YAML scalars: 1 -> int, true -> bool)."""
    options = {}
    for pair in _csv(text):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"bad --llm-options entry '{pair}': expected key=value")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _method_config(args: argparse.Namespace, overrides: dict) -> MethodConfig:
    known = {f.name for f in fields(MethodConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown method option(s) {sorted(unknown)}; known: {sorted(known)}")
    return MethodConfig(**{**overrides, "k": args.k, "seed": args.seed})


def _for_task(options: dict, task_name: str) -> dict:
    """Method options with ``{task}`` in string values replaced, so one eval config serves every task."""
    return {method: {key: value.replace("{task}", task_name) if isinstance(value, str) else value
                     for key, value in values.items()} for method, values in options.items()}


def cmd_eval(args: argparse.Namespace) -> int:
    from personalign.eval.report import markdown_table
    from personalign.eval.runner import EvalConfig, run_eval
    from personalign.tasks import get_task

    file_config = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    method_config = _method_config(args, file_config.pop("method", {}))
    method_options = file_config.pop("method_options", {})
    if args.reflection:
        for name in _csv(args.methods):
            if base_name(name) == "rpo":
                method_options.setdefault(name, {})["reflection"] = args.reflection
    combined = []
    for task_name in _csv(args.task):
        config = EvalConfig(
            data=args.data, task=task_name, methods=_csv(args.methods), split=args.split, part=args.part,
            retriever=args.retriever, llm=args.llm, limit=args.limit, seed=args.seed, out=args.out,
            cache_dir=args.cache_dir, llm_options=_llm_options(args.llm_options), method=method_config,
            method_options=_for_task(method_options, task_name),
        )
        results = run_eval(config)
        print((config.run_dir / "results.md").read_text())
        print(f"predictions, metrics.json and manifest.json in {config.run_dir}\n")
        for method, values in results.items():
            combined.append({"task": task_name, "method": method,
                             **{m: values.get(m, "") for m in get_task(task_name).metrics},
                             "s/ex": values.get("s/ex", "")})
    if len(_csv(args.task)) > 1:
        metric_names = list(dict.fromkeys(m for row in combined for m in row if m not in ("task", "method", "s/ex")))
        print(markdown_table(combined, ["task", "method", *metric_names, "s/ex"]))
    return 0


def cmd_personalize(args: argparse.Namespace) -> int:
    from personalign.backends import get_llm
    from personalign.data.lamp_io import check_profile
    from personalign.history import read_history
    from personalign.methods import build_method
    from personalign.retrievers import get_retriever
    from personalign.tasks import get_task, infer_task
    from personalign.types import Example

    profile = read_history(args.history)
    task = get_task(args.task) if args.task else infer_task(profile)
    profile = check_profile(profile, args.history, task)
    cache = Path(args.cache_dir)
    method_cls = registry.load("methods", base_name(args.method))
    llm = get_llm(args.llm, cache_path=cache / "llm.sqlite", **_llm_options(args.llm_options)) if method_cls.needs_llm else None
    options = {"reflection": args.reflection} if args.reflection and base_name(args.method) == "rpo" else {}
    method = build_method(args.method, task, llm=llm, retriever=get_retriever(args.retriever, seed=args.seed, cache_dir=cache),
                          config=_method_config(args, {}), cache_dir=cache, **options)
    example = Example(id="query", input=task.format_input(args.query), profile=profile)
    answer = method.answer(example, profile)
    if args.json:
        print(json.dumps({"task": task.name, "answer": answer.text, "trace": answer.trace.to_dict()}, indent=2, ensure_ascii=False))
        return 0
    trace = answer.trace
    print(f"task: {task.name}   method: {args.method}   history items: {len(profile)}")
    print(f"retrieved ids: {', '.join(trace.retrieved_ids) or '-'}")
    print(f"tokens: prompt {trace.prompt_tokens}, completion {trace.completion_tokens} ({trace.cached_calls} cached calls)")
    for key, value in trace.extra.items():
        print(f"{key}: {value}")
    for prompt, raw in zip(trace.prompts, trace.raw_outputs):
        print("--- prompt ---\n" + prompt[-1]["content"] + "\n--- raw output ---\n" + raw)
    print(f"\nanswer: {answer.text}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from personalign.tasks import get_task

    if args.data_command == "download":
        from personalign.data.download import download_lamp

        for path in download_lamp(args.task, args.split, args.out):
            print(path)
    elif args.data_command == "build":
        from personalign.data.build import build_benchmark

        stats = build_benchmark(args.input, get_task(args.task), args.out, seed=args.seed,
                                dev_frac=args.dev_frac, test_frac=args.test_frac)
        print(json.dumps(stats, indent=2))
    elif args.data_command == "validate":
        from personalign.data.lamp_io import iter_questions, read_outputs

        task = get_task(args.task) if args.task else None
        for path in args.files:
            if Path(path).name.endswith("outputs.json"):
                name, golds = read_outputs(path)
                print(f"{path}: ok ({len(golds)} golds, task {name})")
            else:
                print(f"{path}: ok ({sum(1 for _ in iter_questions(path, task))} questions)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from personalign.eval.report import cross_task_table
    from personalign.tasks import get_task

    results, metrics = {}, {}
    for task_name in _csv(args.task):
        path = Path(args.runs) / task_name / f"{args.split}-{args.part}" / "metrics.json"
        if not path.exists():
            raise ConfigError(f"no results for {task_name}: {path} does not exist (run `personalign eval` first)")
        found = json.loads(path.read_text())
        wanted = _csv(args.methods) or list(found)
        results[task_name] = {m: found[m] for m in wanted if m in found}
        metrics[task_name] = list(get_task(task_name).metrics)
    print(cross_task_table(results, metrics, tuple(_csv(args.extra))))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from personalign.rpo.config import config_dict, load_config
    from personalign.rpo.pipeline import run_stage

    config = load_config(args.config, {"task": args.task, "data": args.data, "split": args.split, "out": args.out,
                                       "threads": args.threads})
    print(f"RPO {args.stage} for {config.task} ({config.split} split) -> {Path(config.out) / config.task / args.stage}")
    summary = run_stage(args.stage, config, args.cache_dir)
    print(json.dumps({"stage": args.stage, "summary": summary, "config": config_dict(config)[args.stage]}, indent=2))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from personalign.rpo.plots import plot_rl_curves, plot_sft_loss

    if args.kind == "sft":
        if len(args.logs) != 1:
            raise ConfigError("plot sft takes one sft_log.jsonl")
        print(plot_sft_loss(Path(args.logs[0]), Path(args.out)))
        return 0
    logs = {}
    for entry in args.logs:
        label, sep, path = entry.partition("=")
        logs[label if sep else Path(entry).parent.parent.name] = Path(path if sep else entry)
    print(plot_rl_curves(logs, Path(args.out)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from personalign.rpo.export import export_gguf

    print(export_gguf(args.model, args.out, args.type))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from personalign.tasks import available_tasks

    print("tasks:      " + ", ".join(available_tasks()))
    for kind in registry.KINDS:
        print(f"{kind + ':':<11} " + ", ".join(registry.available(kind)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="personalign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("eval", help="evaluate methods on a LaMP-format split")
    ev.add_argument("--data", required=True, help="folder with LaMP_N/<split>/<part>_questions.json")
    ev.add_argument("--task", required=True, help="task name(s), comma separated, e.g. LaMP_3 or LaMP_2,LaMP_3")
    ev.add_argument("--split", default="user", choices=["user", "time"])
    ev.add_argument("--part", default="dev", choices=["train", "dev", "test"])
    ev.add_argument("--methods", default="zero-shot,rag", help="comma-separated method names (see `personalign list`)")
    ev.add_argument("--limit", type=int, help="evaluate a seeded sample of this many questions")
    ev.add_argument("--out", default="runs", help="where predictions, metrics and manifests go")
    ev.add_argument("--config", help="YAML with `method:` options (MethodConfig fields) and `method_options:`")
    _add_model_options(ev)
    ev.set_defaults(func=cmd_eval)

    pz = sub.add_parser("personalize", help="answer one query for one user and print the trace")
    pz.add_argument("query", help="the task input, or raw text that the task's template wraps")
    pz.add_argument("--history", required=True, help="JSON list of profile items (or a LaMP question, or JSONL)")
    pz.add_argument("--method", default="rag")
    pz.add_argument("--task", help="task name; inferred from the history's fields when omitted")
    pz.add_argument("--json", action="store_true", help="print the answer and trace as JSON")
    _add_model_options(pz)
    pz.set_defaults(func=cmd_personalize)

    data = sub.add_parser("data", help="download, build and validate LaMP-format data")
    dsub = data.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("download", help="fetch the official LaMP files (needs a network)")
    dl.add_argument("task")
    dl.add_argument("--split", default="user", choices=["user", "time"])
    dl.add_argument("--out", default="data")
    bd = dsub.add_parser("build", help="build user and time splits from per-user JSONL records")
    bd.add_argument("--input", required=True, help="JSONL with user_id, input, output, optional timestamp")
    bd.add_argument("--task", required=True)
    bd.add_argument("--out", required=True)
    bd.add_argument("--seed", type=int, default=0)
    bd.add_argument("--dev-frac", type=float, default=0.1)
    bd.add_argument("--test-frac", type=float, default=0.2)
    va = dsub.add_parser("validate", help="check LaMP question/output files")
    va.add_argument("files", nargs="+")
    va.add_argument("--task")
    data.set_defaults(func=cmd_data)

    rp = sub.add_parser("report", help="one table of methods x task metrics from finished eval runs")
    rp.add_argument("--runs", default="runs", help="the --out folder of earlier `personalign eval` runs")
    rp.add_argument("--task", required=True, help="comma-separated task names")
    rp.add_argument("--split", default="user", choices=["user", "time"])
    rp.add_argument("--part", default="dev", choices=["train", "dev", "test"])
    rp.add_argument("--extra", default="", help="extra columns per task, e.g. fallback_rate,s/ex")
    rp.add_argument("--methods", default="", help="only these methods, in this order (default: all)")
    rp.set_defaults(func=cmd_report)

    tr = sub.add_parser("train", help="train a method's models (RPO: trajectories, then sft, then rl)")
    tr.add_argument("method", choices=["rpo"])
    tr.add_argument("stage", choices=["trajectories", "sft", "rl"])
    tr.add_argument("--config", help="YAML with every hyperparameter (see configs/rpo/)")
    tr.add_argument("--data", help="LaMP-format data folder (overrides the config)")
    tr.add_argument("--task", help="task name (overrides the config)")
    tr.add_argument("--split", choices=["user", "time"], help="(overrides the config)")
    tr.add_argument("--out", help="output folder (overrides the config)")
    tr.add_argument("--threads", type=int, help="torch CPU threads (overrides the config)")
    tr.add_argument("--cache-dir", default=".cache/personalign")
    tr.set_defaults(func=cmd_train)

    pl = sub.add_parser("plot", help="training curves: RL reward and KL per step, or SFT loss, as a PNG")
    pl.add_argument("kind", choices=["rl", "sft"])
    pl.add_argument("logs", nargs="+", help="LABEL=path/to/rl_log.jsonl ... (rl), or one sft_log.jsonl (sft)")
    pl.add_argument("--out", required=True, help="PNG file to write")
    pl.set_defaults(func=cmd_plot)

    ex = sub.add_parser("export", help="convert a trained model folder to GGUF for llama.cpp serving")
    ex.add_argument("model", help="transformers model folder, e.g. runs/rpo/LaMP_3/rl/model")
    ex.add_argument("--out", help="GGUF file (default: <model>.<type>.gguf beside the folder)")
    ex.add_argument("--type", default="f16", choices=OUT_TYPES,
                    help="f16 (default) keeps greedy outputs identical to transformers; q8_0 is faster, not identical")
    ex.set_defaults(func=cmd_export)

    ls = sub.add_parser("list", help="list tasks, methods, retrievers and backends")
    ls.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PersonalignError as exc:
        print(f"personalign: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("personalign: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
