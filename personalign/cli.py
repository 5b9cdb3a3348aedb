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
    from personalign.backends import backend_options

    backends = "; ".join(f"{name}: {backend_options(name)}" for name in registry.available("backends"))
    parser.add_argument("--llm", help="backend spec: llamacpp[:GGUF], openai:MODEL, transformers:PATH (default llamacpp)")
    parser.add_argument("--llm-options", help=f"backend options as key=value,... ({backends})")
    parser.add_argument("--retriever", help="bm25 (default), dense[:MODEL_OR_PATH], random or recency")
    parser.add_argument("--k", type=int, help="history items per prompt (default 4)")
    parser.add_argument("--seed", type=int, help="seed for sampling, --limit and controls (default 0)")
    parser.add_argument("--cache-dir", default=".cache/personalign", help="LLM and embedding caches")
    parser.add_argument("--reflection", help="RPO reflection model: trained folder, .gguf, backend spec, or 'bundled'")


def _llm_options(text: str | None) -> dict:
    """Parse ``key=value,...`` (values read as YAML scalars: 1 -> int, true -> bool)."""
    options = {}
    for pair in _csv(text or ""):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --llm-options entry '{pair}': expected key=value")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"bad --llm-options value in '{pair}'") from None
    return options


def _method_config(overrides: dict, where: str = "method options") -> MethodConfig:
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: expected a mapping of MethodConfig fields")
    known = {f.name for f in fields(MethodConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"{where}: unknown method option(s) {sorted(unknown)}; known: {sorted(known)}")
    return MethodConfig(**overrides)


def _for_task(options: dict, task_name: str) -> dict:
    """Method options with ``{task}`` in string values replaced, so one eval config serves every task."""
    return {method: {key: value.replace("{task}", task_name) if isinstance(value, str) else value
                     for key, value in values.items()} for method, values in options.items()}


EVAL_FILE_KEYS = ("method", "method_options", "retriever", "llm", "llm_options", "limit", "seed", "concurrency",
                  "workers", "profile_control")


def read_eval_config(path: str | None) -> dict:
    """The YAML of ``--config``: only known top-level keys, each checked; a bad file is one line."""
    if not path:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid YAML ({' '.join(str(exc).split())[:160]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config {path}: top level must be a mapping")
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
    from personalign.eval.report import cross_task_table
    from personalign.eval.runner import EvalConfig, run_eval
    from personalign.tasks import get_task

    file_config = read_eval_config(args.config)
    method_fields = dict(file_config.get("method") or {})
    seed = _pick(args.seed, file_config, "seed", method_fields.get("seed", 0))
    method_fields["seed"] = seed
    if args.k is not None:
        method_fields["k"] = args.k
    method_config = _method_config(method_fields, f"--config {args.config} method" if args.config else "--k")
    method_options = dict(file_config.get("method_options") or {})
    methods = _csv(args.methods or "zero-shot,rag")
    if args.reflection:
        for name in methods:
            if base_name(name) == "rpo":
                method_options[name] = {**method_options.get(name, {}), "reflection": args.reflection}
    llm_options = {**(file_config.get("llm_options") or {}), **_llm_options(args.llm_options)}
    controls = _csv(args.profile_control) if args.profile_control else _csv(str(file_config.get("profile_control", "own")))
    results_by_task, tasks = {}, {}
    for task_name in _csv(args.task):
        config = EvalConfig(
            data=args.data, task=task_name, methods=methods, split=args.split, part=args.part,
            retriever=_pick(args.retriever, file_config, "retriever", "bm25"), llm=_pick(args.llm, file_config, "llm", "llamacpp"),
            limit=_pick(args.limit, file_config, "limit", None), seed=seed, out=args.out, cache_dir=args.cache_dir,
            llm_options=llm_options, method=method_config, method_options=_for_task(method_options, task_name),
            profile_controls=controls, concurrency=_pick(args.concurrency, file_config, "concurrency", 8),
            workers=_pick(args.workers, file_config, "workers", 1))
        results_by_task[task_name] = run_eval(config)
        tasks[task_name] = get_task(task_name)
        print((config.run_dir / "results.md").read_text())
        print(f"predictions, metrics.json and manifest.json in {config.run_dir}\n")
    if len(results_by_task) > 1:
        print(cross_task_table(results_by_task, tasks, ("s/ex",)))
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from personalign.eval.rescore import rescore

    for run_dir in rescore(args.run_dir):
        print(f"rescored {run_dir} (0 LLM calls): {run_dir / 'metrics.json'}, {run_dir / 'results.md'}")
        if args.print:
            print((run_dir / "results.md").read_text())
    return 0


def cmd_personalize(args: argparse.Namespace) -> int:
    from personalign.backends import get_llm
    from personalign.data.lamp_io import check_profile
    from personalign.history import read_history
    from personalign.methods import build_method
    from personalign.retrievers import get_retriever
    from personalign.tasks import get_task, infer_task
    from personalign.tasks.filters import apply_filter
    from personalign.types import Example

    profile = read_history(args.history)
    task = get_task(args.task) if args.task else infer_task(profile, args.query)
    profile = check_profile(profile, args.history, task)
    cache = Path(args.cache_dir)
    method_cls = registry.load("methods", base_name(args.method))
    llm = get_llm(args.llm or "llamacpp", cache_path=cache / "llm.sqlite", **_llm_options(args.llm_options)) \
        if method_cls.needs_llm else None
    options = {"reflection": args.reflection} if args.reflection and base_name(args.method) == "rpo" else {}
    fields_ = {"k": args.k} if args.k is not None else {}
    method = build_method(args.method, task, llm=llm, retriever=get_retriever(args.retriever or "bm25", seed=args.seed or 0,
                                                                           cache_dir=cache),
                          config=_method_config({**fields_, "seed": args.seed or 0}), cache_dir=cache, **options)
    example = Example(id="query", input=task.format_input(args.query), profile=profile)
    answer = method.answer(example, profile)
    final = apply_filter(task, answer.output_filter, answer.raw, answer.trace.to_dict())
    trace = answer.trace
    if args.json:
        print(json.dumps({"task": task.name, "answer": final.prediction, "fallback": final.fallback, "raw": answer.raw,
                          "trace": trace.to_dict()}, indent=2, ensure_ascii=False))
        return 0
    print(f"task: {task.name}   method: {args.method}   history items: {len(profile)}")
    print(f"retrieved ids: {', '.join(trace.retrieved_ids) or '-'}")
    print(f"tokens: prompt {trace.prompt_tokens}, completion {trace.completion_tokens} ({trace.cached_calls} cached calls)")
    for key, value in trace.extra.items():
        print(f"{key}: {value}")
    for stage, prompt, raw in zip(trace.stages, trace.prompts, trace.raw_outputs):
        print(f"--- {stage} prompt ---\n" + prompt[-1]["content"] + "\n--- raw output ---\n" + raw)
    print(f"\nanswer: {final.prediction}" + ("   (fell back to the base answer)" if final.fallback else ""))
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
        from personalign.data.lamp_io import validate_files

        for line in validate_files(args.files, get_task(args.task) if args.task else None):
            print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from personalign.eval.report import control_rows, cross_task_table, markdown_table, pair, verdict, verdict_rows
    from personalign.eval.rescore import score_run
    from personalign.tasks import get_task

    results, tasks, dirs = {}, {}, {}
    for task_name in _csv(args.task):
        run_dir = Path(args.runs) / task_name / f"{args.split}-{args.part}"
        if not (run_dir / "predictions").is_dir():
            raise ConfigError(f"no results for {task_name}: {run_dir}/predictions does not exist (run `personalign eval` first)")
        task = get_task(task_name)
        found = score_run(run_dir, task)
        wanted = _csv(args.methods) or list(found)
        results[task_name] = {m: found[m] for m in wanted if m in found}
        tasks[task_name], dirs[task_name] = task, run_dir
    if args.compare:
        names = _csv(args.compare)
        if len(names) != 2:
            raise ConfigError("--compare takes two row names: A,B")
        rows = []
        for task_name, task in tasks.items():
            for test in pair(task, dirs[task_name], names[0], names[1], args.mode):
                rows.append({"task": task_name, "metric": test.metric, names[0]: test.a, names[1]: test.b,
                             "diff [95% CI]": test.diff.text(4), "p (paired permutation)": round(test.p_value, 4),
                             "n": test.n, "verdict": f"{names[0]} {verdict(test)} {names[1]}"})
        print(markdown_table(rows, list(rows[0])))
        return 0
    print(cross_task_table(results, tasks, tuple(_csv(args.extra)), args.mode))
    verdicts = [{"task": t, **row} for t in tasks for row in verdict_rows(tasks[t], dirs[t], results[t], args.mode)]
    if verdicts:
        print("\nAgainst each task's best reference (★), paired permutation test on the same examples:\n")
        print(markdown_table(verdicts, list(verdicts[0])))
    controls = [{"task": t, **row} for t in tasks for row in control_rows(tasks[t], dirs[t], results[t], args.mode)]
    if controls:
        print("\nProfile controls (a method that reads the user drops when the history is not theirs):\n")
        print(markdown_table(controls, list(controls[0])))
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
    ev.add_argument("--methods", help="comma-separated method names (default zero-shot,rag; see `personalign list`)")
    ev.add_argument("--limit", type=int, help="evaluate a seeded sample of this many questions")
    ev.add_argument("--out", default="runs", help="where predictions, metrics and manifests go")
    ev.add_argument("--config", help="YAML with `method:` (MethodConfig fields), `method_options:` and any of "
                                     + ", ".join(EVAL_FILE_KEYS[2:]) + "; command-line flags win")
    ev.add_argument("--concurrency", type=int, help="requests in flight for HTTP backends (default 8)")
    ev.add_argument("--workers", type=int, help="processes for in-process backends, e.g. llamacpp (default 1)")
    ev.add_argument("--profile-control", help="own (default), other-user (another user's history, seeded), "
                                              "none (empty history); comma-separated to run several")
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
    rp.add_argument("--compare", help="A,B: paired permutation test of two rows on their shared examples")
    rp.add_argument("--mode", default="lenient", choices=["lenient", "official"],
                    help="lenient (our parsers) or official (LaMP's eval: outputs only stripped)")
    rp.set_defaults(func=cmd_report)

    rs = sub.add_parser("rescore", help="re-parse and re-score finished runs from their raw logs (no LLM calls)")
    rs.add_argument("run_dir", help="an eval --out folder, or one task's run folder")
    rs.add_argument("--print", action="store_true", help="print each results.md")
    rs.set_defaults(func=cmd_rescore)

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
                    help="f16 (default, half the size; greedy outputs can differ from transformers), "
                         "f32 (greedy outputs identical to transformers), q8_0 (fastest)")
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
    except OSError as exc:  # a read-only or full output folder, a missing file: rows written so far are kept
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"personalign: error: {where}{exc.strerror or exc}; what was written so far is kept, "
              "fix it and run the same command again", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
