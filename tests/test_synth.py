"""Synthetic users with known rules (`personalign data synth`) and the `oracle` reference that knows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personalign.data.lamp_io import PARTS, SPLITS, load_split, validate_files
from personalign.data.synth import SHAPES, SynthConfig, apply_rule, blind_answer, generate, read_rules
from personalign.errors import DataError
from personalign.methods import build_method, expand_methods
from personalign.tasks import get_task

EXAMPLES = Path(__file__).resolve().parents[1] / "personalign" / "data" / "examples"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def records(data: Path, task_name: str) -> dict[str, tuple[str, str, str]]:
    """Every record of a task, from its split files: id -> (user, input text, gold), history items included."""
    task, found = get_task(task_name), {}
    for split in SPLITS:
        for part in PARTS:
            examples, golds = load_split(data, task, split, part)
            for example in examples:
                found[example.id] = (example.user_id, task.query_text(example.input), golds[example.id])
                for item in example.profile:
                    text = item.get(task.input_field) if task.input_field else None
                    found[item["id"]] = (example.user_id, text, task.item_output(item))
    return found


def test_same_seed_writes_the_same_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        for shape in SHAPES:
            generate(SynthConfig(shape, users=10, history=4, share=0.6, noise=0.2, seed=seed), tmp_path / name)
    first, again, other = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert len(first) == 4 * (2 * 3 * 2 + 1) and first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name.endswith("rules.json") or "time/" in name)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_rules_hold_in_gold_and_history_at_the_stated_noise(tmp_path, shape):
    history, noise = 9, 0.3  # 10 records a user, 3 of them break the rule
    generate(SynthConfig(shape, users=12, history=history, share=0.75, noise=noise, seed=1), tmp_path)
    task = SHAPES[shape]
    folder = tmp_path / task
    assert validate_files(sorted(folder.rglob("*_questions.json")) + sorted(folder.rglob("*_outputs.json")),
                          get_task(task))
    rules = read_rules(tmp_path, task)
    assert sum(rule["kind"] != "none" for rule in rules["users"].values()) == 9
    seen = records(tmp_path, task)
    assert len(seen) == 12 * (history + 1) == len(rules["answers"])  # every record is a question or a history item
    broken: dict[str, int] = {}
    changed = following = 0
    for rid, (user, text, gold) in seen.items():
        rule, answer = rules["users"][user], rules["answers"][rid]
        if text is not None:  # the rule-blind answer is computed from the input alone
            assert answer["blind"] == blind_answer(shape, text)
        expected = apply_rule(rule, answer["blind"]) if answer["follows"] else answer["blind"]
        assert gold == expected, rid
        following += rule["kind"] != "none" and answer["follows"]
        changed += expected != answer["blind"]
        broken[user] = broken.get(user, 0) + (not answer["follows"])
    assert all(count == (round(noise * (history + 1)) if rules["users"][u]["kind"] != "none" else 0)
               for u, count in broken.items())
    assert changed > 0.5 * following  # the rules change most answers (clipped ratings and unmapped tags do not)


def test_each_tweet_rule_is_one_a_reader_sees():
    blind = "Finally done with a long jog earlier today, and you really need to try it"
    assert apply_rule({"kind": "lowercase"}, blind) == blind.lower()
    assert apply_rule({"kind": "u"}, blind).endswith("and u really need to try it")
    assert apply_rule({"kind": "u"}, "Tell me what your thoughts are") == "Tell me what ur thoughts are"
    assert apply_rule({"kind": "signoff", "text": "xoxo"}, blind).endswith("try it xoxo")
    assert apply_rule({"kind": "prefix", "text": "UniBo at SemEval:"}, "A for B") == "UniBo at SemEval: A for B"
    assert apply_rule({"kind": "offset", "offset": 2}, "4") == "5" and apply_rule({"kind": "offset", "offset": -1},
                                                                                    "4") == "3"
    assert apply_rule({"kind": "map", "map": {"comedy": "dark comedy"}}, "comedy") == "dark comedy"


def oracle_answers(data: Path, task_name: str) -> tuple[dict[str, str], dict[str, str]]:
    task = get_task(task_name)
    oracle = build_method("oracle", task)
    oracle.use_data(data)
    examples, golds = load_split(data, task, "user", "dev")
    return {e.id: oracle.answer_text(e, e.profile) for e in examples}, golds


@pytest.mark.parametrize("shape", list(SHAPES))
def test_with_no_rule_users_the_oracle_gives_the_rule_blind_answer(tmp_path, shape):
    generate(SynthConfig(shape, users=12, history=3, share=0.0, noise=0.5, seed=2), tmp_path)
    rules = read_rules(tmp_path, SHAPES[shape])
    assert {rule["kind"] for rule in rules["users"].values()} == {"none"}
    answers, golds = oracle_answers(tmp_path, SHAPES[shape])
    assert answers and answers == {qid: rules["answers"][qid]["blind"] for qid in answers} == golds


def test_the_oracle_refuses_data_without_rules_in_one_line(tmp_path):
    oracle = build_method("oracle", get_task("LaMP_7"))
    with pytest.raises(DataError, match=r"LaMP_7/rules.json: no rules file"):
        oracle.use_data(EXAMPLES)
    result = subprocess.run([sys.executable, "-m", "personalign.cli", "eval", "--data", str(EXAMPLES), "--task",
                             "LaMP_7", "--methods", "oracle", "--out", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "rules.json" in line] == [
        f"personalign: error: {EXAMPLES / 'LaMP_7' / 'rules.json'}: no rules file: only data from "
        "`personalign data synth` has known rules (the oracle needs them)"]


def cli(*argv: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "personalign.cli", *argv], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def primary(row: dict, task_name: str) -> float:
    """A row's main score, higher is better (MAE is negated)."""
    metrics = row.get("official") or row
    key = {"LaMP_2": "accuracy", "LaMP_3": "mae"}.get(task_name, "rouge-1")
    return -metrics[key] if key == "mae" else metrics[key]


