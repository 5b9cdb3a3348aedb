"""Issue 30: sweep the share of synthetic users with a rule, under the own / other-user / none profile controls.

For each shape (title: LaMP_5 format with prefix/suffix rules ROUGE can see; rating: LaMP_3 format with
leniency offsets) and each share, it writes the data (``personalign data synth``, fixed seed) and runs
``personalign eval`` on the time split's dev questions, then tabulates per method: the score, the drop under
each control (own minus control in the metric's better direction, with the eval report's paired test), the
best rule-blind baseline and the share of the oracle's headroom recovered. Resumable: eval runs resume from
their prediction logs (the same command makes no new LLM calls) and the data is the same bytes for a seed.

    python -m experiments.synth_sweep --out runs/synth-sweep            # runs, then writes sweep.md/json
    python -m experiments.synth_sweep_plot runs/synth-sweep/sweep.json  # the plot (docs/img/synth_controls.png)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from personalign.eval.report import best_reference, control_rows, markdown_table
from personalign.eval.runs import run_logs
from personalign.eval.scoring import score_rows
from personalign.data.synth import read_rules
from personalign.tasks import get_task
from personalign.tasks.spec import TaskSpec
from personalign.tasks.statistics import LOWER_IS_BETTER, aggregate

SHAPES = {"title": ("LaMP_5", "prefix,suffix"), "rating": ("LaMP_3", "offset")}
BLIND = "blind answer"  # the rule-blind answer itself (the oracle with no rule), scored like a reference
CONTROLS = ("other-user", "none")


def share_dir(out: Path, shape: str, share: float) -> Path:
    return out / shape / f"share-{share:g}"


def run_dir(out: Path, shape: str, share: float) -> Path:
    return share_dir(out, shape, share) / "runs" / SHAPES[shape][0] / "time-dev"


def timed(command: list[str]) -> dict[str, float]:
    """Run ``command`` (output passes through); its CPU (user, system) and wall seconds."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    subprocess.run(command, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"user_s": round(after.ru_utime - before.ru_utime, 1), "system_s": round(after.ru_stime - before.ru_stime, 1),
            "wall_s": round(time.monotonic() - start, 1)}


def run_all(args: argparse.Namespace) -> None:
    """Generate and evaluate every (shape, share); timings go to ``<out>/timings.json`` (one entry per call)."""
    out, py = Path(args.out), args.python
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    jobs = [(shape, share) for shape in args.shapes for share in args.shares]
    for number, (shape, share) in enumerate(jobs, 1):
        task, rules = SHAPES[shape]
        data = share_dir(out, shape, share) / "data"
        subprocess.run([py, "-m", "personalign.cli", "data", "synth", "--out", str(data), "--shapes", shape,
                        "--rules", rules, "--users", str(args.users), "--history", str(args.history),
                        "--share", str(share), "--noise", str(args.noise), "--seed", str(args.seed)],
                       check=True, stdout=subprocess.DEVNULL)
        command = [py, "-m", "personalign.cli", "eval", "--data", str(data), "--task", task, "--split", "time",
                   "--part", "dev", "--methods", args.methods, "--profile-control", "own," + ",".join(CONTROLS),
                   "--workers", str(args.workers), "--out", str(share_dir(out, shape, share) / "runs")]
        if args.limit:
            command += ["--limit", str(args.limit)]
        print(f"[sweep {number}/{len(jobs)}] {shape} ({task}) share {share:g}: {' '.join(command)}", flush=True)
        spent = timed(command)
        print(f"[sweep {number}/{len(jobs)}] {shape} share {share:g} done: {spent['user_s']} s user + "
              f"{spent['system_s']} s system CPU, {spent['wall_s']} s wall", flush=True)
        timings.setdefault(f"{shape}/{share:g}", []).append(spent)
        timings_path.parent.mkdir(parents=True, exist_ok=True)
        timings_path.write_text(json.dumps(timings, indent=1) + "\n")


def drop(own: float, control: float, metric: str) -> float:
    """How much worse the control is than the own profile, in the metric's better direction."""
    return control - own if metric in LOWER_IS_BETTER else own - control


