"""RPO inference and trajectory data: output parsing, fallback, filters and no gold leakage (fake LLMs)."""

import json

import pytest

from fakes import FakeHashLLM

from personalign.methods import build_method
from personalign.retrievers import get_retriever
from personalign.errors import ConfigError
from personalign.rpo.config import TrajectoryConfig, load_config
from personalign.rpo.filters import is_brief, is_consistent
from personalign.rpo.prompts import format_reflection, parse_reflection, reflection_prompt, user_summary
from personalign.rpo.template_teacher import prior_decision, prior_usual
from personalign.rpo.trajectories import generate_trajectories, make_trajectory
from personalign.tasks import get_task
from personalign.types import Example

LAMP3, LAMP2, LAMP5 = get_task("LaMP_3"), get_task("LaMP_2"), get_task("LaMP_5")
GOLD = "GOLD-SENTINEL-7"
PROFILE = [{"text": f"review number {i} about strings", "score": str(1 + i % 5), "id": f"p{i}", "date": f"2020-0{i + 1}-01"}
           for i in range(6)]
EXAMPLE = Example(id="q1", input=LAMP3.format_input("strings sound great"), profile=PROFILE)


def test_parse_reflection_well_formed_and_malformed():
    assert parse_reflection("<think>lenient user</think><personalized> 5 </personalized>") == ("lenient user", "5")
    assert parse_reflection("  <THINK>a\nb</THINK>\n<personalized>x</personalized> trailing") == ("a\nb", "x")
    for bad in ("5", "<think>x</think>", "<personalized>5</personalized>", "<think>x</think><personalized> </personalized>",
                "<think>x<personalized>5</personalized>"):
        assert parse_reflection(bad) is None
    assert parse_reflection(format_reflection(" t ", " a ")) == ("t", "a")


def rpo(answers):
    base, reflection = FakeHashLLM(["3"]), FakeHashLLM(answers)
    method = build_method("rpo", LAMP3, llm=base, retriever=get_retriever("bm25"), reflection_llm=reflection)
    return method, reflection


def test_rpo_uses_the_reflection_answer_and_keeps_the_trace():
    method, reflection = rpo(["<think>This user is lenient.</think><personalized>5</personalized>"])
    answer = method.answer(EXAMPLE, PROFILE)
    final = method.final(answer)
    assert final.prediction == "5" and answer.output_filter == "rpo"
    trace = answer.trace
    assert final.fallback is False and trace.extra["base_answer"] == "3"
    assert final.thinking == "This user is lenient."
    assert trace.stages == ["base", "reflect"]
    assert len(trace.retrieved_ids) == 4 and len(trace.prompts) == 2 and reflection.calls == 1
    assert "Initial response: 3" in trace.prompts[1][-1]["content"]
    assert "Scores this user gave before: " in trace.prompts[1][-1]["content"]


def test_rpo_falls_back_to_the_base_answer_when_malformed():
    method, _ = rpo(["I think 5"])
    answer = method.answer(EXAMPLE, PROFILE)
    final = method.final(answer)
    assert final.prediction == "3" and final.fallback is True


def test_rpo_retrieval_uses_query_joined_with_base_answer():
    method, _ = rpo(["<think>x</think><personalized>4</personalized>"])
    seen = []
    original = method.retriever.rank
    method.retriever.rank = lambda query, profile, task: seen.append(query) or original(query, profile, task)
    method.answer(EXAMPLE, PROFILE)
    assert seen == ["strings sound great 3"]


def test_gold_is_in_the_sft_target_but_never_in_its_prompt():
    # inference: tests/test_gold_leak.py runs RPO through the eval runner, which holds the golds
    teacher = FakeHashLLM([f"<think>short reason</think><personalized>{GOLD}</personalized>"])
    papers = [{"title": "Parsing Tweets", "abstract": "we parse tweets", "id": "t1"}]
    paper = Example(id="q5", input=LAMP5.format_input("we parse more tweets"), profile=papers)
    row = make_trajectory(LAMP5, paper, GOLD, "base title", papers, teacher, TrajectoryConfig(rouge_threshold=0.5))
    assert row.accepted and GOLD in row.target
    assert all(GOLD not in m["content"] for m in row.messages)  # the SFT prompt has no gold, only the target


