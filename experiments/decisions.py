"""What a reflection model trained on the "prior" template thinking decides, and how each decision scores.

For each method: how often its thinking keeps the user's usual answer, follows the most similar item,
leaves both, or says none of these (``personalign.rpo.template_teacher.prior_decision``); on those
questions, the task's first metric, the ``--against`` row's on the same questions (e.g. the user's
majority or median), how often the answer equals that row's, and how often it is the usual answer
that the thinking itself names (a "keep" whose answer differs did not follow its own decision).

Usage: .venv/bin/python -m experiments.decisions --run runs/reallamp-val/LaMP_3/user-val --task LaMP_3 \\
           --methods rpo@sft-prior,rpo@rl-prior --against user-median
"""

from __future__ import annotations

from experiments.method_rows import parser, scored_against

from personalign.rpo.prompts import parse_reflection
from personalign.rpo.template_teacher import prior_decision, prior_usual
from personalign.tasks import get_task


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    task = get_task(args.task)
    metric = task.metrics[0]
    print(f"| method | decision | n | {metric} | {args.against} on the same | answer = {args.against}'s | "
          "answer = the usual the thinking names |")
    print("|---|---|---|---|---|---|---|")
    for method, rows, scored, reference in scored_against(args, task):
        thoughts = [(parse_reflection(row.get("raw", "")) or ("", ""))[0] for row in rows]
        decisions = [prior_decision(thinking) for thinking in thoughts]
        for decision in ("keep", "follow", "leave", "none"):
            picked = [n for n, d in enumerate(decisions) if d == decision]
            if not picked:
                continue
            same = sum(scored.predictions[n] == reference.predictions[n] for n in picked)
            follows = sum(scored.predictions[n] == prior_usual(thoughts[n]) for n in picked)
            print(f"| {method} | {decision} | {len(picked)} | {scored.stats[metric][picked].mean():.4f} | "
                  f"{reference.stats[metric][picked].mean():.4f} | {same} | {follows} |")


if __name__ == "__main__":
    main()
