"""Where a method's fallbacks come from, and how it scores where it did not fall back.

For each method: how many answers fell back (the filter could not parse them), how many of those are
cut off (the raw output lacks ``--closing``, as when a reflection hits its token limit), and the task's
first metric on the parsed answers against a reference row on the same questions (paired test).

Usage: .venv/bin/python -m experiments.fallbacks --run runs/reallamp-val/LaMP_7/user-val --task LaMP_7 \
           --methods rpo@sft,rpo@rl --against echo
"""

from __future__ import annotations

from experiments.method_rows import parser, scored_against

from personalign.tasks import get_task
from personalign.tasks.statistics import paired_test


def main() -> None:
    command = parser(__doc__.splitlines()[0])
    command.add_argument("--closing", default="</personalized>", help="the tag a complete answer ends with")
    args = command.parse_args()
    task = get_task(args.task)
    metric = task.metrics[0]
    print(f"| method | n | fallbacks | cut off (no `{args.closing}`) | parsed | {metric} on parsed | "
          f"{args.against} on the same | diff [95% CI] | p |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method, rows, scored, reference in scored_against(args, task):
        kept = [n for n, fallback in enumerate(scored.fallbacks) if not fallback]
        cut = sum(args.closing not in row.get("raw", "") for row, fallback in zip(rows, scored.fallbacks) if fallback)
        test = paired_test(metric, scored.stats[metric][kept], reference.stats[metric][kept])
        print(f"| {method} | {len(rows)} | {len(rows) - len(kept)} | {cut} | {len(kept)} | {test.a:.4f} | {test.b:.4f} | "
              f"{test.diff.value:+.3f} [{test.diff.low:.3f}, {test.diff.high:.3f}] | {test.p_value:.4f} |")


if __name__ == "__main__":
    main()
