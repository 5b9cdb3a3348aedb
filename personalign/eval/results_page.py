"""``docs/results.md`` from the committed per-example scores alone: no run folder, no data, no LLM.

Per task: every row's value with its 95% bootstrap interval (lenient and official scoring), each LLM row
against the task's strongest non-LLM reference (paired permutation test), and the profile controls.
Bootstrap and permutations are seeded, so the page is byte-identical from the same scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personalign.errors import ConfigError
from personalign.eval.report import (
    MIN_QUESTIONS_FOR_TESTS,
    is_ceiling,
    markdown_table,
    reads_the_user,
    verdict,
    with_interval,
)
from personalign.eval.synthetic_page import synthetic_files, synthetic_section, synthetic_sources
from personalign.eval.task_scores import TaskScores, score_file
from personalign.tasks.statistics import LOWER_IS_BETTER, PairedTest

PAGE_COMMAND = "personalign results page --scores docs/scores --out docs/results.md"
ARCHIVE = "archive/results-2026-12.md"


def _unparsable(ts: TaskScores, label: str) -> str:
    flags = [v for v in ts.scores["rows"][label]["unparsable"] if v is not None]
    return f"{sum(flags) / len(flags):.3f}" if flags else ""


def values_table(ts: TaskScores) -> str:
    """References (best first), then LLM rows (best first), then ceilings; ★ marks the strongest reference."""
    best = ts.strongest_reference()
    rows = []
    for label in [*ts.better_first(ts.own(True)), *ts.better_first(ts.own(False)), *ts.ceilings()]:
        kind = "ceiling" if is_ceiling(label) else "reference" if ts.scores["rows"][label]["reference"] else "LLM"
        row: dict[str, Any] = {"method": f"{label} ★" if label == best else label, "kind": kind}
        for metric in ts.task.metrics:
            row[metric] = with_interval(ts.values[label]["lenient"], metric, ts.testable)
        for metric in ts.task.metrics:
            row[f"official {metric}"] = f"{ts.values[label]['official'][metric]:.4f}"
        row["unparsable"] = _unparsable(ts, label)
        row["n"] = ts.values[label]["n"]
        rows.append(row)
    return markdown_table(rows, list(rows[0]))


def _test_cells(test: PairedTest) -> tuple[str, str]:
    return test.diff.text(3), f"{test.p_value:.4f}"


def verdict_table(ts: TaskScores) -> tuple[str, dict[str, int]]:
    """Each LLM row against the strongest reference, lenient and official; and the count of each verdict."""
    best = ts.strongest_reference()
    counts = {"beats": 0, "no significant difference from": 0, "loses to": 0}
    rows = []
    for label in ts.better_first(ts.own(False)):
        lenient, official = ts.paired(label, best), ts.paired(label, best, "official")
        counts[verdict(lenient)] += 1
        diff, p = _test_cells(lenient)
        official_diff, official_p = _test_cells(official)
        rows.append({"method": label, ts.task.metrics[0]: f"{lenient.a:.4f}", best: f"{lenient.b:.4f}",
                     "diff [95% CI]": diff, "p": p, "verdict": f"{verdict(lenient)} {best}",
                     "official diff": official_diff, "official p": official_p,
                     "official verdict": verdict(official), "n": lenient.n})
    return (markdown_table(rows, list(rows[0])) if rows else ""), counts


def control_table(ts: TaskScores) -> str:
    """Each row's own profile against another user's and none (lenient, first metric)."""
    rows = []
    for label in ts.scores["rows"]:
        if "#" not in label or label.split("#", 1)[0] not in ts.scores["rows"]:
            continue
        own, control = label.split("#", 1)
        test = ts.paired(own, label)
        diff, p = _test_cells(test)
        rows.append({"method": own, "control": control, ts.task.metrics[0]: f"{test.a:.4f}",
                     "under control": f"{test.b:.4f}", "own - control [95% CI]": diff, "p": p,
                     "reads the user": reads_the_user(test), "n": test.n})
    return markdown_table(rows, list(rows[0])) if rows else ""


def control_values(ts: TaskScores) -> str:
    """Values only (too few questions for tests): own, another user's and no profile."""
    rows = []
    for label in ts.scores["rows"]:
        if "#" in label and label.split("#", 1)[0] in ts.scores["rows"]:
            own, control = label.split("#", 1)
            metric = ts.task.metrics[0]
            rows.append({"method": own, "control": control, metric: f"{ts.values[own]['lenient'][metric]:.4f}",
                         "under control": f"{ts.values[label]['lenient'][metric]:.4f}"})
    return markdown_table(rows, list(rows[0])) if rows else ""


