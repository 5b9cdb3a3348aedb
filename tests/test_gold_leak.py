"""The gold never reaches a prompt: methods run through the real eval runner, which holds every question's gold.

The runner reads the split's outputs file next to the questions; a method sees the question and a profile only.
Each gold here is a marker that no question or history item contains, so finding it in any prompt (the base
model's conversations, the traces in the prediction log) means the runner or a method passed it on.
"""

from __future__ import annotations

import json
from pathlib import Path

from fakes import FakeEchoLLM

from bench.latency_server import FakeLatencyServer
from personalign.data.lamp_io import write_outputs, write_questions
from personalign.eval.runner import EvalConfig, run_eval
from personalign.tasks import get_task
from personalign.types import Example

LAMP5 = get_task("LaMP_5")


def gold(i: int) -> str:
    return f"GOLDMARK{i}Z"


def gold_marked_split(root: Path, users: int = 4) -> Path:
    """A LaMP_5 dev split whose golds are markers; histories are the users' earlier papers (no marker)."""
    questions = [Example(id=f"q{u}", input=LAMP5.format_input(f"we study parsing of tweets, part {u}"), user_id=f"u{u}",
                         profile=[{"title": f"Parsing Study {u}.{j}", "abstract": f"parsing study text {j}", "id": f"{u}.{j}"}
                                  for j in range(3)])
                 for u in range(users)]
    folder = root / "LaMP_5" / "user"
    folder.mkdir(parents=True)
    write_questions(folder / "dev_questions.json", questions)
    write_outputs(folder / "dev_outputs.json", "LaMP_5", [(q.id, gold(i)) for i, q in enumerate(questions)])
    return root


def logged_rows(run_dir: Path, label: str) -> list[dict]:
    lines = (run_dir / "predictions" / f"{label}.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if "id" in row]


def assert_no_gold_in_prompts(texts: list[str], golds: list[str]) -> None:
    assert texts, "no prompt was recorded: nothing was checked"
    leaked = [(g, t[:80]) for t in texts for g in golds if g in t]
    assert not leaked, f"a gold reached a prompt: {leaked[:3]}"


def test_gold_never_reaches_a_baseline_prompt(tmp_path):
    data = gold_marked_split(tmp_path / "data")
    methods = ["zero-shot", "icl", "rag", "pag", "cot-rag"]
    config = EvalConfig(data=str(data), task="LaMP_5", methods=methods, out=str(tmp_path / "runs"),
                        cache_dir=str(tmp_path / "cache"))
    llm = FakeEchoLLM()
    run_eval(config, llm=llm)
    golds = [gold(i) for i in range(4)]
    for name in methods:
        rows = logged_rows(config.run_dir, name)
        assert sorted(r["gold"] for r in rows) == golds  # the runner held every gold while the method ran
        assert_no_gold_in_prompts([m["content"] for r in rows for p in r["trace"]["prompts"] for m in p], golds)
    assert_no_gold_in_prompts([m["content"] for c in llm.conversations for m in c], golds)


def test_gold_never_reaches_rpo_base_or_reflection_prompt(tmp_path):
    data = gold_marked_split(tmp_path / "data")
    golds, llm = [gold(i) for i in range(4)], FakeEchoLLM()
    with FakeLatencyServer(latency=0.0, max_requests=50, max_seconds=60) as url:  # the reflection model, over HTTP
        config = EvalConfig(data=str(data), task="LaMP_5", methods=["rpo"], out=str(tmp_path / "runs"),
                            cache_dir=str(tmp_path / "cache"),
                            method_options={"rpo": {"reflection": "openai:reflection",
                                                    "reflection_options": {"base_url": url, "api_key": "x"}}})
        run_eval(config, llm=llm)
    rows = logged_rows(config.run_dir, "rpo")
    assert sorted(r["gold"] for r in rows) == golds
    prompts = [p for r in rows for p in r["trace"]["prompts"]]
    assert len(prompts) == 2 * len(rows)  # the base answer's prompt and the reflection prompt of every question
    assert_no_gold_in_prompts([m["content"] for p in prompts for m in p], golds)
    assert_no_gold_in_prompts([m["content"] for c in llm.conversations for m in c], golds)
