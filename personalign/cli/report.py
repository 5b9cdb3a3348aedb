"""``personalign report`` and ``personalign rescore``: tables, paired tests, controls, from the raw logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from personalign.cli.common import (
    SPLIT_HELP,
    csv_list,
)
from personalign.errors import ConfigError


def cmd_report(args: argparse.Namespace) -> int:
    from personalign.eval.report import (
        control_rows,
        cross_task_table,
        markdown_table,
        pair,
        too_few,
        too_few_note,
        verdict,
        verdict_rows,
    )
    from personalign.eval.rescore import score_run
    from personalign.tasks import get_task

    from personalign.eval.checks import REPORT_EXTRAS

    unknown = [name for name in csv_list(args.extra) if name not in REPORT_EXTRAS]
    if unknown:
        raise ConfigError(f"unknown --extra field(s) {', '.join(unknown)}; choose from: {', '.join(REPORT_EXTRAS)}")
    results, tasks, dirs, problems, known = {}, {}, {}, [], set()
    for task_name in csv_list(args.task):
        run_dir = Path(args.runs) / task_name / f"{args.split}-{args.part}"
        if not (run_dir / "predictions").is_dir():
            raise ConfigError(f"no results for {task_name}: {run_dir}/predictions does not exist (run `personalign eval` first)")
        task = get_task(task_name)
        found = score_run(run_dir, task, data=args.data, problems=problems)
        known |= set(found) | {p.stem for p in (run_dir / "predictions").glob("*.jsonl")}
        wanted = csv_list(args.methods) or list(found)
        results[task_name] = {m: found[m] for m in wanted if m in found}
        tasks[task_name], dirs[task_name] = task, run_dir
    missing = [m for m in csv_list(args.methods) if m not in known]
    if missing:
        raise ConfigError(f"no run of method(s) {', '.join(missing)} in {args.runs} for {args.task} "
                          f"({args.split}-{args.part}); have: {', '.join(sorted(known)) or 'none'}")
    if args.compare:
        names = csv_list(args.compare)
        if len(names) != 2:
            raise ConfigError("--compare takes two row names: A,B")
        rows = []
        for task_name, task in tasks.items():
            for test in pair(task, dirs[task_name], names[0], names[1], args.mode):
                rows.append({"task": task_name, "metric": test.metric, names[0]: test.a, names[1]: test.b,
                             "diff [95% CI]": test.diff.text(4), "p (paired permutation)": round(test.p_value, 4),
                             "n": test.n, "verdict": f"{names[0]} {verdict(test)} {names[1]}"})
        print(markdown_table(rows, list(rows[0])))
        return _said(problems)
    if not any(results.values()):  # every log refused, or none had golds: no table to show
        if problems:
            return _said(problems)
        raise ConfigError(f"nothing to report for {args.task} in {args.runs} ({args.split}-{args.part}): "
                          "no log could be scored against golds")
    small = {t: r for t, r in results.items() if too_few(r)}
    if small:
        print(f"{too_few_note(small, f'{args.mode} scoring')}\n")
    print(cross_task_table(results, tasks, tuple(csv_list(args.extra)), args.mode))
    verdicts = [{"task": t, **row} for t in tasks for row in verdict_rows(tasks[t], dirs[t], results[t], args.mode)]
    if verdicts:
        print("\nAgainst each task's best reference (★), paired permutation test on the same examples:\n")
        print(markdown_table(verdicts, list(verdicts[0])))
    controls = [{"task": t, **row} for t in tasks for row in control_rows(tasks[t], dirs[t], results[t], args.mode)]
    if controls:
        print("\nProfile controls (a method that reads the user drops when the history is not theirs):\n")
        print(markdown_table(controls, list(controls[0])))
    if args.diagnostics:
        _print_diagnostics(args, tasks, dirs, results)
    return _said(problems)


def _said(problems: list[str]) -> int:
    """Print each log that could not be scored as an error line; 2 when there was one, else 0."""
    for problem in problems:
        print(f"personalign: error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def _print_diagnostics(args: argparse.Namespace, tasks: dict, dirs: dict, results: dict) -> None:
    """Per-method output diagnostics (ratings, labels and text), from the logs and the run's data."""
    from personalign.eval.checks import manifest_data_dir
    from personalign.eval.diagnostics import diagnostics_rows
    from personalign.eval.report import markdown_table
    from personalign.eval.runs import run_logs

    for task_name, task in tasks.items():
        manifest = dirs[task_name] / "manifest.json"
        data = args.data or manifest_data_dir(dirs[task_name])
        if data is None:
            raise ConfigError(f"{manifest} is missing: give --data for the diagnostics")
        logs = {label: rows for label, (_, rows) in run_logs(dirs[task_name]).items() if label in results[task_name]}
        rows = diagnostics_rows(task, data, args.split, args.part, logs)
        if rows:
            print(f"\nDiagnostics, {task_name}: does the method read the user or answer a prior?\n")
            print(markdown_table(rows, list(rows[0])))

def cmd_rescore(args: argparse.Namespace) -> int:
    from personalign.eval.rescore import rescore

    problems: list[str] = []
    scored = rescore(args.run_dir, args.data, problems)
    for run_dir, results in scored.items():
        if not results:  # nothing scored here: its refused logs are named below
            continue
        print(f"rescored {run_dir} (0 LLM calls): {run_dir / 'metrics.json'}, {run_dir / 'results.md'}")
        if args.print:
            print((run_dir / "results.md").read_text())
    if not problems and not any(scored.values()):
        raise ConfigError(f"nothing rescored in {args.run_dir}: no log could be scored against golds")
    return _said(problems)

def register(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("report", help="one table of methods x task metrics from finished eval runs")
    rp.add_argument("--runs", default="runs", help="the --out folder of earlier `personalign eval` runs")
    rp.add_argument("--task", required=True, help="comma-separated task names")
    rp.add_argument("--split", default="user", choices=["user", "time"], help=SPLIT_HELP)
    rp.add_argument("--part", default="dev", choices=["train", "dev", "test", "fit", "val"],
                    help="dev (default), test, train; val and fit: a fixed 20%% / 80%% split of the train users")
    rp.add_argument("--extra", default="", help="extra columns per task, e.g. fallback_rate,s/ex")
    rp.add_argument("--methods", default="", help="only these methods, in this order (default: all)")
    rp.add_argument("--compare", help="A,B: paired permutation test of two rows on their shared examples")
    rp.add_argument("--mode", default="lenient", choices=["lenient", "official"],
                    help="lenient (our parsers) or official (LaMP's eval: outputs only stripped)")
    rp.add_argument("--diagnostics", action="store_true",
                    help="ratings: predicted-rating counts and MAE per user leniency; labels: how often a method "
                         "leaves the user's majority label, and is then right")
    rp.add_argument("--data", help="the data folder, to score against and for --diagnostics (default: the run's "
                                   "manifest)")
    rp.set_defaults(func=cmd_report)

    rs = sub.add_parser("rescore", help="re-parse and re-score finished runs from their raw logs (no LLM calls)")
    rs.add_argument("run_dir", help="an eval --out folder, or one task's run folder")
    rs.add_argument("--print", action="store_true", help="print each results.md")
    rs.add_argument("--data", help="the data folder the golds are read from (default: each run's manifest)")
    rs.set_defaults(func=cmd_rescore)