def test_filters_reject_inconsistent_and_long_samples():
    assert is_consistent(LAMP3, "4", "4") and is_consistent(LAMP3, "4 stars", "4")
    assert not is_consistent(LAMP3, "5", "4") and not is_consistent(LAMP3, "great", "4")
    assert is_consistent(LAMP2, "Comedy", "comedy") and not is_consistent(LAMP2, "action", "comedy")
    assert is_consistent(LAMP5, "Neural parsing of tweets", "Neural Parsing of Tweets at Scale", rouge_threshold=0.5)
    assert not is_consistent(LAMP5, "Something else", "Neural Parsing of Tweets", rouge_threshold=0.5)
    assert is_brief("a b c", 3) and not is_brief("a b c d", 3) and not is_brief("", 3)


def test_teacher_trajectories_are_filtered_and_fall_back_to_template_only_when_allowed():
    inconsistent = FakeHashLLM(["<think>user likes it</think><personalized>1</personalized>"])
    strict = TrajectoryConfig(teacher_samples=3, template_fallback=False)
    rejected = make_trajectory(LAMP3, EXAMPLE, "5", "3", PROFILE[:1], inconsistent, strict)
    assert not rejected.accepted and rejected.reject_reason == "inconsistent" and inconsistent.calls == 3
    too_long = FakeHashLLM(["<think>" + "word " * 200 + "</think><personalized>5</personalized>"])
    assert make_trajectory(LAMP3, EXAMPLE, "5", "3", PROFILE[:1], too_long, strict).reject_reason == "too long"
    fallback = make_trajectory(LAMP3, EXAMPLE, "5", "3", PROFILE[:1], inconsistent, TrajectoryConfig(teacher_samples=1))
    assert fallback.accepted and fallback.teacher == "template"
    assert fallback.reject_reason == "inconsistent"  # why the LLM teacher failed stays on the row
    thinking, answer = parse_reflection(fallback.target)
    assert answer == "5" and "higher" in thinking


def test_generate_trajectories_writes_data_prompts_and_stats(tmp_path):
    examples = [Example(id=f"q{i}", input=LAMP3.format_input(f"strings review {i}"), profile=PROFILE) for i in range(4)]
    golds = {e.id: "4" for e in examples}
    teacher = FakeHashLLM(["<think>The user rates strings well.</think><personalized>4</personalized>"])
    stats = generate_trajectories(LAMP3, examples, golds, FakeHashLLM(["2"]), teacher, get_retriever("bm25"),
                                  TrajectoryConfig(), tmp_path)
    assert stats["examples"] == 4 and stats["accepted_llm_teacher"] == 4 and stats["llm_teacher_acceptance_rate"] == 1.0
    assert stats["llm_teacher_failures_by_reason"] == {}
    prompts = [json.loads(line) for line in (tmp_path / "rl_prompts.jsonl").read_text().splitlines()]
    assert len(prompts) == 4 and all(len(p["items"]) == 6 and p["base_answer"] == "2" for p in prompts)
    assert json.loads((tmp_path / "stats.json").read_text()) == stats


def test_reflection_prompt_for_ratings_asks_about_leniency():
    assert "lenient or harsh" in reflection_prompt(LAMP3, EXAMPLE.input, "3", PROFILE[:2])


def test_user_summary_counts_labels_scores_and_answer_length():
    assert user_summary(LAMP3, PROFILE) == "Scores this user gave before: 1 x2, 2 x1, 3 x1, 4 x1, 5 x1 (mean 2.7)."
    tags = [{"description": "d", "tag": t, "id": str(i)} for i, t in enumerate(["comedy", "action", "comedy"])]
    assert user_summary(LAMP2, tags) == "Labels this user chose before: comedy x2, action x1."
    papers = [{"title": t, "abstract": "a", "id": str(i)} for i, t in enumerate(["A B", "A B C D", "A B C"])]
    assert user_summary(LAMP5, papers) == "This user's past answers have 3 words (median of 3)."
    assert user_summary(LAMP3, []) == ""