def test_eval_runs_every_reference_and_the_oracle_on_synthetic_data_and_the_oracle_wins(tmp_path):
    data, out = tmp_path / "data", tmp_path / "runs"
    cli("data", "synth", "--out", str(data), "--users", "16", "--history", "5", "--seed", "5")
    for task_name in SHAPES.values():
        cli("eval", "--data", str(data), "--task", task_name, "--split", "time", "--methods", "references,oracle",
            "--out", str(out))
        metrics = json.loads((out / task_name / "time-dev" / "metrics.json").read_text())
        references = expand_methods(["references"], get_task(task_name))  # every reference that fits the task
        assert len(references) >= 4 and metrics.keys() == {*references, "oracle"}
        scores = {name: primary(row, task_name) for name, row in metrics.items()}
        best_blind = max(score for name, score in scores.items() if name != "oracle")
        assert scores["oracle"] == pytest.approx(1.0 if task_name != "LaMP_3" else 0.0)  # no noise: exact
        assert scores["oracle"] > best_blind, (task_name, scores)


def test_lowercase_and_emoji_rules_are_invisible_to_lamps_rouge(tmp_path):
    """Why the end-to-end test below uses a title prefix: LaMP's ROUGE lowercases and drops symbols."""
    from personalign.tasks.metrics import rouge_scores

    generate(SynthConfig("tweet", users=6, history=3, kinds=("lowercase", "emoji")), tmp_path)
    rules = read_rules(tmp_path, "LaMP_7")
    _, golds = load_split(tmp_path, get_task("LaMP_7"), "time", "dev")
    blind = {qid: rules["answers"][qid]["blind"] for qid in golds}
    assert all(golds[qid] != blind[qid] for qid in golds)  # every gold follows its user's rule...
    assert all(rouge_scores(blind[qid], golds[qid])["rouge-1"] == 1.0 for qid in golds)  # ...and ROUGE cannot tell


@pytest.mark.model
def test_rag_shows_the_users_own_title_rule_on_the_bundled_model_and_never_another_users(tmp_path):
    """The strongest claim that holds on SmolLM2-135M (issue 30; numbers in the session report).

    RAG > echo on an all-lowercase rule cannot hold: LaMP's ROUGE lowercases (test above), and the model wrote
    0 of 12 tweets in lowercase. On ROUGE-visible title rules RAG echoes the abstract in most answers, so its
    ROUGE gain over echo and its drop under another user's history are small and not significant at 14-20
    questions. What holds: the user's own rule text ("UniBo at SemEval:", ": Lessons Learned") appears in
    several RAG answers with the own history, and never with another user's.
    """
    data, out = tmp_path / "data", tmp_path / "runs"
    cli("data", "synth", "--out", str(data), "--shapes", "title", "--rules", "prefix,suffix", "--users", "14",
        "--history", "8", "--share", "1", "--noise", "0")
    cli("eval", "--data", str(data), "--task", "LaMP_5", "--split", "time", "--methods", "rag,oracle",
        "--profile-control", "own,other-user", "--workers", "1", "--out", str(out))
    metrics = json.loads((out / "LaMP_5" / "time-dev" / "metrics.json").read_text())
    assert metrics["rag"]["n"] == 14 and metrics["oracle"]["official"]["rouge-1"] == 1.0
    rules, users = read_rules(data, "LaMP_5"), {e.id: e.user_id for e in load_split(data, get_task("LaMP_5"), "time",
                                                                                      "dev")[0]}
    predictions = out / "LaMP_5" / "time-dev" / "predictions"

    def own_rule_shown(label: str) -> int:
        rows = [json.loads(line) for line in (predictions / f"{label}.jsonl").open()]
        return sum(rules["users"][users[row["id"]]]["text"] in row["raw"] for row in rows)

    own, other = own_rule_shown("rag"), own_rule_shown("rag#other-user")
    assert own >= 3 and other <= own - 3, (own, other)
