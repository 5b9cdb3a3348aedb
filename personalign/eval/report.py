"""Results tables with 95% bootstrap intervals, the best reference, paired tests and profile controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personalign import registry
from personalign.errors import ConfigError, PersonalignError
from personalign.eval.runs import run_logs
from personalign.eval.scoring import score_rows
from personalign.methods import base_name
from personalign.tasks.spec import TaskSpec
from personalign.tasks.statistics import LOWER_IS_BETTER, PairedTest, paired_test

ARROWS = {**{m: "↓" for m in LOWER_IS_BETTER}, **{m: "↑" for m in ("accuracy", "f1", "rouge-1", "rouge-L")}}
MIN_QUESTIONS_FOR_TESTS = 20  # below this, 95% intervals and paired tests mean nothing: print values only


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A markdown table; metric columns get an arrow saying which direction is better."""
    def header(col: str) -> str:
        arrow = ARROWS.get(col.split(" ")[-1])
        return f"{col} {arrow}" if arrow else col

    lines = ["| " + " | ".join(header(c) for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def is_reference(label: str) -> bool:
    """True for non-LLM reference rows (majority, mean, echo, lead, nearest output, user prior); not the oracle."""
    try:
        method = registry.load("methods", base_name(label.split("#", 1)[0]))
        return not method.needs_llm and not method.ceiling
    except PersonalignError:
        return False


def is_ceiling(label: str) -> bool:
    """True for rows of a method that knows the true answers (synthetic data's oracle): neither a reference
    nor an LLM row, so never tested as one."""
    try:
        return bool(registry.load("methods", base_name(label.split("#", 1)[0])).ceiling)
    except PersonalignError:
        return False


def questions(results: dict[str, dict[str, Any]]) -> int:
    """The number of questions a task's run scored (its largest row)."""
    return max((values.get("n", 0) for values in results.values()), default=0)


def too_few(results: dict[str, dict[str, Any]]) -> bool:
    """True when a run has rows but too few questions for intervals or paired tests."""
    return bool(results) and questions(results) < MIN_QUESTIONS_FOR_TESTS


def too_few_note(results_by_task: dict[str, dict[str, dict[str, Any]]], scoring: str = "lenient scoring") -> str:
    """The one line that says why only values are shown, for the runs that are too small."""
    sizes = sorted({questions(r) for r in results_by_task.values()})
    per_task = " per task" if len(results_by_task) > 1 else ""
    return (f"n = {' to '.join(map(str, sizes[::max(1, len(sizes) - 1)]))} questions{per_task}: too few for "
            f"intervals or significance tests, so only the values are shown ({scoring}); "
            "docs/results.md has RealLaMP's numbers.")


def with_interval(values: dict[str, Any], metric: str, interval: bool = True) -> str:
    low, high = values.get(f"{metric}_ci", (None, None))
    value = values.get(metric)
    if value is None:
        return ""
    return f"{value:.4f} [{low:.3f}, {high:.3f}]" if interval and low is not None else f"{value:.4f}"


def best_reference(task: TaskSpec, results: dict[str, dict[str, Any]], mode: str = "lenient") -> str | None:
    """The reference row (own profile) that is best on the task's first metric."""
    metric = task.metrics[0]
    refs = [m for m in results if is_reference(m) and "#" not in m and metric in results[m].get(mode, {})]
    if not refs:
        return None
    sign = 1 if metric in LOWER_IS_BETTER else -1
    return min(refs, key=lambda m: sign * results[m][mode][metric])


_ACCOUNTING = ("unparsable_rate", "fallback_rate", "empty_rate", "prompt_tokens/ex", "s/ex")


def mode_table(task: TaskSpec, results: dict[str, dict[str, Any]], mode: str) -> str:
    best, interval = best_reference(task, results, mode), not too_few(results)
    rows = []
    for label, values in results.items():
        name = f"{label} ★ best reference" if label == best else label
        row = {"method": name, **{m: with_interval(values.get(mode, {}), m, interval) for m in task.metrics}}
        row.update({k: values.get(k, "") for k in ("n", *_ACCOUNTING)})
        if mode != "lenient":
            row["unparsable_rate"] = ""  # LaMP's script parses nothing: a label or a number, or wrong
        rows.append(row)
    return markdown_table(rows, ["method", *task.metrics, "n", *_ACCOUNTING])


def pair(task: TaskSpec, run_dir: Path, a: str, b: str, mode: str = "lenient",
         logs: dict[str, Any] | None = None) -> list[PairedTest]:
    """Paired tests of rows ``a`` and ``b`` of a run folder on every metric, on their shared examples."""
    logs = run_logs(run_dir) if logs is None else logs
    for label in (a, b):
        if label not in logs:
            raise ConfigError(f"no prediction log for '{label}' in {run_dir}/predictions; have: {', '.join(logs)}")
    rows_a = {str(r["id"]): r for r in logs[a][1]}
    rows_b = {str(r["id"]): r for r in logs[b][1]}
    shared = [i for i in rows_a if i in rows_b]
    if not shared:
        raise ConfigError(f"'{a}' and '{b}' share no examples in {run_dir}")
    scored_a = score_rows(task, [rows_a[i] for i in shared], mode)
    scored_b = score_rows(task, [rows_b[i] for i in shared], mode)
    return [paired_test(m, scored_a.stats[m], scored_b.stats[m]) for m in task.metrics]


def verdict(test: PairedTest) -> str:
    if test.p_value >= 0.05:
        return "no significant difference from"
    return "beats" if test.a_better else "loses to"


def verdict_rows(task: TaskSpec, run_dir: Path, results: dict[str, dict[str, Any]], mode: str = "lenient",
                 logs: dict[str, Any] | None = None):
    """Every non-reference row against the best reference, on the first metric, with a paired test
    (none for a run too small for tests)."""
    best = best_reference(task, results, mode)
    if best is None or too_few(results):
        return []
    rows, logs = [], run_logs(run_dir) if logs is None else logs
    for label in results:
        if is_reference(label) or "#" in label:
            continue
        test = pair(task, run_dir, label, best, mode, logs)[0]
        rows.append({"method": label, "metric": test.metric, "method value": test.a, "best reference": best,
                     "reference value": test.b, "diff [95% CI]": test.diff.text(3), "p": round(test.p_value, 4),
                     "n": test.n, "verdict": f"{verdict(test)} {best}"})
    return rows


def reads_the_user(test: PairedTest) -> str:
    """``yes`` when the own profile is better at p < 0.05, ``history hurts`` when the control is."""
    if test.p_value >= 0.05 or test.diff.value == 0:
        return "no evidence"
    return "yes" if test.a_better else "history hurts"


def control_rows(task: TaskSpec, run_dir: Path, results: dict[str, dict[str, Any]], mode: str = "lenient",
                 logs: dict[str, Any] | None = None):
    """Each method's drop when given another user's profile or none, with a paired test (none for a run
    too small for tests)."""
    if too_few(results):
        return []
    rows, logs = [], run_logs(run_dir) if logs is None else logs
    for label in results:
        if "#" not in label:
            continue
        own, control = label.split("#", 1)
        if own not in results:
            continue
        test = pair(task, run_dir, own, label, mode, logs)[0]
        rows.append({"method": own, "control": control, "metric": test.metric, "own profile": test.a,
                     "under control": test.b, "own - control [95% CI]": test.diff.text(3),
                     "p": round(test.p_value, 4), "n": test.n, "reads the user": reads_the_user(test)})
    return rows


def results_markdown(task: TaskSpec, run_dir: Path, results: dict[str, dict[str, Any]],
                     logs: dict[str, Any] | None = None) -> str:
    """``results.md`` of one run folder: both scoring modes, verdicts and controls (values only when too small)."""
    values = (too_few_note({task.name: results}, "lenient and official scoring") if too_few(results)
              else "Values: metric [95% bootstrap interval over examples].")
    parts = [f"## {task.name} ({run_dir.name})\n", f"{values} ★ marks the best non-LLM reference.\n",
             "### Lenient scoring (Personalign's parsers)\n", mode_table(task, results, "lenient"),
             "\n### Official scoring (LaMP eval/evaluation.py: outputs only stripped)\n",
             mode_table(task, results, "official")]
    sets: dict[str, list[str]] = {}
    for label, values in results.items():
        sets.setdefault(f"{values.get('examples_sha')} (n={values.get('n')})", []).append(label)
    if len(sets) > 1:
        parts.append("\n**These rows ran on different example sets** (another --limit or --seed, or an unfinished "
                     "run); paired tests use the examples two rows share:\n")
        parts += [f"- examples {key}: {', '.join(labels)}" for key, labels in sets.items()]
    logs = run_logs(run_dir) if logs is None else logs
    verdicts = verdict_rows(task, run_dir, results, logs=logs)
    if verdicts:
        parts += ["\n### Against the best reference (paired permutation test, lenient)\n",
                  markdown_table(verdicts, list(verdicts[0]))]
    controls = control_rows(task, run_dir, results, logs=logs)
    if controls:
        parts += ["\n### Profile controls\n", markdown_table(controls, list(controls[0]))]
    return "\n".join(parts) + "\n"


def cross_task_table(results_by_task: dict[str, dict[str, dict[str, Any]]], tasks: dict[str, TaskSpec],
                     extra: tuple[str, ...] = (), mode: str = "lenient") -> str:
    """Methods as rows, ``<task> <metric>`` (with intervals, unless the task's run is too small) as columns;
    ★ marks each task's best reference."""
    methods = list(dict.fromkeys(m for results in results_by_task.values() for m in results))
    columns = [f"{t} {m}" for t in results_by_task for m in [*tasks[t].metrics, *extra]]
    best = {t: best_reference(tasks[t], r, mode) for t, r in results_by_task.items()}
    interval = {t: not too_few(r) for t, r in results_by_task.items()}
    full = {t: max((v.get("n", 0) for v in r.values()), default=0) for t, r in results_by_task.items()}
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        for task_name, results in results_by_task.items():
            values = results.get(method, {})
            for metric in tasks[task_name].metrics:
                cell = with_interval(values.get(mode, {}), metric, interval[task_name])
                if cell and values.get("n") != full[task_name]:  # an unfinished run or another --limit
                    cell += f" (n={values.get('n')} of {full[task_name]})"
                row[f"{task_name} {metric}"] = cell + (" ★" if cell and best[task_name] == method else "")
            for metric in extra:
                row[f"{task_name} {metric}"] = values.get(metric, "")
        rows.append(row)
    return markdown_table(rows, ["method", *columns])


def values_table(results_by_task: dict[str, dict[str, dict[str, Any]]], tasks: dict[str, TaskSpec],
                 mode: str = "lenient") -> str:
    """Methods as rows, each task's first metric as a column: values only, for runs too small for intervals."""
    columns = [f"{name} {tasks[name].metrics[0]}" for name in results_by_task]
    labels = list(dict.fromkeys(m for results in results_by_task.values() for m in results))
    bases = list(dict.fromkeys(label.split("#")[0] for label in labels))
    rows = []  # references first, then the LLM methods; each method's profile controls right under it
    for method in sorted(labels, key=lambda label: (not is_reference(label), bases.index(label.split("#")[0]),
                                                    "#" in label)):
        row = {"method": method}
        for name, results in results_by_task.items():
            value = results.get(method, {}).get(mode, {}).get(tasks[name].metrics[0])
            row[f"{name} {tasks[name].metrics[0]}"] = "" if value is None else f"{value:.3f}"
        rows.append(row)
    return markdown_table(rows, ["method", *columns])
