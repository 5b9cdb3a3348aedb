"""POPI: the summary budget, stored summaries reused by any generator, the reward, and the summarizer's RL.

Orchestration tests use FakeWordySummarizer and FakeEchoGenerator (named fakes); the RL step and one
end-to-end test run the real bundled model.
"""

from __future__ import annotations

import json

import pytest

from personalign.backends.base import LLM
from personalign.methods import build_method
from personalign.popi.summary import answer_score, enforce_budget, summary_reward
from personalign.tasks import get_task
from personalign.types import Completion, Example, GenParams, Messages

PROFILE = [{"id": str(i), "text": f"review {i} of a guitar tuner", "score": str(1 + i % 2)} for i in range(6)]


class FakeWordySummarizer(LLM):
    """Fake for orchestration: ignores max_tokens and writes 300 words about a harsh user."""

    def __init__(self):
        self.name, self.calls = "fake-wordy", 0

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        self.calls += 1
        return Completion("harsh   critic " * 150, 40, 300)


class FakeEchoGenerator(LLM):
    """Fake for orchestration: answers "2", and keeps the prompts it saw."""

    def __init__(self, name: str = "fake-echo"):
        self.name, self.prompts = name, []

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        self.prompts.append(messages[-1]["content"])
        return Completion("2", 30, 1)


def test_enforce_budget_cuts_at_the_last_whole_word_that_fits():
    count = lambda text: len(text.split())  # noqa: E731 - one token a word
    assert enforce_budget("a  b\nc", 5, count) == "a b c"
    assert enforce_budget("one two three four five six", 4, count) == "one two three four"
    assert enforce_budget("toolongword", 0, count) == ""


def popi(tmp_path, generator, summarizer, budget=12):
    return build_method("popi", get_task("LaMP_3"), llm=generator, summarizer_llm=summarizer, summary_budget=budget,
                        cache_dir=tmp_path)


def test_the_summary_budget_is_enforced_in_the_generators_tokens(tmp_path):
    generator, summarizer = FakeEchoGenerator(), FakeWordySummarizer()
    method = popi(tmp_path, generator, summarizer, budget=12)
    example = Example("q", get_task("LaMP_3").format_input("The clip cracked."), PROFILE)
    trace = method.answer(example, PROFILE).trace
    assert 0 < trace.extra["popi_summary_tokens"] <= 12
    assert generator.count_tokens(trace.extra["popi_summary"]) <= 12 < generator.count_tokens(trace.raw_outputs[0])
    assert trace.stages == ["summarize", "answer"] and trace.extra["popi_summary"] in generator.prompts[-1]
    assert trace.stage_prompt_tokens == {"summarize": 40, "answer": 30}  # the generator's context, apart


def test_stored_summaries_are_reused_by_another_generator_and_derived_ones_need_no_call(tmp_path):
    summarizer = FakeWordySummarizer()
    example = Example("q", get_task("LaMP_3").format_input("Works fine."), PROFILE)
    first = popi(tmp_path, FakeEchoGenerator("gen-a"), summarizer).answer(example, PROFILE).trace
    other = FakeEchoGenerator("gen-b")
    second = popi(tmp_path, other, summarizer).answer(example, PROFILE).trace
    assert summarizer.calls == 1 and second.stages == ["answer"]
    assert second.extra["popi_summary_source"] == "stored" and second.extra["popi_summary"] == first.extra["popi_summary"]
    grown = PROFILE + [{"id": "9", "text": "new review", "score": "5"}]
    popi(tmp_path, other, summarizer).answer(Example("q", example.input, grown), grown)
    assert summarizer.calls == 2  # a changed history is summarized again
    derived = Example("q", example.input, PROFILE, derived={"popi_summary": "Gives low scores."})
    trace = popi(tmp_path, other, summarizer).answer(derived, PROFILE).trace
    assert summarizer.calls == 2 and trace.extra["popi_summary_source"] == "derived"
    assert "This user's preferences: Gives low scores." in other.prompts[-1]


def test_the_reward_is_the_task_metric_minus_the_length_penalty():
    task = get_task("LaMP_3")
    assert summary_reward(answer_score(task, "4", "4"), 24, 48, 0.1) == pytest.approx(-0.05)
    assert summary_reward(answer_score(task, "2", "4"), 0, 48, 0.1) == pytest.approx(-2.0)
    assert summary_reward(answer_score(task, "Rating: 5", "4"), 96, 48, 0.1) == pytest.approx(-1.1)  # penalty capped