def headroom(value: float, base: float, oracle: float) -> float | None:
    """(value - base) / (oracle - base): the share of the oracle's headroom over ``base``; None when oracle = base."""
    if abs(oracle - base) < 1e-9:
        return None
    return (value - base) / (oracle - base)


def blind_score(task: TaskSpec, data: Path, logs: dict[str, Any]) -> float:
    """The first metric of the rule-blind answers on the oracle's questions (scored like any prediction)."""
    answers = read_rules(data, task.name)["answers"]
    rows = [{**row, "raw": answers[str(row["id"])]["blind"], "filter": "exact"} for row in logs["oracle"][1]]
    metric = task.metrics[0]
    stats = score_rows(task, rows).stats[metric]
    return float(aggregate(metric, stats.sum(axis=0), len(rows)))


def share_rows(shape: str, share: float, out: Path) -> list[dict[str, Any]]:
    """One row per method (own profile) of one run: score, drops with p, best rule-blind baseline, headroom."""
    task, folder = get_task(SHAPES[shape][0]), run_dir(out, shape, share)
    results = json.loads((folder / "metrics.json").read_text())
    metric, logs = task.metrics[0], run_logs(folder)
    value = {label: values["lenient"][metric] for label, values in results.items()}
    tests = {(r["method"], r["control"]): r for r in control_rows(task, folder, results, logs=logs)}
    reference = best_reference(task, results)
    candidates = {reference: value[reference]} if reference else {}
    if "oracle" in logs:
        candidates[BLIND] = blind_score(task, share_dir(out, shape, share) / "data", logs)
    sign = 1 if metric in LOWER_IS_BETTER else -1
    base = min(candidates, key=lambda k: sign * candidates[k]) if candidates else None
    rows = []
    for label in (k for k in results if "#" not in k):
        row: dict[str, Any] = {"shape": shape, "share": share, "method": label, "metric": metric, "score": value[label]}
        for control in CONTROLS:
            other = f"{label}#{control}"
            if other in value:
                row[f"drop {control}"] = drop(value[label], value[other], metric)
                row[f"p {control}"] = tests.get((label, control), {}).get("p")
        row["n"] = results[label].get("n")
        if base is not None:
            row.update({"baseline": base, "baseline score": candidates[base],
                        "headroom": headroom(value[label], candidates[base], value["oracle"])
                        if "oracle" in value else None})
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "undefined"
    return f"{round(value, 3) + 0.0:+.3f}" if isinstance(value, float) else str(value)  # + 0.0: no "-0.000"


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """The sweep table of one shape: a drop is own minus control in the better direction (+ = the control hurts)."""
    shown = []
    for row in rows:
        item = {"share": f"{row['share']:g}", "method": row["method"], row["metric"]: f"{row['score']:.3f}"}
        for control in CONTROLS:
            if f"drop {control}" in row:
                p = row[f"p {control}"]
                item[f"drop {control} (p)"] = _cell(row[f"drop {control}"]) + (f" ({p:.3g})" if p is not None else "")
        item["rule-blind baseline"] = f"{row.get('baseline')} {row.get('baseline score', 0):.3f}"
        item["headroom"] = _cell(row.get("headroom"))
        shown.append(item)
    return markdown_table(shown, list(shown[0])) if shown else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--shapes", default="title,rating", type=lambda s: s.split(","))
    parser.add_argument("--shares", default="0,0.25,0.5,0.75,1", type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--history", type=int, default=8)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="references,oracle,zero-shot,rag")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--table-only", action="store_true", help="tabulate the runs already there")
    args = parser.parse_args(argv)
    unknown = [s for s in args.shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    out = Path(args.out)
    if not args.table_only:
        run_all(args)
    rows = [row for shape in args.shapes for share in args.shares if (run_dir(out, shape, share) / "metrics.json").exists()
            for row in share_rows(shape, share, out)]
    parts = []
    for shape in args.shapes:
        shape_rows = [r for r in rows if r["shape"] == shape]
        if shape_rows:
            parts += [f"### {shape} ({SHAPES[shape][0]} format, {shape_rows[0]['metric']})\n", table_markdown(shape_rows), ""]
    (out / "sweep.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "sweep.md").write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