def task_section(ts: TaskScores) -> tuple[str, dict[str, Any]]:
    """One task's section and its summary row."""
    best = ts.strongest_reference()
    metric = ts.task.metrics[0]
    scores = ts.scores
    parts = [f"## {ts.task.name} ({scores['split']} split, {scores['part']}, {ts.n} questions)\n",
             f"Scores: `{ts.path.name}`. Strongest reference: `{best}` ({metric} "
             f"{ts.values[best]['lenient'][metric]:.4f})." if best else f"Scores: `{ts.path.name}`.",
             *([] if ts.testable else [f"\n{ts.n} questions: fewer than {MIN_QUESTIONS_FOR_TESTS}, too few for "
                                       "intervals or paired tests, so this section shows values only."]),
             "\n" + values_table(ts)]
    counts = {"beats": 0, "no significant difference from": 0, "loses to": 0}
    llm = ts.better_first(ts.own(False))
    if llm and best and ts.testable:
        table, counts = verdict_table(ts)
        parts += [f"\n### Against the strongest reference, `{best}` (paired permutation test on {metric})\n", table]
    controls = control_table(ts) if ts.testable else control_values(ts)
    if controls:
        parts += ["\n### Profile controls: own history against another user's (`other-user`) and none (`none`)\n",
                  controls]
    summary = {"task": ts.task.name, "questions": ts.n, "metric": metric,
               "strongest reference": f"{best} {ts.values[best]['lenient'][metric]:.4f}" if best else "",
               "best LLM row": f"{llm[0]} {ts.values[llm[0]]['lenient'][metric]:.4f}" if llm else "",
               "LLM rows: beat / tie / lose": (f"{counts['beats']} / {counts['no significant difference from']} / "
                                               f"{counts['loses to']}" if llm and ts.testable else
                                               ("not tested (too few questions)" if llm else "no LLM rows"))}
    return "\n".join(parts) + "\n", summary


def _headline(tasks: list[TaskScores], summaries: list[dict[str, Any]]) -> str:
    """The finding, computed: how many LLM rows beat, tie or lose to their task's strongest reference."""
    tested = [ts for ts in tasks if ts.testable and ts.own(False) and ts.strongest_reference()]
    wins, ties, losses = 0, 0, 0
    for s in summaries:
        if "/" in s["LLM rows: beat / tie / lose"]:
            w, t, lo = (int(x) for x in s["LLM rows: beat / tie / lose"].split(" / "))
            wins, ties, losses = wins + w, ties + t, losses + lo
    above = [f"{ts.task.name} `{label}`" for ts in tasks if not ts.testable and ts.strongest_reference()
             for label in ts.own(False) if _better(ts, label, ts.strongest_reference())]
    untested = [ts.task.name for ts in tasks if not ts.testable and ts.own(False)]
    pairs = wins + ties + losses
    if pairs == 0:
        text = "**No LLM row was tested against a non-LLM reference** in these scores."
    elif wins == 0:
        text = (f"**No LLM method beats its task's strongest non-LLM reference** in these scores (lenient scoring): "
                f"of the {pairs} task-method pairs tested ({', '.join(ts.task.name for ts in tested)}), {losses} lose "
                f"and {ties} tie (no significant difference at p < 0.05).")
    else:
        text = f"**{wins} of {pairs} tested task-method pairs beat their task's strongest non-LLM reference** (p < 0.05)."
    if untested:
        text += (f" {', '.join(untested)}: too few questions to test; "
                 + (f"above the reference by value: {', '.join(above)}." if above else
                    "no LLM row is above the strongest reference even by value."))
    without = [ts.task.name for ts in tasks if not ts.own(False)]
    if without:
        text += f" {', '.join(without)}: references only (no LLM rows in these scores)."
    return text


def _better(ts: TaskScores, a: str, b: str) -> bool:
    metric = ts.task.metrics[0]
    va, vb = ts.values[a]["lenient"][metric], ts.values[b]["lenient"][metric]
    return va < vb if metric in LOWER_IS_BETTER else va > vb