@pytest.mark.model
def test_summarizer_rl_steps_on_the_bundled_model_with_the_generator_in_the_reward(tmp_path):
    from personalign.popi.train import POPIConfig, SummarizerRLConfig, SummarizerRLTrainer, SummaryPrompt

    config = POPIConfig(task="LaMP_3", summary_budget=16, method_config={"summary_items": 3, "item_max_words": 8}, seed=0,
                        rl=SummarizerRLConfig(samples_per_prompt=2, prompts_per_step=1, epochs=1, prompts_per_epoch=2,
                                              max_new_tokens=12, micro_batch=2, learning_rate=1e-5))
    prompts = [SummaryPrompt("a", get_task("LaMP_3").format_input("It broke."), PROFILE, "1"),
               SummaryPrompt("b", get_task("LaMP_3").format_input("Great."), PROFILE, "5")]
    generator = FakeEchoGenerator()
    summary = SummarizerRLTrainer(config, prompts, generator, tmp_path / "rl").train()
    rows = [json.loads(line) for line in (tmp_path / "rl" / "rl_log.jsonl").read_text().splitlines()]
    assert summary["steps"] == 2 and len(rows) == 2 and (tmp_path / "rl" / "model" / "config.json").is_file()
    assert len(generator.prompts) == 4 and all("This user's preferences:" in p or "review" not in p for p in generator.prompts)
    assert all(0 <= r["summary_tokens_mean"] <= 16 for r in rows)
    assert all(r["task_tied_share"] == 1.0 for r in rows)  # the fake always answers "2": only the length varies


@pytest.mark.model
def test_popi_end_to_end_on_the_bundled_model(tmp_path):
    from personalign.backends.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM(n_ctx=2048)
    method = build_method("popi", get_task("LaMP_3"), llm=llm, summary_budget=24, cache_dir=tmp_path)
    example = Example("q", get_task("LaMP_3").format_input("The tuner works but the clip broke."), PROFILE)
    answer = method.answer(example, PROFILE)
    assert answer.trace.stages == ["summarize", "answer"] and answer.raw.strip()
    assert 0 < answer.trace.extra["popi_summary_tokens"] <= 24


def test_the_generators_context_is_averaged_apart_from_the_summarizers():
    from personalign.eval.scoring import summarize

    rows = [{"id": str(i), "gold": "4", "raw": "4", "filter": "plain", "seconds": 0.1,
             "trace": {"prompt_tokens": 70, "stage_prompt_tokens": {"summarize": 40, "answer": 30 + i}}} for i in range(2)]
    out = summarize(get_task("LaMP_3"), rows)
    assert out["prompt_tokens/ex"] == 70 and out["answer_prompt_tokens/ex"] == 30.5
    assert summarize(get_task("LaMP_3"), [{**rows[0], "trace": {"prompt_tokens": 5}}])["answer_prompt_tokens/ex"] is None


def test_the_generators_sft_prompt_is_the_prompt_the_popi_method_sends(tmp_path):
    from personalign.popi.generator import generator_records

    generator = FakeEchoGenerator()
    method = build_method("popi", get_task("LaMP_3"), llm=generator, cache_dir=tmp_path)
    example = Example("q", get_task("LaMP_3").format_input("The clip broke."), PROFILE, derived={"popi_summary": "harsh critic"})
    method.answer(example, PROFILE)
    (record,) = generator_records([example], {"q": "2"}, ["harsh critic"])
    assert record["messages"] == [{"role": "user", "content": generator.prompts[-1]}] and record["target"] == "2"


def _train_split(tmp_path):
    """The shipped LaMP_3 example users as a train split (POPI's generator trains on train users)."""
    from importlib.resources import files

    source, target = files("personalign") / "data/examples/LaMP_3/user", tmp_path / "data/LaMP_3/user"
    target.mkdir(parents=True)
    for kind in ("questions", "outputs"):
        (target / f"train_{kind}.json").write_text((source / f"dev_{kind}.json").read_text())
    return tmp_path / "data"


@pytest.mark.model
def test_popi_generator_sft_trains_on_summary_conditioned_golds_with_the_bundled_model(tmp_path):
    from personalign.popi.generator import train_popi_generator
    from personalign.popi.train import POPIConfig

    config = POPIConfig(task="LaMP_3", data=str(_train_split(tmp_path)), out=str(tmp_path / "popi"), summary_budget=16,
                        method_config={"summary_items": 3, "item_max_words": 8}, generator_questions=3,
                        generator_sft={"batch_size": 3, "epochs": 1, "max_length": 512, "learning_rate": 1e-5})
    summary = train_popi_generator(config, cache_dir=str(tmp_path / "cache"))
    out = tmp_path / "popi" / "LaMP_3" / "generator"
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3 and summary["steps"] == 1 and (out / "model" / "config.json").is_file()
    assert all(r["messages"][0]["content"].startswith("This user's preferences: ") or not r["summary"] for r in records)
    assert all(r["target"] in {"1", "2", "3", "4", "5"} for r in records)
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"