def test_llm_teacher_is_asked_only_for_the_first_examples_when_limited(tmp_path):
    examples = [Example(id=f"q{i}", input=LAMP3.format_input(f"strings review {i}"), profile=PROFILE) for i in range(4)]
    teacher = FakeHashLLM(["<think>The user rates strings well.</think><personalized>4</personalized>"])
    stats = generate_trajectories(LAMP3, examples, {e.id: "4" for e in examples}, FakeHashLLM(["2"]), teacher,
                                  get_retriever("bm25"), TrajectoryConfig(teacher_samples=1, llm_teacher_examples=1),
                                  tmp_path)
    assert teacher.calls == 1 and stats["llm_teacher_tried"] == 1 and stats["llm_teacher_acceptance_rate"] == 1.0
    assert stats["accepted_template_teacher"] == 3 and stats["llm_teacher_failures_by_reason"] == {"not tried": 3}


LAMP7 = get_task("LaMP_7")
TWEET = LAMP7.format_input("Michael Vaughan is gutted about dropping 2 points at home.")
TWEETS = [{"text": "@bigjack Not today.", "id": "t1", "date": "2020-01-01"}]


def test_text_targets_drop_handles_and_urls_the_prompt_does_not_show():
    gold = "@MichaelVaughan @MMAjunkie gutted about dropping 2 points #MUFC https://t.co/x though..."
    example = Example(id="t", input=TWEET, profile=TWEETS)
    row = make_trajectory(LAMP7, example, gold, "He is sad.", TWEETS, None, TrajectoryConfig())
    thinking, answer = parse_reflection(row.target)
    assert answer == "@MichaelVaughan gutted about dropping 2 points though..."  # the name is in the input
    assert row.gold == gold  # the reward and the statistics still use the real gold
    assert 'Keep the query\'s words "gutted about dropping 2 points' in thinking and '"@bigjack Not today."' in thinking
    kept = make_trajectory(LAMP7, example, gold, "He is sad.", TWEETS, None, TrajectoryConfig(strip_unseen_handles=False))
    assert parse_reflection(kept.target)[1] == gold
    habit = [{"text": "Not today. #MUFC", "id": "t2", "date": "2020-01-02"}]
    shown = make_trajectory(LAMP7, Example(id="t", input=TWEET, profile=habit), gold, "He is sad.", habit, None,
                            TrajectoryConfig())
    assert parse_reflection(shown.target)[1] == "@MichaelVaughan gutted about dropping 2 points #MUFC though..."
    labels = make_trajectory(LAMP3, EXAMPLE, "#5", "3", PROFILE[:1], None, TrajectoryConfig())
    assert parse_reflection(labels.target)[1] == "#5"  # only text tasks are cleaned


def prior_target(task, example, gold, items):
    row = make_trajectory(task, example, gold, "1", items, None, TrajectoryConfig(template_style="prior"))
    return parse_reflection(row.target)


def test_prior_thinking_keeps_follows_or_leaves_the_users_usual_answer():
    scores = [{"text": f"review {i}", "score": s, "id": f"r{i}"} for i, s in enumerate("44435")]
    example = Example(id="q", input=LAMP3.format_input("fine strings"), profile=scores)
    thinking, answer = prior_target(LAMP3, example, "4", scores[-1:])
    assert thinking == ("This user usually gives 4 (mean 4.0). The most similar review got 5. "
                        "This one fits their usual answer.") and answer == "4"
    assert prior_target(LAMP3, example, "5", scores[-1:])[0].endswith("Like the most similar example, this one is 5.")
    assert prior_target(LAMP3, example, "2", scores[-1:])[0].endswith("This review is harsher than their usual: 2.")
    tags = [{"description": "a film", "tag": t, "id": f"m{i}"} for i, t in enumerate(["comedy", "comedy", "action"])]
    movie = Example(id="m", input=LAMP2.format_input("a heist film"), profile=tags)
    thinking, answer = prior_target(LAMP2, movie, "sci-fi", tags[-1:])
    assert thinking.startswith('This user most often chooses "comedy" (2 of 3). The most similar example is "action".')
    assert thinking.endswith('This one is "sci-fi", not their usual.') and answer == "sci-fi"
    assert prior_usual(thinking) == "comedy"
    decisions = [prior_decision(prior_target(LAMP3, example, gold, scores[-1:])[0]) for gold in "4521"]
    assert decisions == ["keep", "follow", "leave", "leave"] and prior_decision("It is a 4.") == "none"
    assert prior_usual(prior_target(LAMP3, example, "2", scores[-1:])[0]) == "4" and prior_usual("It is a 4.") == ""


