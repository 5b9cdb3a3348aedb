"""Where a method's fallbacks come from, and how it scores where it did not fall back.

For each method: how many answers fell back (the filter could not parse them), how many of those are
cut off (the raw output lacks ``--closing``, as when a reflection hits its token limit), and the task's
first metric on the parsed answers against a reference row on the same questions (paired test).

Usage: .venv/bin/python bench/fallbacks.py --run runs/reallamp-val/LaMP_7/user-val --task LaMP_7 \
           --methods rpo@sft,rpo@rl --against echo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from personalign.eval.predictions import read_log  # noqa: E402
from personalign.eval.scoring import score_rows  # noqa: E402
from personalign.tasks import get_task  # noqa: E402
from personalign.tasks.statistics import paired_test  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="an eval run folder (holds predictions/)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--methods", required=True, help="comma-separated prediction logs to inspect")
    parser.add_argument("--against", required=True, help="the reference row scored on the same questions")
    parser.add_argument("--closing", default="</personalized>", help="the tag a complete answer ends with")
    args = parser.parse_args()
    task = get_task(args.task)
    metric = task.metrics[0]
    _, reference_rows = read_log(Path(args.run) / "predictions" / f"{args.against}.jsonl")
    print(f"| method | n | fallbacks | cut off (no `{args.closing}`) | parsed | {metric} on parsed | "
          f"{args.against} on the same | diff [95% CI] | p |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        _, rows = read_log(Path(args.run) / "predictions" / f"{method}.jsonl")
        ids = [i for i in rows if i in reference_rows]
        scored = score_rows(task, [rows[i] for i in ids])
        reference = score_rows(task, [reference_rows[i] for i in ids])
        kept = [n for n, fallback in enumerate(scored.fallbacks) if not fallback]
        cut = sum(args.closing not in rows[i].get("raw", "") for i, fallback in zip(ids, scored.fallbacks) if fallback)
        test = paired_test(metric, scored.stats[metric][kept], reference.stats[metric][kept])
        print(f"| {method} | {len(ids)} | {len(ids) - len(kept)} | {cut} | {len(kept)} | {test.a:.4f} | {test.b:.4f} | "
              f"{test.diff.value:+.3f} [{test.diff.low:.3f}, {test.diff.high:.3f}] | {test.p_value:.4f} |")


if __name__ == "__main__":
    main()
