"""Rule following on synthetic users (`personalign.data.synth_rules`, experiments/synth_rule_following.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import synth_rule_following
from personalign.data.lamp_io import PARTS, SPLITS, load_split
from personalign.data.synth import RULE_KINDS, SHAPES, SynthConfig, apply_rule, generate
from personalign.data.synth_rules import rule_cases, rule_followed
from personalign.eval.runner import run_eval
from personalign.eval.settings import EvalConfig
from personalign.methods import build_method
from personalign.tasks import get_task

SHAPE_KINDS = [(shape, kind) for shape, kinds in RULE_KINDS.items() for kind in kinds]


def golds_and_cases(data: Path, task_name: str) -> list[tuple[str, str, object]]:
    """``(question id, gold, RuleCase)`` for every question of every split and part."""
    task, found = get_task(task_name), []
    for split in SPLITS:
        for part in PARTS:
            cases = rule_cases(data, task_name, split, part)
            _, golds = load_split(data, task, split, part)
            found += [(qid, gold, cases[qid]) for qid, gold in golds.items()]
    return found


@pytest.mark.parametrize("shape,kind", SHAPE_KINDS)
def test_every_gold_follows_its_rule_and_the_rule_blind_answer_does_not(tmp_path, shape, kind):
    generate(SynthConfig(shape, users=6, history=4, kinds=(kind,), seed=7), tmp_path)
    found = golds_and_cases(tmp_path, SHAPES[shape])
    verdicts = [rule_followed(case.rule, case.blind, gold) for _, gold, case in found]
    assert {case.rule["kind"] for _, _, case in found} == {kind}
    assert set(verdicts) <= {True, None} and True in verdicts, verdicts
    for (_, gold, case), verdict in zip(found, verdicts):
        changed = apply_rule(case.rule, case.blind) != case.blind
        assert (verdict is None) == (not changed)  # None exactly where the rule leaves the answer as it is
        assert rule_followed(case.rule, case.blind, case.blind) is (False if changed else None)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_noise_makes_some_golds_break_the_rule(tmp_path, shape):
    generate(SynthConfig(shape, users=8, history=4, noise=0.6, seed=3), tmp_path)
    found = golds_and_cases(tmp_path, SHAPES[shape])
    verdicts = [rule_followed(case.rule, case.blind, gold) for _, gold, case in found]
    assert False in verdicts and True in verdicts, verdicts


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_oracle_follows_every_rule_and_no_rule_users_have_none_to_follow(tmp_path, shape):
    generate(SynthConfig(shape, users=12, history=3, share=0.5, noise=0.3, seed=4), tmp_path)
    task = get_task(SHAPES[shape])
    oracle = build_method("oracle", task)
    oracle.use_data(tmp_path)
    examples, _ = load_split(tmp_path, task, "time", "test")
    cases = rule_cases(tmp_path, task.name, "time", "test")
    assert len(examples) == 12 == len(cases)  # one test question a user on the time split
    verdicts = {e.id: rule_followed(cases[e.id].rule, cases[e.id].blind, oracle.answer_text(e, e.profile))
                for e in examples}
    assert set(verdicts.values()) <= {True, None} and True in verdicts.values()
    assert all(verdicts[qid] is None for qid, case in cases.items() if case.rule["kind"] == "none")


def test_each_kind_is_checked_as_its_docstring_says():
    tweet = "Finally done with a long jog earlier today, and you really need to try it"
    assert rule_followed({"kind": "lowercase"}, tweet, tweet.lower() + " 🔥") is True
    assert rule_followed({"kind": "lowercase"}, tweet, "🔥 !") is False  # no letters: nothing in lowercase
    assert rule_followed({"kind": "signoff", "text": "xoxo"}, tweet, f"{tweet} xoxo!! ") is True
    assert rule_followed({"kind": "signoff", "text": "xoxo"}, tweet, f"xoxo {tweet}") is False
    assert rule_followed({"kind": "emoji", "emoji": "🚀"}, tweet, f"🚀 {tweet}") is True
    assert rule_followed({"kind": "u"}, tweet, "and U really need to try it") is True
    assert rule_followed({"kind": "u"}, tweet, "u and your friends") is False  # "your" left
    assert rule_followed({"kind": "u"}, "best choice I made", "best choice I made") is None  # no "you" to replace
    title = "Curriculum Learning for Table Question Answering"
    assert rule_followed({"kind": "prefix", "text": "UniBo at SemEval:"}, title, f" UniBo at SemEval: {title}")
    assert rule_followed({"kind": "prefix", "text": "UniBo at SemEval:"}, title, f"{title} UniBo at SemEval:") is False
    assert rule_followed({"kind": "suffix", "text": "Revisited"}, title, f"{title}: Revisited.") is True
    assert rule_followed({"kind": "suffix", "text": "Revisited"}, title, f"Revisited: {title}") is False
    offset = {"kind": "offset", "offset": 2}
    assert rule_followed(offset, "2", "I'd give it a 4") is True and rule_followed(offset, "2", "4.0") is True
    assert rule_followed(offset, "2", "3") is False and rule_followed(offset, "5", "5") is None  # clipped away
    mapping = {"kind": "map", "map": {"comedy": "dark comedy"}}
    assert rule_followed(mapping, "comedy", "Dark Comedy") is True
    assert rule_followed(mapping, "comedy", "comedy") is False
    assert rule_followed(mapping, "action", "action") is None and rule_followed({"kind": "none"}, "3", "4") is None


def test_script_gives_the_oracle_a_share_of_one_and_refuses_other_data(tmp_path, capsys):
    """A references+oracle run (no LLM) on rules ROUGE cannot see: lowercase and emoji tweets."""
    data, runs = tmp_path / "data", tmp_path / "runs"
    generate(SynthConfig("tweet", users=8, history=3, kinds=("lowercase", "emoji"), seed=1), data)
    run_eval(EvalConfig(data=str(data), task="LaMP_7", methods=["echo", "oracle"], split="time", part="dev",
                        profile_controls=["own", "other-user"], out=str(runs), cache_dir=str(tmp_path / "cache")))
    run_dir = runs / "LaMP_7" / "time-dev"
    _, table = synth_rule_following.run_counts(data, run_dir)
    assert set(table) == {"echo", "oracle", "echo#other-user", "oracle#other-user"}
    for label in ("oracle", "oracle#other-user"):  # the asking user's rule, whatever profile the oracle sees
        assert {kind: (c.followed, c.applicable) for kind, c in table[label].items()} == \
            {kind: (c.n, c.n) for kind, c in table[label].items()}
        assert table[label]["all"].n == 8 and table[label]["all"].blind == 0
    assert table["echo"]["all"].followed == 0 and table["echo"]["all"].echoed == 8

    out = tmp_path / "table.md"
    assert synth_rule_following.main([str(data), str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() and "| oracle | all | 8 / 8 | 1.00 |" in printed

    generate(SynthConfig("tweet", users=8, history=3, kinds=("lowercase", "emoji"), seed=2), data)
    assert synth_rule_following.main([str(data), str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made from other data" in err[0], err