def test_prior_thinking_for_text_is_the_usual_length_and_a_few_kept_words():
    example = Example(id="t", input=TWEET, profile=TWEETS)
    thinking, _ = prior_target(LAMP7, example, "Michael Vaughan is gutted about dropping 2 points at home", TWEETS)
    assert thinking == 'This user writes about 3 words. Keep "Michael Vaughan is gutted about dropping ...".'


def test_kept_input_targets_are_the_input_words_the_gold_uses():
    gold = "@MichaelVaughan so gutted about dropping 2 points #MUFC"
    example = Example(id="t", input=TWEET, profile=TWEETS)
    row = make_trajectory(LAMP7, example, gold, "He is sad.", TWEETS, None, TrajectoryConfig(text_target="kept_input"))
    assert parse_reflection(row.target)[1] == "gutted about dropping 2 points" and row.gold == gold
    unrelated = make_trajectory(LAMP7, example, "lol", "He is sad.", TWEETS, None, TrajectoryConfig(text_target="kept_input"))
    assert parse_reflection(unrelated.target)[1] == "lol"  # no shared word: the gold itself


def test_an_unknown_template_style_is_a_one_line_config_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("trajectories:\n  template_style: gold\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: trajectories.template_style: Input should be 'initial' or 'prior', got 'gold'$"):
        load_config(config)


def test_reflected_answer_parses_or_falls_back():
    from personalign.methods.rpo import reflected_answer

    assert reflected_answer(LAMP3, "<think>lenient</think><personalized>Score: 4</personalized>", "3") == ("4", "lenient", False)
    assert reflected_answer(LAMP3, "<think>lenient</think><personalized>4", "3") == ("3", "", True)


@pytest.mark.model
def test_llm_teacher_path_against_a_real_openai_compatible_server(llama_server, tmp_path):
    """The paper's setting: base answers and teacher trajectories from an HTTP endpoint (here llama.cpp's server)."""
    from personalign.backends.openai import OpenAICompatibleLLM

    examples = [Example(id=f"q{i}", input=LAMP3.format_input(f"great strings, review {i}"), profile=PROFILE)
                for i in range(2)]
    golds = {e.id: "4" for e in examples}
    base = OpenAICompatibleLLM("smollm2", base_url=llama_server, api_key="unused", timeout=120.0)
    teacher = OpenAICompatibleLLM("smollm2", base_url=llama_server, api_key="unused", timeout=120.0)
    config = TrajectoryConfig(teacher_samples=2, teacher_max_tokens=48, template_fallback=False)
    stats = generate_trajectories(LAMP3, examples, golds, base, teacher, get_retriever("bm25"), config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert stats["llm_teacher_tried"] == 2 and stats["accepted_template_teacher"] == 0
    assert all(1 <= len(r["teacher_outputs"]) <= 2 and (r["teacher"] == "llm" or len(r["teacher_outputs"]) == 2)
               for r in rows)  # a rejected example used both tries
    assert all(isinstance(o, str) and o.strip() for r in rows for o in r["teacher_outputs"])  # real completions
    assert stats["llm_teacher_acceptance_rate"] == stats["accepted_llm_teacher"] / 2
    assert all(r["base_answer"].strip() for r in rows)
