"""What a reflection model trained on the "prior" template thinking decides, and how each decision scores.

For each method: how often its thinking keeps the user's usual answer, follows the most similar item,
leaves both, or says none of these (``personalign.rpo.template_teacher.prior_decision``); on those
questions, the task's first metric, the ``--against`` row's on the same questions (e.g. the user's
majority or median), and how often the answer equals that row's.

Usage: .venv/bin/python bench/decisions.py --run runs/reallamp-val/LaMP_3/user-val --task LaMP_3 \\
           --methods rpo@sft-prior,rpo@rl-prior --against user-median
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from personalign.eval.predictions import read_log  # noqa: E402
from personalign.eval.scoring import score_rows  # noqa: E402
from personalign.rpo.prompts import parse_reflection  # noqa: E402
from personalign.rpo.template_teacher import prior_decision  # noqa: E402
from personalign.tasks import get_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="an eval run folder (holds predictions/)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--methods", required=True, help="comma-separated prediction logs to inspect")
    parser.add_argument("--against", required=True, help="a reference row scored on the same questions")
    args = parser.parse_args()
    task = get_task(args.task)
    metric = task.metrics[0]
    _, reference_rows = read_log(Path(args.run) / "predictions" / f"{args.against}.jsonl")
    print(f"| method | decision | n | {metric} | {args.against} on the same | answer = {args.against}'s |")
    print("|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        _, rows = read_log(Path(args.run) / "predictions" / f"{method}.jsonl")
        ids = [i for i in rows if i in reference_rows]
        scored = score_rows(task, [rows[i] for i in ids])
        reference = score_rows(task, [reference_rows[i] for i in ids])
        decisions = [prior_decision((parse_reflection(rows[i].get("raw", "")) or ("", ""))[0]) for i in ids]
        for decision in ("keep", "follow", "leave", "none"):
            picked = [n for n, d in enumerate(decisions) if d == decision]
            if not picked:
                continue
            same = sum(scored.predictions[n] == reference.predictions[n] for n in picked)
            print(f"| {method} | {decision} | {len(picked)} | {scored.stats[metric][picked].mean():.4f} | "
                  f"{reference.stats[metric][picked].mean():.4f} | {same} |")


if __name__ == "__main__":
    main()
