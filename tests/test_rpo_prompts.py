"""RPO's training prompts (SFT trajectories, RL prompts) are the evaluation prompt of the same example, string for string."""

import json

import pytest

from fakes import FakeHashLLM

from personalign.methods import build_method
from personalign.methods.base import MethodConfig
from personalign.retrievers import get_retriever
from personalign.rpo.config import TrajectoryConfig
from personalign.rpo.rl import RLPrompt, rl_messages
from personalign.rpo.trajectories import generate_trajectories
from personalign.tasks import get_task
from personalign.types import Example

WORDS = "the strings hum warm and bright through every long evening of practice at home with friends"


def _examples(task):
    if task.name == "LaMP_7":
        profile = [{"text": f"tweet {i}: {WORDS} {i}", "id": f"t{i}", "date": f"2020-0{i + 1}-01"} for i in range(5)]
        return [Example(id=f"q{i}", input=task.format_input(f"strings tonight, take {i} {WORDS}"), profile=profile)
                for i in range(3)]
    profile = [{"text": f"review {i}: {WORDS}", "score": str(1 + i % 5), "id": f"p{i}", "date": f"2020-0{i + 1}-01"}
               for i in range(5)]
    return [Example(id=f"q{i}", input=task.format_input(f"strings review {i}"), profile=profile) for i in range(3)]


def _evaluation_prompts(task, examples, config):
    """The reflection prompt the ``rpo`` method sends for each example (its second request)."""
    method = build_method("rpo", task, llm=FakeHashLLM(["2", "Warm strings."]), retriever=get_retriever("bm25"),
                          config=config, reflection_llm=FakeHashLLM(["<think>x</think><personalized>4</personalized>"]))
    prompts = {}
    for example in examples:
        trace = method.answer(example, example.profile).trace
        assert trace.stages == ["base", "reflect"]
        prompts[example.id] = trace.prompts[1]
    return prompts


@pytest.mark.parametrize("name", ["LaMP_3", "LaMP_7"])
def test_training_prompts_equal_the_evaluation_prompt_of_the_same_example(name, tmp_path):
    task, config = get_task(name), MethodConfig(k=2, item_max_words=12)
    examples = _examples(task)
    golds = {e.id: "4" if task.kind != "generation" else "Warm strings tonight" for e in examples}
    generate_trajectories(task, examples, golds, FakeHashLLM(["2", "Warm strings."]), None, get_retriever("bm25"),
                          TrajectoryConfig(k=config.k), tmp_path, config, k_to=4)
    evaluation = _evaluation_prompts(task, examples, config)

    sft = {r["id"]: r["messages"] for r in map(json.loads, (tmp_path / "trajectories.jsonl").read_text().splitlines())}
    rl = [RLPrompt(**row) for row in map(json.loads, (tmp_path / "rl_prompts.jsonl").read_text().splitlines())]
    assert sorted(sft) == sorted(evaluation) == sorted(p.id for p in rl)
    for example in examples:
        assert sft[example.id] == evaluation[example.id]  # the SFT prompt, role and content
        assert "User history:\n- " in sft[example.id][-1]["content"]  # items are shown
    for prompt in rl:
        assert len(prompt.items) == 4  # the curriculum's pool; the prompt at k items is the evaluation's
        assert rl_messages(task, prompt, config.k, config.item_max_words) == evaluation[prompt.id]

    # the check has teeth: another item_max_words or k gives another prompt
    other_words = _evaluation_prompts(task, examples, MethodConfig(k=2, item_max_words=5))
    other_k = _evaluation_prompts(task, examples, MethodConfig(k=3, item_max_words=12))
    assert all(sft[i] != other_words[i] and sft[i] != other_k[i] for i in sft)