def _sources(tasks: list[TaskScores]) -> list[str]:
    models = sorted({row["run"]["model"] for ts in tasks for row in ts.scores["rows"].values() if row["run"]["model"]})
    scored = sorted({f"personalign {ts.scores['source']['scored_with'].get('personalign')} at commit "
                     f"{ts.scores['source']['scored_with'].get('git_revision') or 'not recorded'}" for ts in tasks})
    settings = sorted({f"{row['run']['retriever']}, k = {row['run']['k']}, seed {row['run']['seed']}, "
                       f"limit {row['run']['limit'] if row['run']['limit'] is not None else 'none (every question)'}"
                       for ts in tasks for row in ts.scores["rows"].values()})
    commands = list(dict.fromkeys(c for ts in tasks for c in ts.scores["source"].get("commands", [])))
    table = markdown_table([{"task": ts.task.name, "scores file": f"`{ts.path.name}`", "questions": ts.n,
                             "rows": len(ts.scores["rows"]),
                             "data sha256": ts.scores["source"]["data_sha256"][:12]} for ts in tasks],
                           ["task", "scores file", "questions", "rows", "data sha256"])
    lines = ["## Where the scores came from\n", table, "",
             "- LLM: " + (", ".join(f"`{m}`" for m in models) or "none") + " (the model identity in the run keys).",
             "- Retrieval and sampling: " + "; ".join(settings) + ".",
             "- Scored (parsers and metrics) with " + "; ".join(scored) + "."]
    if commands:
        lines += ["- The runs were made with:", "", "```bash", *commands, "```"]
    lines += ["", "To refresh after new runs (the prediction logs stay in `runs/`, which is not committed):", "",
              "```bash", "personalign results export runs/reallamp --out docs/scores --command \"personalign eval ...\"",
              PAGE_COMMAND, "```"]
    return lines


def build_page(scores_dir: str | Path, command: str = PAGE_COMMAND) -> str:
    """The whole page from every ``*.json`` scores file in ``scores_dir`` (in task order), and a synthetic-users
    section from ``scores_dir/synthetic/*.json`` when there are any."""
    paths = sorted(Path(scores_dir).glob("*.json"))
    if not paths:
        raise ConfigError(f"no scores files (*.json) in {scores_dir}: run `personalign results export` first")
    tasks = [score_file(path) for path in paths]
    sections, summaries = zip(*(task_section(ts) for ts in tasks))
    synthetic = synthetic_files(scores_dir)  # <scores>/synthetic/: never in the summary or the headline
    if synthetic:
        sections += (synthetic_section(synthetic, Path(scores_dir).parent),)
    head = [
        "# Results", "",
        "<!-- Generated; do not edit. Regenerate with the command below; tests/test_results_page.py checks it. -->", "",
        f"Generated by `{command}` from the per-example scores committed in `docs/scores/` (question ids and "
        "metric values only), with no run folder and no data. The dated history (RPO, RPM, POPI and HYDRA runs, the "
        f"first harness, the parser change, validation and time-split tables) is in [{ARCHIVE}]({ARCHIVE}); its rows "
        "are kept for the record and cannot be regenerated, because their prediction logs are gone.", "",
        "Intervals are 95% bootstrap intervals over questions (2,000 resamples, seed 0). \"Beats\" and \"loses to\" "
        "are a two-sided paired permutation test on the same questions (5,000 permutations, seed 0) at p < 0.05, "
        "against each task's **strongest non-LLM reference** (★: the best own-profile reference on the task's first "
        "metric, lenient scoring). *Lenient* scoring reads answers with Personalign's parsers; *official* scoring is "
        "LaMP's `eval/evaluation.py` (outputs only stripped; official ROUGE is rouge_score's bootstrap-aggregator "
        "mid F, seed 0). `unparsable` is the share of lenient answers no metric can read. In the profile controls, "
        "\"yes\" means the row does better with the user's own history than under the control (p < 0.05), "
        "\"history hurts\" the reverse.", "",
        "## Summary", "", _headline(tasks, list(summaries)), "",
        markdown_table(list(summaries), list(summaries[0])), "", "",
    ]
    sources = _sources(tasks) + synthetic_sources(synthetic)
    return "\n".join(head) + "\n".join(sections) + "\n" + "\n".join(sources) + "\n"


def page_command(scores_dir: str | Path) -> str:
    """The command that makes this page (printed; ``--out FILE`` writes it), as its header cites it: the scores
    folder relative to the working directory when it lies below it."""
    shown = Path(scores_dir)
    try:
        shown = shown.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return f"personalign results page --scores {shown.as_posix()}"


def write_page(scores_dir: str | Path, out: str | Path) -> str:
    """Write the page to ``out``; return it."""
    from personalign.data.lamp_io import atomic_writer

    page = build_page(scores_dir, page_command(scores_dir))
    with atomic_writer(out) as handle:
        handle.write(page)
    return page
