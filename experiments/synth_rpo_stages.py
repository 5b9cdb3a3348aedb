"""Issue 30 diagnosis: at which of RPO's stages does a synthetic user's rule survive, and where is it lost?

    python -m experiments.synth_rpo_stages DATA MODELS_DIR RUN_DIR [--rows rpo@sft,rpo@rl] [--sft-examples 128]

DATA: the `personalign data synth` folder; MODELS_DIR: one task's training folder (trajectories/, sft/, rl/, as
`personalign train rpo` writes them); RUN_DIR: one task's eval run folder holding the RPO rows. Prints a
markdown table a stage, no LLM call:

1. retrieval: whether the items a row showed (the trace's ``retrieved_ids``) include one with the question's
   rule-blind answer (``synth.blind_answer`` of the item's text). From the same user and with noise 0 such an
   item's output *is* the gold, so copying it answers right. Also for other retrievers' top-k over the same
   query (q ⊕ A_base, A_base from the trace);
2. SFT targets: targets whose answer follows the user's rule (``rule_followed``), and SFT prompts whose shown
   item carries the answer (its output equals the gold);
3. RL: per step, the curriculum's k, the mean reward and the share of groups whose rewards all tie (no signal);
4. the evaluated rows: answers that follow the rule, and answers equal to a shown item's output that is the gold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.synth_rule_following import run_counts
from personalign.data.lamp_io import find_split_files, iter_questions
from personalign.data.synth import SHAPES, blind_answer
from personalign.data.synth_rules import rule_cases, rule_followed
from personalign.eval.report import markdown_table
from personalign.eval.scoring import row_prediction
from personalign.retrievers import get_retriever
from personalign.retrievers.base import build_query
from personalign.tasks import get_task
from personalign.tasks.filters import finish, parse_reflection


def share(hits: int, n: int) -> str:
    return f"{hits} / {n} ({hits / n:.2f})" if n else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("models_dir")
    parser.add_argument("run_dir")
    parser.add_argument("--rows", default="rpo@sft,rpo@rl")
    parser.add_argument("--retrievers", default="bm25,dense,recency")
    parser.add_argument("--sft-examples", type=int, default=128, help="sft.max_examples of the training config")
    args = parser.parse_args()
    models, run_dir = Path(args.models_dir), Path(args.run_dir)
    rows = args.rows.split(",")
    key = json.loads((run_dir / "predictions" / f"{rows[-1]}.key.json").read_text())
    task = get_task(key["task"])
    shape = next(s for s, name in SHAPES.items() if name == task.name)
    questions = {}
    for part in ("train", key["part"]):
        questions_file = find_split_files(args.data, task.name, key["split"], part)[0]
        questions.update({q.id: q for q in iter_questions(questions_file)})
    items = {str(item.get("id")): item for q in questions.values() for item in q.profile}
    cases = {**rule_cases(args.data, task.name, key["split"], "train"),
             **rule_cases(args.data, task.name, key["split"], key["part"])}

    def blind_of(item) -> str:
        return blind_answer(shape, task.item_document(item))

    def logged(row: str) -> list[dict]:
        return [json.loads(line) for line in (run_dir / "predictions" / f"{row}.jsonl").open()]

    # 1. retrieval
    k, shown_rows = key["method_config"]["k"], logged(rows[-1])
    retrieval = []
    for name, ranked_of in [(f"shown by {rows[-1]}", lambda r, q: [items[i] for i in r["trace"]["retrieved_ids"]])] + [
            (spec, lambda r, q, ret=get_retriever(spec): ret.top_k(build_query(
                task, q.input, r["trace"].get("extra", {}).get("base_answer")), q.profile, task, k))
            for spec in args.retrievers.split(",")]:
        top1 = anywhere = n = 0
        for r in shown_rows:
            q = questions[r["id"]]
            blind, shown = cases[r["id"]].blind, [blind_of(item) for item in ranked_of(r, q)]
            top1 += bool(shown) and shown[0] == blind
            anywhere += blind in shown
            n += 1
        retrieval.append({"items": name, "top-1 carries the answer": share(top1, n),
                          f"one of the top {k} does": share(anywhere, n)})
    where = f"{key['split']}/{key['part']}"
    print(f"### {task.name}: 1. retrieval ({where})\n\n" + markdown_table(retrieval, list(retrieval[0])))

    # 2. SFT targets
    sft = [json.loads(line) for line in (models / "trajectories" / "trajectories.jsonl").open()][:args.sft_examples]
    follows = applicable = carried = 0
    for t in sft:
        case = cases[t["id"]]
        verdict = rule_followed(case.rule, case.blind, finish(task, parse_reflection(t["target"])[1]))
        applicable += verdict is not None
        follows += bool(verdict)
        carried += any(str(task.item_output(items[i])) == t["gold"] for i in t["item_ids"])
    table = [{"SFT examples": len(sft), "targets follow the rule": share(follows, applicable),
              "shown item's output is the gold": share(carried, len(sft))}]
    print(f"\n### {task.name}: 2. SFT targets\n\n" + markdown_table(table, list(table[0])))

    # 3. RL
    steps = [json.loads(line) for line in (models / "rl" / "rl_log.jsonl").open()]
    table = [{"step": s["step"], "k": s["k"], "reward mean": f"{s['reward_mean']:.3f}",
              "tied groups": f"{s['zero_variance_share']:.2f}", "updated": s["updated"]} for s in steps]
    print(f"\n### {task.name}: 3. RL\n\n" + markdown_table(table, list(table[0])))

    # 4. the evaluated rows (rule following as experiments.synth_rule_following counts it)
    _, following = run_counts(args.data, run_dir)
    table = []
    for row in rows:
        followed = following[row].get("all") or next(iter(following[row].values()))
        copied = n = 0
        for r in logged(row):
            answer = row_prediction(task, r)[0].strip()
            gold_items = [i for i in r["trace"]["retrieved_ids"] if str(task.item_output(items[i])) == r["gold"]]
            n += bool(gold_items)
            copied += bool(gold_items) and answer.strip() == r["gold"]
        table.append({"row": row, "answers follow the rule": share(followed.followed, followed.applicable),
                      "gold when a shown item's output is the gold": share(copied, n)})
    print(f"\n### {task.name}: 4. evaluated rows ({where})\n\n" + markdown_table(table, list(table[0])))


if __name__ == "__main__":
    main()
