"""The "Synthetic users" section of ``docs/results.md``, from ``<scores>/synthetic/*.json`` alone (issue 30).

Per scores file (one task shape, split and part), a row per own-profile method (references, LLM rows, then the
oracle): its score with the 95% interval; its paired test against the best rule-blind reference (the task's
strongest own-profile non-LLM reference, which does not know the rule); its drops under another user's history
and none; and the share of the oracle's headroom it recovers. Every difference here is in the metric's better
direction, so + always means "the method is better" or "the control is worse".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personalign.data.synth import SHAPES
from personalign.eval.report import MIN_QUESTIONS_FOR_TESTS, is_ceiling, markdown_table, with_interval
from personalign.eval.task_scores import TaskScores, score_file
from personalign.tasks.statistics import LOWER_IS_BETTER, Interval, PairedTest

FOLDER = "synthetic"  # below the scores folder: docs/scores/synthetic/
PLOT = "img/synth_controls.png"  # relative to the page's folder (docs/)
CONTROLS = ("other-user", "none")
SHAPE_TITLES = {"tweet": "Tweets", "title": "Titles", "rating": "Ratings", "label": "Labels"}
EXPORT_COMMAND = "personalign results export RUN_DIR --data SYNTH_DATA --out docs/scores/synthetic"


def synthetic_files(scores_dir: str | Path) -> list[TaskScores]:
    """Every ``<scores_dir>/synthetic/*.json``, scored (none: an empty list)."""
    return [score_file(path) for path in sorted((Path(scores_dir) / FOLDER).glob("*.json"))]


def shape_title(task_name: str) -> str:
    """``Titles`` for LaMP_5 and so on (the task name for a task no shape is written as)."""
    shapes = [shape for shape, task in SHAPES.items() if task == task_name]
    return SHAPE_TITLES.get(shapes[0], shapes[0]) if shapes else task_name


def _sign(ts: TaskScores) -> int:
    """+1 when higher is better on the file's first metric, -1 when lower is (MAE)."""
    return -1 if ts.task.metrics[0] in LOWER_IS_BETTER else 1


def _value(ts: TaskScores, label: str) -> float:
    return ts.values[label]["lenient"][ts.task.metrics[0]]


def better_direction(ts: TaskScores, test: PairedTest) -> Interval:
    """``a - b`` of a paired test turned so that + means ``a`` is better (for MAE: ``b - a``)."""
    diff, sign = test.diff, _sign(ts)
    low, high = (diff.low, diff.high) if sign > 0 else (-diff.high, -diff.low)
    return Interval(sign * diff.value + 0.0, low + 0.0, high + 0.0)  # + 0.0: never "-0.000"


def headroom_share(ts: TaskScores, label: str, reference: str | None, oracle: str | None) -> float | None:
    """(method - reference) / (oracle - reference): the oracle 1, the reference 0; None (undefined) when there is
    no reference or oracle, or the oracle does not beat the reference."""
    if reference is None or oracle is None:
        return None
    gap = _sign(ts) * (_value(ts, oracle) - _value(ts, reference))
    if not gap > 0:
        return None
    return _sign(ts) * (_value(ts, label) - _value(ts, reference)) / gap + 0.0


def _diff_cells(ts: TaskScores, test: PairedTest) -> tuple[str, str]:
    """The better-direction difference (with its interval and p when the file is large enough for tests)."""
    diff = better_direction(ts, test)
    if not ts.testable:
        return f"{diff.value:+.3f}", ""
    return f"{diff.value:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]", f"{test.p_value:.4f}"


def shape_table(ts: TaskScores) -> str:
    """One scores file's table: a row per own-profile method, references and LLM rows best first, then ceilings."""
    metric = ts.task.metrics[0]
    best = ts.strongest_reference()
    oracle = next(iter(ts.ceilings()), None)
    rows = []
    for label in [*ts.better_first(ts.own(True)), *ts.better_first(ts.own(False)), *ts.ceilings()]:
        kind = "ceiling" if is_ceiling(label) else "reference" if ts.scores["rows"][label]["reference"] else "LLM"
        row: dict[str, Any] = {"method": f"{label} ★" if label == best else label, "kind": kind,
                               metric: with_interval(ts.values[label]["lenient"], metric, ts.testable)}
        if best is not None and label != best:
            row["vs ★ [95% CI]"], row["p vs ★"] = _diff_cells(ts, ts.paired(label, best))
        for control in CONTROLS:
            if f"{label}#{control}" in ts.scores["rows"]:
                row[f"drop {control} [95% CI]"], row[f"p {control}"] = _diff_cells(
                    ts, ts.paired(label, f"{label}#{control}"))
        share = headroom_share(ts, label, best, oracle)
        row["headroom share"] = "undefined" if share is None else f"{share:.3f}"
        row["n"] = ts.values[label]["n"]
        rows.append(row)
    drops = [name for control in CONTROLS for name in (f"drop {control} [95% CI]", f"p {control}")]
    columns = ["method", "kind", metric, "vs ★ [95% CI]", "p vs ★", *drops, "headroom share", "n"]
    return markdown_table(rows, columns)


def _reference_line(ts: TaskScores) -> str:
    """Under the table: the best rule-blind reference and the oracle's value (or why the share is undefined)."""
    metric = ts.task.metrics[0]
    best = ts.strongest_reference()
    oracle = next(iter(ts.ceilings()), None)
    text = (f"Best rule-blind reference ★: `{best}` ({metric} {_value(ts, best):.4f})" if best
            else "No rule-blind reference in this file, so no test against one and no headroom share")
    if oracle is None:
        text += "; no oracle row, so the headroom share is undefined."
    else:
        text += f"; oracle: {metric} {_value(ts, oracle):.4f}"
        if best and headroom_share(ts, oracle, best, oracle) is None:
            text += " (it does not beat the reference, so the headroom share is undefined)"
        text += "."
    return f"Scores: `{FOLDER}/{ts.path.name}`. {text}"


def shape_section(ts: TaskScores) -> str:
    """One file's subsection."""
    scores = ts.scores
    parts = [f"### {shape_title(ts.task.name)} ({ts.task.name} format, {scores['split']} split, {scores['part']}, "
             f"{ts.n} questions)\n",
             *([] if ts.testable else [f"{ts.n} questions: fewer than {MIN_QUESTIONS_FOR_TESTS}, too few for "
                                       "intervals or paired tests, so this table shows values only.\n"]),
             shape_table(ts), "", _reference_line(ts)]
    return "\n".join(parts) + "\n"


def synthetic_section(files: list[TaskScores], docs_dir: Path) -> str:
    """The whole section: what it is, the sweep plot when it is there, and one subsection per file."""
    intro = (
        "Issue 30's controlled experiment. `personalign data synth` writes LaMP-format tasks whose users follow known "
        "per-user rules (a title prefix, a rating offset, a tag swapped for its synonym, a tweet sign-off), so the "
        "personalization signal is one we put there: a method that reads the user's history can recover it, one "
        "that ignores the history cannot. `oracle` applies each user's true rule: it is the ceiling, not a "
        "reference. Per task shape and method: the score with its 95% interval; the paired permutation test "
        "against the best rule-blind reference (★, the best own-profile non-LLM reference: it is not told the "
        "rule, though one that reads the history can pick it up); the drops under another user's history "
        "(`other-user`) and none (`none`); and the share of the "
        "oracle's headroom recovered, (method − ★) / (oracle − ★), so the oracle is 1 and ★ is 0. Every "
        "difference in this section is in the metric's better direction: + means the method beats ★, or does "
        "worse under the control than with its own history (for MAE that is control − own, the opposite sign "
        "of the task sections' `own - control`). These files are not counted in the summary above. The "
        "commands, knobs, CPU times and the sweep over the share of users with a rule are in "
        "[synthetic.md](synthetic.md).")
    parts = ["## Synthetic users (known per-user rules)\n", intro]
    if (docs_dir / PLOT).is_file():
        parts += ["", f"![the profile controls' drop against the share of users with a rule]({PLOT})"]
    return "\n".join(parts) + "\n\n" + "\n".join(shape_section(ts) for ts in files)


def synthetic_sources(files: list[TaskScores]) -> list[str]:
    """Lines for "Where the scores came from": the synthetic files in their own table (none: no lines)."""
    if not files:
        return []
    table = markdown_table([{"shape": shape_title(ts.task.name), "scores file": f"`{FOLDER}/{ts.path.name}`",
                             "questions": ts.n, "rows": len(ts.scores["rows"]),
                             "data sha256": ts.scores["source"]["data_sha256"][:12]} for ts in files],
                           ["shape", "scores file", "questions", "rows", "data sha256"])
    models = sorted({row["run"]["model"] for ts in files for row in ts.scores["rows"].values() if row["run"]["model"]})
    commands = list(dict.fromkeys(c for ts in files for c in ts.scores["source"].get("commands", [])))
    lines = ["", "Synthetic users (the section above; generated data, not RealLaMP):", "", table, "",
             "- LLM: " + (", ".join(f"`{m}`" for m in models) or "none") + ".",
             "- Exported with `" + EXPORT_COMMAND + "` (`--data`: the `personalign data synth --out` folder)."]
    if commands:
        lines += ["- The data and runs were made with:", "", "```bash", *commands, "```"]
    return lines
